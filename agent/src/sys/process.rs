//! This process's own resource use from procfs, for the `process_*` metrics every exporter has: resident memory,
//! CPU seconds, open and allowed file descriptors, start time. The parsers are pure; `self_stats` reads.

/// One reading; a field that could not be read is `None` (its metric is then left as it was).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// Fields of `/proc/PID/stat` after the command name: (utime, stime, starttime in clock ticks, vsize bytes, rss
/// pages). The command name is in parentheses and may itself contain spaces and parentheses.
pub fn parse_stat(stat: &str) -> Option<(u64, u64, u64, u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")" come fields 3 (state) onwards: utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let at = |field: usize| f.get(field - 3).and_then(|v| v.parse::<u64>().ok());
    Some((at(14)?, at(15)?, at(22)?, at(23)?, at(24)?))
}

/// `btime` (boot time, Unix seconds) from `/proc/stat`.
pub fn parse_btime(stat: &str) -> Option<u64> {
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The soft `Max open files` limit from `/proc/PID/limits`.
pub fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Reads this process's statistics. Bounded: three small procfs files and one directory listing.
pub fn self_stats() -> ProcessStats {
    // SAFETY: sysconf has no preconditions.
    let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    let (ticks, page) = (u64::try_from(ticks).unwrap_or(100).max(1), u64::try_from(page).unwrap_or(4096));
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let parsed = stat.as_deref().and_then(parse_stat);
    let btime = std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(parse_btime);
    ProcessStats {
        cpu_seconds: parsed.map(|(u, s, ..)| (u + s) as f64 / ticks as f64),
        resident_bytes: parsed.map(|(.., rss)| rss * page),
        virtual_bytes: parsed.map(|(.., vsize, _)| vsize),
        start_time_seconds: parsed.zip(btime).map(|((.., start, _, _), b)| b as f64 + start as f64 / ticks as f64),
        open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
        max_fds: std::fs::read_to_string("/proc/self/limits").ok().as_deref().and_then(parse_max_fds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_captured_stat_line_with_a_hostile_command_name() {
        // A line in /proc/PID/stat's layout (proc(5)) for a process named "a) b (c".
        let stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1510 0 0 0 25 7 0 0 20 0 3 0 1234567 \
                    1175552000 4321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(parse_stat(stat), Some((25, 7, 1234567, 1175552000, 4321)));
        // `cat /proc/self/stat` on this project's Debian 12 VM (kernel 6.18).
        let real = "22117 (cat) R 22113 22113 14366 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 502644 3133440 359 \
                    18446744073709551615 94644326121472 94644326141353 140726322349792 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 \
                    0 94644326157360 94644326158976 94644411588608 140726322354901 140726322354921 140726322354921 \
                    140726322356203 0\n";
        assert_eq!(parse_stat(real), Some((0, 0, 502644, 3133440, 359)));
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn parses_boot_time_and_the_soft_fd_limit() {
        assert_eq!(parse_btime("cpu  1 2 3\nintr 5\nbtime 1764627000\nprocesses 9\n"), Some(1764627000));
        assert_eq!(parse_btime("cpu 1\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63504                63504                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(parse_max_fds("Max open files            unlimited            unlimited            files\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let s = self_stats();
        assert!(s.resident_bytes.is_some_and(|b| b > 0), "{s:?}");
        assert!(s.open_fds.is_some_and(|n| n >= 3), "{s:?}");
        assert!(s.start_time_seconds.is_some_and(|t| t > 1.0e9), "{s:?}");
        assert!(s.cpu_seconds.is_some() && s.max_fds.is_some(), "{s:?}");
    }
}
