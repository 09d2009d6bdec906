//! Detector benchmark at scale: generates kube-proxy rulesets of N Services x 5 endpoints, loads them into a
//! network namespace with the real iptables-restore (nft and legacy backends), and times in one run, side by side:
//! a full `iptables-save`, the targeted `iptables -t nat -S KUBE-SERVICES`, `routewarden check`, and parsing the
//! full dump; for legacy, reading the tables from the kernel and decoding them in-process, asserting that they
//! and the binary's snapshot agree with `iptables-legacy-save`; plus the peak RSS of `check`. Needs root. Numbers
//! go to BENCHMARKS.md.
//!
//! cargo bench --bench detector -- [--sizes 1000,10000,50000] [--backends nft,legacy]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

#[path = "ruleset.rs"]
pub mod ruleset;
#[path = "support.rs"]
pub mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use routewarden::model::iptables::Ruleset;
use routewarden::sources::iptables::{entries, insert, parse_save};
use routewarden::sys::xtables::{read_table, Family};
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

/// Reads and decodes every legacy IPv4 table of `ns` in-process, on a thread inside the namespace: (time in the
/// getsockopt calls, time decoding, bytes read, the inventory).
fn kernel_read(ns: &str) -> (Duration, Duration, usize, Ruleset) {
    let names = sh(&format!("nsenter --net=/run/netns/{ns} cat /proc/net/ip_tables_names"));
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on this thread only, with a valid namespace fd.
        assert_eq!(unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::CLONE_NEWNET) }, 0);
        let (mut read, mut decode, mut bytes, mut rs) = (Duration::ZERO, Duration::ZERO, 0, Ruleset::default());
        for table in names.split_whitespace() {
            let t = Instant::now();
            let raw = read_table(Family::Ipv4, table, 4 << 30).unwrap();
            read += t.elapsed();
            let t = Instant::now();
            let info = entries::parse_info(&raw.info).unwrap();
            let decoded = entries::decode(Family::Ipv4, &info, raw.entries()).unwrap();
            insert(&mut rs, table, &decoded);
            decode += t.elapsed();
            bytes += raw.entries().len();
        }
        (read, decode, bytes, rs)
    })
    .join()
    .unwrap()
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

    println!("| backend | Services | lines | dump MB | iptables-save s | -t nat -S KUBE-SERVICES s | check s | check / save | parse ms | parse / save | kernel MB | getsockopt ms | decode ms | decode / save | check peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
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
            // Legacy: the kernel reader agrees with iptables-legacy-save (the system test stops at 10k), in-process and
            // in the binary's snapshot; and how long reading and decoding take.
            let (mut kernel, mut getsockopt, mut decode) = (0, Vec::new(), Vec::new());
            if backend == "legacy" {
                let saved = parse_save(&text, "filter").unwrap();
                for _ in 0..runs {
                    let (r, d, bytes, rs) = kernel_read(&ns);
                    assert!(rs == saved, "the kernel reader disagrees with iptables-legacy-save at {n}");
                    (kernel, getsockopt, decode) = (bytes, [getsockopt, vec![r]].concat(), [decode, vec![d]].concat());
                }
                let (_, snap, _) = timed(&ns, &format!("{bin} --config {} snapshot", cfg.display()));
                let snap: serde_json::Value = serde_json::from_slice(&snap).unwrap();
                let from_binary: Ruleset =
                    serde_json::from_value(snap["iptables_legacy"]["data"]["ipv4"].clone()).unwrap();
                assert!(from_binary == saved, "the binary's snapshot disagrees with iptables-legacy-save at {n}");
            }
            let ms = |v: Vec<Duration>| if v.is_empty() { f64::NAN } else { median(v).as_secs_f64() * 1e3 };
            let (getsockopt, decode) = (ms(getsockopt), ms(decode));
            let (save, targeted, check, parse) = (median(save), median(targeted), median(check), median(parse));
            println!(
                "| {backend} | {n} | {} | {:.1} | {:.2} | {:.2} | {:.3} | {:.3} | {:.1} | {:.3} | {:.1} | {:.1} | {:.1} | {:.3} | {:.1} |",
                text.lines().count(),
                text.len() as f64 / 1e6,
                save.as_secs_f64(),
                targeted.as_secs_f64(),
                check.as_secs_f64(),
                check.as_secs_f64() / save.as_secs_f64(),
                parse.as_secs_f64() * 1e3,
                parse.as_secs_f64() / save.as_secs_f64(),
                kernel as f64 / 1e6,
                getsockopt,
                decode,
                decode / 1e3 / save.as_secs_f64(),
                rss as f64 / 1024.0
            );
            sh(&format!("ip netns del {ns}"));
        }
    }
}
