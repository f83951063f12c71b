//! Human units on the command line and in tables: durations ("10s", "500ms", "1.5m"), CPU lists
//! ("0,2-3"), NAME=VALUE pairs, on/off switches, and the number formats the reports print
//! (charts group thousands, `12,345`, and date themselves in UTC).

use std::time::Duration;

/// Longest duration accepted anywhere: the tool always stops by itself, so a typo like
/// `--duration 10h` is refused rather than run.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses `10s`, `500ms`, `250us`, `1.5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 10s, 500ms, 1.5m)"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "ns" => value / 1e9,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}` (use ns, us, ms, s, m, h)"
            ))
        }
    };
    if !seconds.is_finite() || seconds < 0.0 || seconds > MAX_DURATION.as_secs_f64() {
        return Err(format!("duration `{text}` is out of range (0 ..= 24h)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A list of CPU numbers, e.g. `0,2-3` -> [0, 2, 3]; order kept, duplicates refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// Upper bound on CPU numbers, so a typo cannot ask for a billion executors.
const MAX_CPU: usize = 4096;

pub fn parse_cpu_list(text: &str) -> Result<CpuList, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("empty entry in CPU list `{text}`"));
        }
        let (low, high) = match part.split_once('-') {
            Some((a, b)) => (parse_cpu(a, text)?, parse_cpu(b, text)?),
            None => {
                let cpu = parse_cpu(part, text)?;
                (cpu, cpu)
            }
        };
        if low > high {
            return Err(format!("reversed range `{part}` in CPU list `{text}`"));
        }
        for cpu in low..=high {
            if cpus.contains(&cpu) {
                return Err(format!("CPU {cpu} listed twice in `{text}`"));
            }
            cpus.push(cpu);
        }
    }
    Ok(CpuList(cpus))
}

fn parse_cpu(text: &str, whole: &str) -> Result<usize, String> {
    let cpu: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a CPU number in `{whole}`"))?;
    if cpu >= MAX_CPU {
        return Err(format!("CPU {cpu} is out of range in `{whole}`"));
    }
    Ok(cpu)
}

/// Parses `NAME=VALUE`. Names become file names and table rows, so they are restricted to
/// letters, digits, `_`, `-` and `.`.
pub fn parse_name_value(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(format!("`{text}`: the name must have 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "`{name}`: names may use letters, digits, `_`, `-` and `.` only"
        ));
    }
    if value.trim().is_empty() {
        return Err(format!("`{text}`: the value is empty"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Parses on/off, true/false, yes/no, 1/0.
pub fn parse_on_off(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("`{text}` is not on/off")),
    }
}

/// A rate for tables: no decimals from 100 up, two below (slow open-loop rates stay readable).
pub fn format_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.2}")
    }
}

/// A microsecond figure for tables: one decimal below 10 000, none above.
pub fn format_micros(micros: f64) -> String {
    if micros < 10_000.0 {
        format!("{micros:.1}")
    } else {
        format!("{micros:.0}")
    }
}

/// `value` with `decimals` decimals and its integer part grouped by thousands: 12,345.6.
/// Charts use it, where a figure is read at a glance and out of context.
pub fn format_thousands(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let text = format!("{value:.decimals$}");
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (integer, fraction) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let mut grouped = String::with_capacity(text.len() + integer.len() / 3);
    grouped.push_str(sign);
    for (i, digit) in integer.chars().enumerate() {
        if i > 0 && (integer.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if let Some(fraction) = fraction {
        grouped.push('.');
        grouped.push_str(fraction);
    }
    grouped
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM UTC` (no time-zone database needed:
/// the proleptic Gregorian calendar, Howard Hinnant's `civil_from_days`).
pub fn format_utc_minute(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let minute_of_day = (unix_seconds % 86_400) / 60;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minute_of_day / 60,
        minute_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(format_thousands(12_345.0, 0), "12,345");
        assert_eq!(format_thousands(1_234_567.89, 1), "1,234,567.9");
        assert_eq!(format_thousands(999.0, 0), "999");
        assert_eq!(format_thousands(1_000.0, 0), "1,000");
        assert_eq!(format_thousands(100_000.0, 0), "100,000");
        assert_eq!(format_thousands(-12_345.0, 0), "-12,345");
        assert_eq!(format_thousands(0.5, 2), "0.50");
        assert_eq!(format_thousands(0.0, 0), "0");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc_minute(1_700_000_000), "2023-11-14 22:13 UTC");
        // A leap day, and the last minute of a leap year.
        assert_eq!(format_utc_minute(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc_minute(1_735_689_599), "2024-12-31 23:59 UTC");
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration(" 0s ").unwrap(), Duration::ZERO);
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in ["", "s", "ten", "10x", "-1s", "1.2.3s", "25h", "10 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0").unwrap(), CpuList(vec![0]));
        assert_eq!(parse_cpu_list("0,2-4").unwrap(), CpuList(vec![0, 2, 3, 4]));
        assert_eq!(parse_cpu_list("3, 1").unwrap(), CpuList(vec![3, 1]));
        for bad in ["", "1,", "a", "3-1", "1,1", "0-1,1", "99999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn name_value_pairs() {
        assert_eq!(
            parse_name_value("wampring=ws://127.0.0.1:8080/ws").unwrap(),
            ("wampring".to_string(), "ws://127.0.0.1:8080/ws".to_string())
        );
        for bad in ["novalue", "=x", "a b=x", "a=", "a/b=1"] {
            assert!(parse_name_value(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn switches_and_formats() {
        assert!(parse_on_off("on").unwrap());
        assert!(!parse_on_off("OFF").unwrap());
        assert!(parse_on_off("maybe").is_err());
        assert_eq!(format_rate(51234.4), "51234");
        assert_eq!(format_rate(2.5), "2.50");
        assert_eq!(format_micros(18.24), "18.2");
        assert_eq!(format_micros(12345.6), "12346");
    }
}
