//! Gate benchmark: latency from a required rule or link appearing to `routewarden wait` returning (median of
//! N trials, in a namespace), against the `until iptables -L CHAIN; do sleep 2; done` loop it replaces, and the
//! CPU a `wait` uses while it waits. Needs root. Numbers go to BENCHMARKS.md.
//!
//! cargo bench --bench gate -- [--trials 10] [--idle-secs 60]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

#[path = "support.rs"]
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NS: &str = "rw-bench-gate";

fn sh(script: &str) {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

fn spawn(script: &str) -> Child {
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{NS}"))
        .args(["sh", "-c", &format!("exec {script}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Starts `waiter`, lets it settle, runs `create`, and returns the time from `create` starting to `waiter` exiting.
fn latency(waiter: &str, create: &str, cleanup: &str) -> Duration {
    let mut child = spawn(waiter);
    std::thread::sleep(Duration::from_millis(400));
    let t0 = Instant::now();
    sh(&format!("nsenter --net=/run/netns/{NS} {create}"));
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let took = t0.elapsed();
            assert!(status.success(), "{waiter} failed");
            sh(&format!("nsenter --net=/run/netns/{NS} {cleanup}"));
            return took;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{waiter} did not return");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !support::benchmarking(&args) {
        return;
    }
    let opt = |name: &str, default: &str| support::opt(&args, name, default);
    let trials: usize = opt("--trials", "10").parse().unwrap();
    let idle: u64 = opt("--idle-secs", "60").parse().unwrap();
    if !support::root() {
        eprintln!("the gate benchmark needs root; skipping");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_routewarden");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "cgroup_roots = []\n").unwrap();
    let _ = Command::new("ip").args(["netns", "del", NS]).output();
    sh(&format!("ip netns add {NS} && ip -n {NS} link set lo up"));
    let rw = format!("{bin} --config {}", cfg.display());

    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "nft-backend chain (events)",
            format!("{rw} wait --for chain:filter/KUBE-FORWARD --timeout 60s"),
            "iptables-nft -w -t filter -N KUBE-FORWARD",
            "iptables-nft -w -t filter -X KUBE-FORWARD",
        ),
        (
            "link (events)",
            format!("{rw} wait --for link:cilium_host --timeout 60s"),
            "ip link add cilium_host type veth peer name cilium_net",
            "ip link del cilium_host",
        ),
        (
            "legacy-backend chain (1 s poll)",
            format!("{rw} wait --for chain:filter/KUBE-FORWARD --timeout 60s"),
            "iptables-legacy -w -t filter -N KUBE-FORWARD",
            "iptables-legacy -w -t filter -X KUBE-FORWARD",
        ),
        (
            "2 s poll loop it replaces: until iptables -L KUBE-FORWARD",
            "sh -c 'until iptables-nft -w -t filter -L KUBE-FORWARD >/dev/null 2>&1; do sleep 2; done'".to_string(),
            "iptables-nft -w -t filter -N KUBE-FORWARD",
            "iptables-nft -w -t filter -X KUBE-FORWARD",
        ),
    ];
    println!("| what appears | median ms | max ms | trials |");
    println!("|---|---|---|---|");
    for (name, waiter, create, cleanup) in &cases {
        let runs: Vec<Duration> = (0..trials).map(|_| latency(waiter, create, cleanup)).collect();
        let max = runs.iter().max().unwrap().as_secs_f64() * 1e3;
        println!("| {name} | {:.1} | {max:.1} | {trials} |", median_ms(runs));
    }

    println!();
    println!("| waiting for | CPU over {idle} s % |");
    println!("|---|---|");
    for (name, req) in
        [("link (events only)", "link:never"), ("chain (events + 1 s poll of iptables-legacy)", "chain:filter/NEVER")]
    {
        let mut child = spawn(&format!("{rw} wait --for {req} --timeout {}s", idle + 30));
        std::thread::sleep(Duration::from_secs(1));
        let t0 = support::cpu_seconds(child.id());
        std::thread::sleep(Duration::from_secs(idle));
        let t1 = support::cpu_seconds(child.id());
        let _ = child.kill();
        let _ = child.wait();
        println!("| {name} | {:.2} |", (t1 - t0) / idle as f64 * 100.0);
    }
    sh(&format!("ip netns del {NS}"));
}
