//! Which CPUs the shards run on: the process's affinity mask (`sched_getaffinity`), which is what
//! `taskset`, cgroup cpusets and container runtimes restrict — not every online CPU, which is
//! all glommio's `Placement::Fixed` checks. Shard i is pinned to the i-th allowed CPU.

use std::io;

/// The CPUs this process may run on, in ascending order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the kernel writes at most size_of::<cpu_set_t>() bytes.
    let result =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: cpu < CPU_SETSIZE, within the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    if cpus.is_empty() {
        return Err(io::Error::other("sched_getaffinity reported no CPU"));
    }
    Ok(cpus)
}

/// A CPU list the way taskset and /proc show it: "0-3,8,10-11".
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut text = String::new();
    let mut index = 0;
    while index < cpus.len() {
        let start = cpus[index];
        let mut end = start;
        while index + 1 < cpus.len() && cpus[index + 1] == end + 1 {
            index += 1;
            end = cpus[index];
        }
        if !text.is_empty() {
            text.push(',');
        }
        if start == end {
            text.push_str(&start.to_string());
        } else {
            text.push_str(&format!("{start}-{end}"));
        }
        index += 1;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_cpus_are_a_non_empty_ascending_subset_of_online_cpus() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|pair| pair[0] < pair[1]));
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        // available_parallelism honours the affinity mask too (and may be lowered further by
        // a cgroup CPU quota).
        assert!(cpus.len() >= online, "{cpus:?} vs {online}");
    }

    #[test]
    fn cpu_lists_are_compact() {
        assert_eq!(format_cpu_list(&[0]), "0");
        assert_eq!(format_cpu_list(&[0, 1, 2, 3]), "0-3");
        assert_eq!(format_cpu_list(&[0, 2, 3, 5, 8, 9, 10]), "0,2-3,5,8-10");
        assert_eq!(format_cpu_list(&[]), "");
    }
}
