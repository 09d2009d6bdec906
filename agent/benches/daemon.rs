//! Daemon benchmark: `routewarden serve` in a namespace holding a 10k-Service kube-proxy ruleset (nft backend, or
//! legacy with `--backend legacy`).
//! Measures RSS after the first collection and after an idle minute, CPU used over that minute, and HTTP
//! throughput and p99 latency of /status and /metrics with wrk. Needs root and wrk. Numbers go to BENCHMARKS.md.
//!
//! cargo bench --bench daemon -- [--services 10000] [--idle-secs 60] [--backend nft|legacy] [--wrk yes|no]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

#[path = "detector.rs"]
#[allow(dead_code)]
mod detector;

use std::process::Command;
use std::time::{Duration, Instant};

fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !detector::support::benchmarking(&args) {
        return;
    }
    let opt = |name: &str, default: &str| detector::support::opt(&args, name, default);
    let n: usize = opt("--services", "10000").parse().unwrap();
    let idle: u64 = opt("--idle-secs", "60").parse().unwrap();
    let backend = opt("--backend", "nft");
    let wrk = opt("--wrk", "yes") == "yes";
    if !detector::support::root() {
        eprintln!("the daemon benchmark needs root; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = "rw-bench-daemon";
    let _ = Command::new("ip").args(["netns", "del", ns]).output();
    sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
    let rules = dir.path().join("rules.txt");
    std::fs::write(&rules, detector::ruleset(n)).unwrap();
    sh(&format!("nsenter --net=/run/netns/{ns} iptables-{backend}-restore < {}", rules.display()));
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "cgroup_roots = []\n").unwrap();

    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(env!("CARGO_BIN_EXE_routewarden"))
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    while sh(&format!(
        "nsenter --net=/run/netns/{ns} curl -s -o /dev/null -w '%{{http_code}}' localhost:9977/readyz || true"
    )) != "200"
    {
        assert!(start.elapsed() < Duration::from_secs(60), "daemon not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready = start.elapsed();
    let rss_ready = rss_kib(pid);
    let cpu0 = detector::support::cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(idle));
    let cpu1 = detector::support::cpu_seconds(pid);
    let rss_idle = rss_kib(pid);
    let cpu_pct = (cpu1 - cpu0) / idle as f64 * 100.0;

    println!("| backend | Services | ready after s | RSS ready MiB | RSS after {idle} s idle MiB | CPU over {idle} s idle % |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {backend} | {n} | {:.2} | {:.1} | {:.1} | {:.2} |",
        ready.as_secs_f64(),
        rss_ready as f64 / 1024.0,
        rss_idle as f64 / 1024.0,
        cpu_pct
    );
    println!();
    println!("| endpoint | requests/s | p50 ms | p99 ms | body bytes |");
    println!("|---|---|---|---|---|");
    for path in ["/status", "/metrics", "/healthz"].into_iter().filter(|_| wrk) {
        let out =
            sh(&format!("nsenter --net=/run/netns/{ns} wrk -t2 -c32 -d10s --latency http://127.0.0.1:9977{path}"));
        let field = |key: &str| {
            out.lines()
                .find(|l| l.trim_start().starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("?")
                .to_string()
        };
        let size = sh(&format!("nsenter --net=/run/netns/{ns} curl -s localhost:9977{path} | wc -c"));
        println!("| {path} | {} | {} | {} | {} |", field("Requests/sec:"), field("50%"), field("99%"), size.trim());
    }
    let _ = child.kill();
    let _ = child.wait();
    sh(&format!("ip netns del {ns}"));
}
