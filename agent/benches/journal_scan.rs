//! Journal I/O benchmarks: `scan-journal` over a 1,000,000-entry journal against `journalctl --file X -o json`
//! alone, and the CPU `serve` uses while following a journal written at 1,000 entries per second. Needs
//! systemd-journal-remote; the follow part needs root (network namespace). Numbers go to BENCHMARKS.md.
//!
//! cargo bench --bench journal_scan -- [--entries 1000000] [--follow-secs 30]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

#[path = "support.rs"]
mod support;

#[path = "journal_rules.rs"]
#[allow(dead_code, unused_imports)]
mod journal_rules;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn export(entries: &[routewarden::journal::Entry], start_usec: u64, out: &mut Vec<u8>) {
    for (i, e) in entries.iter().enumerate() {
        out.extend(
            format!("__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n", start_usec + i as u64, 1000 + i).as_bytes(),
        );
        out.extend(b"_BOOT_ID=0123456789abcdef0123456789abcdef\nPRIORITY=6\n");
        out.extend(format!("_SYSTEMD_UNIT={}\n", e.unit).as_bytes());
        out.extend(b"MESSAGE=");
        out.extend(e.message.as_bytes());
        out.extend(b"\n\n");
    }
}

fn timed(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let st = cmd.stdout(Stdio::null()).status().unwrap();
    assert!(st.success() || st.code().is_some_and(|c| c <= 2), "{cmd:?}: {st}");
    t.elapsed()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !support::benchmarking(&args) {
        return;
    }
    let opt = |name: &str, default: &str| support::opt(&args, name, default);
    let n: usize = opt("--entries", "1000000").parse().unwrap();
    let follow_secs: u64 = opt("--follow-secs", "30").parse().unwrap();
    let bin = env!("CARGO_BIN_EXE_routewarden");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bench.journal");

    let entries = journal_rules::lines(n);
    let mut buf = Vec::with_capacity(n * 300);
    export(&entries, 1_790_000_000_000_000, &mut buf);
    let mut child = Command::new("/lib/systemd/systemd-journal-remote")
        .args(["--split-mode=none", "-o"])
        .arg(&file)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&buf).unwrap();
    assert!(child.wait().unwrap().success());
    drop(buf);

    let mut jctl = Vec::new();
    let mut scan = Vec::new();
    for _ in 0..3 {
        jctl.push(timed(Command::new("journalctl").args(["-o", "json", "--file"]).arg(&file)));
        scan.push(timed(Command::new(bin).args(["--config", "/dev/null", "scan-journal", "--file"]).arg(&file)));
    }
    jctl.sort();
    scan.sort();
    let (j, s) = (jctl[1].as_secs_f64(), scan[1].as_secs_f64());
    println!("| entries | journalctl -o json s | scan-journal s | ratio |");
    println!("|---|---|---|---|");
    println!("| {n} | {j:.2} | {s:.2} | {:.2} |", s / j);

    if !support::root() {
        eprintln!("the follow part needs root; skipping it");
        return;
    }
    let ns = "rw-bench-journal";
    let _ = Command::new("ip").args(["netns", "del", ns]).output();
    assert!(Command::new("ip").args(["netns", "add", ns]).status().unwrap().success());
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, format!("cgroup_roots = []\n[journal]\ndirectory = \"{}\"\n", live.display())).unwrap();
    let mut writer = Command::new("/lib/systemd/systemd-journal-remote")
        .args(["--split-mode=none", "-o"])
        .arg(live.join("live.journal"))
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(bin)
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .env("STATE_DIRECTORY", dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let mut stdin = writer.stdin.take().unwrap();
    let pid = daemon.id();
    let t0 = support::cpu_seconds(pid);
    let start = Instant::now();
    let mut sent = 0usize;
    let now_usec = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    while start.elapsed() < Duration::from_secs(follow_secs) {
        // 100 entries every 100 ms: 1,000 entries per second, one in ten matching a rule.
        let mut chunk = Vec::new();
        export(&entries[sent % (n - 100)..sent % (n - 100) + 100], now_usec(), &mut chunk);
        stdin.write_all(&chunk).unwrap();
        stdin.flush().unwrap();
        sent += 100;
        std::thread::sleep(Duration::from_millis(100));
    }
    let t1 = support::cpu_seconds(pid);
    println!();
    println!("| following | seconds | entries written | serve CPU % (incl. its journalctl) |");
    println!("|---|---|---|---|");
    let journalctl_cpu: f64 = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .is_ok_and(|s| s.contains(&format!(") S {pid} ")) || s.contains(&format!(") R {pid} ")))
        })
        .map(support::cpu_seconds)
        .sum();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| 1,000 entries/s | {secs:.0} | {sent} | {:.2} (serve alone {:.2}; journalctl total since start {:.1} s) |",
        ((t1 - t0) + journalctl_cpu) / secs * 100.0,
        (t1 - t0) / secs * 100.0,
        journalctl_cpu
    );
    drop(stdin);
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = writer.wait();
    let _ = Command::new("ip").args(["netns", "del", ns]).output();
}
