//! Detector benchmark at scale: generates kube-proxy rulesets of N Services x 5 endpoints, loads them into a
//! network namespace with the real iptables-restore (nft and legacy backends), and times in one run, side by side:
//! a full `iptables-save`, the targeted `iptables -t nat -S KUBE-SERVICES`, `routewarden check`, and parsing the
//! full dump; plus the peak RSS of `check`. Needs root. Numbers go to BENCHMARKS.md.
//!
//! cargo bench --bench detector -- [--sizes 1000,10000,50000] [--backends nft,legacy]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

#[path = "ruleset.rs"]
pub mod ruleset;
#[path = "support.rs"]
pub mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use routewarden::sources::iptables::parse_save;
pub use ruleset::ruleset;

pub fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` in the namespace and returns (wall time, stdout, stderr).
fn timed(ns: &str, script: &str) -> (Duration, Vec<u8>, Vec<u8>) {
    let start = Instant::now();
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args(["sh", "-c", &format!("exec {script}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success() || script.contains("check"), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    (start.elapsed(), out.stdout, out.stderr)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !support::benchmarking(&args) {
        // `cargo test --all-targets` runs bench binaries without --bench: nothing to check here.
        return;
    }
    let opt = |name: &str, default: &str| support::opt(&args, name, default);
    let sizes: Vec<usize> = opt("--sizes", "1000,10000,50000").split(',').map(|s| s.parse().unwrap()).collect();
    let backends: Vec<String> = opt("--backends", "nft,legacy").split(',').map(str::to_string).collect();
    if !support::root() {
        eprintln!("the detector benchmark needs root (network namespaces); skipping");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_routewarden");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "cgroup_roots = []\n").unwrap();
    let runs = 3;

    println!("| backend | Services | lines | dump MB | iptables-save s | -t nat -S KUBE-SERVICES s | check s | check / save | parse ms | parse / save | check peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for backend in &backends {
        for &n in &sizes {
            let ns = format!("rw-bench-{backend}-{n}");
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
            sh(&format!("ip netns add {ns}"));
            let rules = dir.path().join("rules.txt");
            std::fs::write(&rules, ruleset(n)).unwrap();
            sh(&format!("nsenter --net=/run/netns/{ns} iptables-{backend}-restore < {}", rules.display()));

            let mut save = Vec::new();
            let mut dump = Vec::new();
            for _ in 0..runs {
                let (t, out, _) = timed(&ns, &format!("iptables-{backend}-save"));
                save.push(t);
                dump = out;
            }
            let mut targeted = Vec::new();
            for _ in 0..runs {
                targeted.push(timed(&ns, &format!("iptables-{backend} -w 5 -t nat -S KUBE-SERVICES")).0);
            }
            let mut check = Vec::new();
            let mut rss = 0;
            let mut services = String::new();
            for _ in 0..runs {
                let (t, out, _) = timed(&ns, &format!("{bin} --config {} check --output json", cfg.display()));
                check.push(t);
                // Peak RSS through GNU time: a child spawned from this (large) process would inherit its
                // high-water mark across exec. Includes check's own children (iptables-legacy-save).
                let (_, time_out, _) = timed(
                    &ns,
                    &format!(
                        "/usr/bin/time -f %M {bin} --config {} check --output json 2>&1 >/dev/null",
                        cfg.display()
                    ),
                );
                let kib: i64 =
                    String::from_utf8_lossy(&time_out).trim().lines().last().unwrap_or("0").parse().unwrap_or(0);
                rss = rss.max(kib);
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                services = v["dataplane"]["kube_proxy"]["services"].to_string();
            }
            assert_eq!(services, n.to_string(), "check must see every Service");
            let text = String::from_utf8(dump).unwrap();
            let mut parse = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                let rs = parse_save(&text, "filter").unwrap();
                parse.push(t.elapsed());
                assert!(rs.chains("nat").count() > n);
            }
            let (save, targeted, check, parse) = (median(save), median(targeted), median(check), median(parse));
            println!(
                "| {backend} | {n} | {} | {:.1} | {:.2} | {:.2} | {:.3} | {:.3} | {:.1} | {:.3} | {:.1} |",
                text.lines().count(),
                text.len() as f64 / 1e6,
                save.as_secs_f64(),
                targeted.as_secs_f64(),
                check.as_secs_f64(),
                check.as_secs_f64() / save.as_secs_f64(),
                parse.as_secs_f64() * 1e3,
                parse.as_secs_f64() / save.as_secs_f64(),
                rss as f64 / 1024.0
            );
            sh(&format!("ip netns del {ns}"));
        }
    }
}
