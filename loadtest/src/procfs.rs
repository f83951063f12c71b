//! CPU time and memory of processes, from /proc and getrusage: the router's (by PID, when the
//! user names it) and the generator's own, so every result says what each side spent per
//! operation and whether the numbers measure the router or the tool.

use std::time::Duration;

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat` fields 14 and 15.
/// Resolution is one clock tick (usually 10 ms), fine over a window of seconds.
pub fn process_cpu(pid: u32) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_stat_cpu(&text, clock_ticks_per_second())
        .ok_or_else(|| format!("{path}: unexpected format"))
}

/// Parses utime + stime out of a `/proc/PID/stat` line. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat_cpu(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // after the name: field 3 (state) is index 0, so utime (14) is index 11, stime (15) 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    let ticks_per_second = ticks_per_second.max(1);
    Some(
        Duration::from_secs(ticks / ticks_per_second)
            + Duration::from_nanos((ticks % ticks_per_second) * 1_000_000_000 / ticks_per_second),
    )
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// Resident set size of a process in bytes, from `VmRSS` in `/proc/PID/status`.
pub fn process_rss(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_status_rss(&text).ok_or_else(|| format!("{path}: no VmRSS line"))
}

pub fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// CPU time (user + system) of this whole process, all threads, from getrusage.
pub fn self_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "1234 (wamp ring) (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 \
                    4 0 12345 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_cpu(stat, 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu(stat, 1000), Some(Duration::from_millis(300)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
    }

    #[test]
    fn rss_from_status() {
        let status = "Name:\twampring\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nThreads: 2\n";
        assert_eq!(parse_status_rss(status), Some(4321 * 1024));
        assert_eq!(parse_status_rss("Name: x\n"), None);
    }

    #[test]
    fn own_process_figures_are_readable() {
        let pid = std::process::id();
        assert!(process_rss(pid).unwrap() > 0);
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(process_cpu(pid).is_ok());
        assert!(self_cpu() > Duration::ZERO);
    }
}
