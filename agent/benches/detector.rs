//! Detector benchmark at scale: generates kube-proxy rulesets of N Services x 5 endpoints, loads them into a
//! network namespace with the real iptables-restore (nft and legacy backends), and times in one run, side by side:
//! a full `iptables-save`, the targeted `iptables -t nat -S KUBE-SERVICES`, `routewarden check`, and parsing the
//! full dump; plus the peak RSS of `check`. Needs root. Numbers go to BENCHMARKS.md.
//!
//! cargo bench --bench detector -- [--sizes 1000,10000,50000] [--backends nft,legacy]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

#[path = "support.rs"]
pub mod support;

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use routewarden::sources::iptables::parse_save;

const ENDPOINTS: usize = 5;

/// A 16-character base32-looking suffix, like kube-proxy's hashed chain names.
fn suffix(kind: u8, i: usize) -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(kind);
    let mut s = String::with_capacity(16);
    for _ in 0..16 {
        s.push(ALPHA[(x % 32) as usize] as char);
        x = x / 32 + u64::from(kind) * 7 + 1;
    }
    s
}

/// kube-proxy iptables-mode restore text for `n` ClusterIP Services with ENDPOINTS endpoints each.
pub fn ruleset(n: usize) -> String {
    let mut s = String::with_capacity(n * 1200);
    s.push_str("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    s.push_str(
        ":KUBE-SERVICES - [0:0]\n:KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FORWARD - [0:0]\n:KUBE-NODEPORTS - [0:0]\n",
    );
    s.push_str(":KUBE-PROXY-FIREWALL - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\n:KUBE-FIREWALL - [0:0]\n");
    s.push_str("-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n");
    s.push_str(
        "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    s.push_str("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n");
    s.push_str(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n",
    );
    s.push_str(":KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n");
    s.push_str(":KUBE-PROXY-CANARY - [0:0]\n");
    for i in 0..n {
        let _ = writeln!(s, ":KUBE-SVC-{} - [0:0]", suffix(1, i));
        for e in 0..ENDPOINTS {
            let _ = writeln!(s, ":KUBE-SEP-{} - [0:0]", suffix(2, i * ENDPOINTS + e));
        }
    }
    s.push_str("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
    s.push_str("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
    s.push_str("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n");
    s.push_str("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n");
    s.push_str("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n");
    for i in 0..n {
        let (a, b) = (10 + i / 65536, i % 65536);
        let ip = format!("10.{a}.{}.{}", b / 256, b % 256);
        let _ = writeln!(
            s,
            "-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment \"ns{i}/svc{i}:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-{}",
            suffix(1, i)
        );
    }
    s.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
    for i in 0..n {
        let svc = suffix(1, i);
        let _ = writeln!(s, "-A KUBE-SVC-{svc} ! -s 10.0.0.0/8 -p tcp -m comment --comment \"ns{i}/svc{i}:http cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ");
        for e in 0..ENDPOINTS {
            let sep = suffix(2, i * ENDPOINTS + e);
            let left = ENDPOINTS - e;
            if left > 1 {
                let _ = writeln!(s, "-A KUBE-SVC-{svc} -m comment --comment \"ns{i}/svc{i}:http -> ep{e}\" -m statistic --mode random --probability {:.11} -j KUBE-SEP-{sep}", 1.0 / left as f64);
            } else {
                let _ = writeln!(
                    s,
                    "-A KUBE-SVC-{svc} -m comment --comment \"ns{i}/svc{i}:http -> ep{e}\" -j KUBE-SEP-{sep}"
                );
            }
            let j = i * ENDPOINTS + e;
            let ep = format!("172.{}.{}.{}", 16 + j / 65536 % 16, j / 256 % 256, j % 256);
            let _ = writeln!(
                s,
                "-A KUBE-SEP-{sep} -s {ep}/32 -m comment --comment \"ns{i}/svc{i}:http\" -j KUBE-MARK-MASQ"
            );
            let _ = writeln!(s, "-A KUBE-SEP-{sep} -p tcp -m comment --comment \"ns{i}/svc{i}:http\" -m tcp -j DNAT --to-destination {ep}:8080");
        }
    }
    s.push_str("COMMIT\n");
    s
}

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
