//! Helpers shared by the benchmark binaries: command-line options, CPU time of a process.

#![allow(dead_code, clippy::unwrap_used)]

/// The value after `--name`, or `default`.
pub fn opt(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.into())
}

/// Whether the binary runs as a benchmark (`cargo bench` passes `--bench`; `cargo test --all-targets` does not).
pub fn benchmarking(args: &[String]) -> bool {
    args.iter().any(|a| a == "--bench")
}

/// utime + stime of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s[s.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Whether this process runs as root.
pub fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
