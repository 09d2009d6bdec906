//! Journal tests with real journal files (written by systemd-journal-remote, read back by the real journalctl):
//! the labelled corpus of real lines (recall per rule, no benign match), the
//! CNI/API-server deadlock over time, odd entries, stdin, and the daemon following a journal directory with a
//! persisted cursor (also across `kill -9`), a journalctl that dies, hangs or prints garbage and a 200 MB line, and
//! a state directory that is unwritable, full (a tmpfs) or read-only (a bind mount) in the daemon's own mount
//! namespace. The scans need only the journal tools; the daemon tests need a world (root).

use std::process::Command;
use std::time::{Duration, Instant};

use routewarden_system_tests::{self as harness, bin, journal_file, journal_tools, World};

const K: &str = "kubelet.service";

/// Lines of the corpus the deadlock and follower tests reuse.
const CNI_LINE: &str = r#"E0102 10:00:00.123456    1234 kubelet.go:2855] "Container runtime network not ready" networkReady="NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized""#;
const API_LINE: &str = r#"E0102 10:00:01.000000    1234 reflector.go:147] k8s.io/client-go/informers/factory.go:159: Failed to watch *v1.Node: failed to list *v1.Node: Get "https://10.0.0.1:6443/api/v1/nodes?limit=500": dial tcp 10.0.0.1:6443: connect: connection refused"#;

#[derive(serde::Deserialize)]
struct Group {
    source: String,
    unit: String,
    /// The kubelet's API server the group's lines are about (its kubeconfig's `server:`), if the group gives it.
    #[serde(default)]
    api_server: Option<String>,
    lines: Vec<(String, String)>,
}

#[derive(serde::Deserialize)]
struct CorpusFile {
    group: Vec<Group>,
}

/// One corpus line: its writer, label (a rule id or "benign"), message, source and API server.
struct Labelled {
    unit: String,
    label: String,
    message: String,
    source: String,
    api_server: Option<String>,
}

/// Every line of `agent/tests/data/journal/corpus-*.toml`.
fn corpus() -> Vec<Labelled> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/data/journal");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        let f: CorpusFile = toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for g in f.group {
            for (label, message) in g.lines {
                out.push(Labelled {
                    unit: g.unit.clone(),
                    label,
                    message,
                    source: g.source.clone(),
                    api_server: g.api_server.clone(),
                });
            }
        }
    }
    out
}

/// The journal entries a line becomes: under its unit (`docker/<c>` as docker.service with a Kubernetes
/// CONTAINER_NAME), with its own _PID.
fn records(c: &Labelled, usec: u64, pid: u32) -> harness::JournalRecord<'_> {
    let mut fields = vec![("_PID", pid.to_string())];
    let unit = match c.unit.strip_prefix("docker/") {
        Some(container) => {
            fields.push(("CONTAINER_NAME", format!("k8s_{container}_{container}-abcde_kube-system_0b3c2d1e_0")));
            "docker.service"
        }
        None => c.unit.as_str(),
    };
    harness::JournalRecord { usec, unit, fields, message: c.message.as_bytes() }
}

#[test]
fn the_corpus_written_to_a_real_journal_meets_recall_and_raises_nothing_benign() {
    if !journal_tools() {
        return;
    }
    // Lines about a kubeconfig's API server are scanned with that kubeconfig in
    // `the_api_server_of_the_kubelets_kubeconfig_is_recognised_through_a_real_journal`.
    let corpus: Vec<Labelled> = corpus().into_iter().filter(|c| c.api_server.is_none()).collect();
    assert!(corpus.len() >= 400 && corpus.iter().filter(|c| c.label == "benign").count() >= 150);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corpus.journal");
    let base = 1_790_000_000_000_000u64;
    let ts = |i: usize| base + i as u64 * 1_000_000;
    // A writer's multi-line message reaches journald as one entry per physical line (stdout is split at
    // newlines); a kernel record stays one entry. The assembler must join them again.
    let mut recs = Vec::new();
    for (i, c) in corpus.iter().enumerate() {
        let whole = records(c, ts(i), 10_000 + i as u32);
        if c.unit == "kernel" || !c.message.contains('\n') {
            recs.push(whole);
            continue;
        }
        for (k, line) in c.message.split('\n').enumerate() {
            recs.push(harness::JournalRecord {
                usec: ts(i) + k as u64 * 1000,
                message: line.as_bytes(),
                fields: whole.fields.clone(),
                ..whole
            });
        }
    }
    assert!(recs.len() > corpus.len(), "the corpus has multi-line messages");
    harness::journal_records(&file, &recs);
    let (_, v) = scan(&["--file", file.to_str().unwrap()]);
    let mut per_rule: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
    let (mut benign_hits, mut misses) = (Vec::new(), Vec::new());
    for (i, c) in corpus.iter().enumerate() {
        let got: Vec<&str> = v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["realtime_usec"] == ts(i))
            .map(|m| m["rule"].as_str().unwrap())
            .collect();
        if c.label == "benign" {
            if !got.is_empty() {
                benign_hits.push(format!("{got:?} on benign {}: {} ({})", c.unit, c.message, c.source));
            }
            continue;
        }
        let e = per_rule.entry(c.label.as_str()).or_default();
        e.1 += 1;
        if got.contains(&c.label.as_str()) {
            e.0 += 1;
        } else {
            misses.push(format!("{} missed {}: {} ({})", c.label, c.unit, c.message, c.source));
        }
    }
    println!("corpus: {} lines, {} benign", corpus.len(), corpus.iter().filter(|c| c.label == "benign").count());
    for (rule, (hit, n)) in &per_rule {
        println!("  {rule:32} recall {:.3} ({hit}/{n})", f64::from(*hit) / f64::from(*n));
    }
    println!("  benign lines matched: {}", benign_hits.len());
    for m in misses.iter().chain(&benign_hits) {
        println!("  {m}");
    }
    // Assembled: no match is reported at a continuation line's own time, and the gRPC dump (whose first line
    // alone matches nothing) matched as a whole.
    let split: Vec<_> = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["realtime_usec"].as_u64().unwrap() % 1_000_000 != 0)
        .collect();
    assert!(split.is_empty(), "matches on continuation lines: {split:?}");
    let dump = corpus.iter().position(|c| c.message.contains("createTransport failed to connect to {")).unwrap();
    assert!(v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["realtime_usec"] == ts(dump) && m["rule"] == "runtime.unhealthy"));
    let low: Vec<_> = per_rule.iter().filter(|(_, (h, n))| f64::from(*h) < 0.95 * f64::from(*n)).collect();
    assert!(low.is_empty(), "recall below 0.95: {low:?}");
    assert!(benign_hits.is_empty(), "benign lines matched");
    let rules: Vec<&str> = v["counts"].as_object().unwrap().keys().map(String::as_str).collect();
    for rule in per_rule.keys() {
        assert!(rules.contains(rule), "{rule} is not a default rule");
    }
}

/// Writes `lines` into a real journal at `file` as journald stores them (a multi-line message one entry per
/// physical line, from the same _PID), the i-th line at `ts(i)`.
fn write_corpus(file: &std::path::Path, lines: &[&Labelled], ts: impl Fn(usize) -> u64) {
    let mut recs = Vec::new();
    for (i, c) in lines.iter().enumerate() {
        let whole = records(c, ts(i), 20_000 + i as u32);
        for (k, line) in c.message.split('\n').enumerate() {
            recs.push(harness::JournalRecord {
                usec: ts(i) + k as u64 * 1000,
                message: line.as_bytes(),
                fields: whole.fields.clone(),
                ..whole
            });
        }
    }
    harness::journal_records(file, &recs);
}

#[test]
fn the_api_server_of_the_kubelets_kubeconfig_is_recognised_through_a_real_journal() {
    if !journal_tools() {
        return;
    }
    let all = corpus();
    let mut servers: Vec<&str> = all.iter().filter_map(|c| c.api_server.as_deref()).collect();
    servers.sort_unstable();
    servers.dedup();
    assert!(servers.len() >= 3, "{servers:?}");
    for server in servers {
        let lines: Vec<&Labelled> = all.iter().filter(|c| c.api_server.as_deref() == Some(server)).collect();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kubelet.journal");
        let ts = |i: usize| 1_790_000_000_000_000u64 + i as u64 * 1_000_000;
        write_corpus(&file, &lines, ts);
        // A node's host root with the kubelet's kubeconfig where kubeadm writes it.
        let root = dir.path().join("host");
        std::fs::create_dir_all(root.join("etc/kubernetes")).unwrap();
        std::fs::write(
            root.join("etc/kubernetes/kubelet.conf"),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: LS0tCg==\n    \
                 server: {server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: \
                 system:node:node-a\n  name: system:node:node-a@kubernetes\ncurrent-context: \
                 system:node:node-a@kubernetes\nusers:\n- name: system:node:node-a\n  user:\n    client-certificate: \
                 /var/lib/kubelet/pki/kubelet-client-current.pem\n"
            ),
        )
        .unwrap();
        let config = dir.path().join("routewarden.toml");
        std::fs::write(&config, format!("host_root = \"{}\"\n", root.display())).unwrap();
        let run = |config: &std::path::Path| {
            let out = Command::new(bin())
                .arg("--config")
                .arg(config)
                .args(["scan-journal", "--output", "json", "--file"])
                .arg(&file)
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
            v
        };
        let matched = |v: &serde_json::Value, i: usize| -> Vec<String> {
            v["matches"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["realtime_usec"] == ts(i))
                .map(|m| m["rule"].as_str().unwrap().to_string())
                .collect()
        };
        let v = run(&config);
        assert!(v["api_server"].as_str().unwrap().starts_with(server), "{}", v["api_server"]);
        assert!(v["api_server"].as_str().unwrap().contains("/etc/kubernetes/kubelet.conf"), "{}", v["api_server"]);
        let mut fallback_hits = 0;
        let fallback = run(std::path::Path::new("/dev/null"));
        for (i, c) in lines.iter().enumerate() {
            let got = matched(&v, i);
            if c.label == "benign" {
                assert!(got.is_empty(), "{got:?} on benign {} ({})", c.message, c.source);
                assert!(matched(&fallback, i).is_empty(), "benign under the fallback: {}", c.message);
            } else {
                assert!(got.contains(&c.label), "{} missed with {server}: {} ({})", c.label, c.message, c.source);
                fallback_hits += usize::from(matched(&fallback, i).contains(&c.label));
            }
        }
        let labelled = lines.iter().filter(|c| c.label != "benign").count();
        println!(
            "{server}: {labelled}/{labelled} with the kubeconfig, {fallback_hits}/{labelled} on the fallback ports"
        );
        if !server.ends_with(":8443") {
            // Port 5000, 6553, or an info-level line: the fallback alone misses them.
            assert!(fallback_hits < labelled, "{server}: the fallback reached every line");
        }
    }
}

fn scan(args: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(bin())
        .arg("--config")
        .arg("/dev/null")
        .arg("scan-journal")
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    let v =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

const HEALTHY_LINE: &str = r#"I0102 10:05:00.000000    1234 kubelet.go:2480] "SyncLoop (probe)" probe="readiness" status="ready" pod="kube-system/coredns-5d78c9869d-abcde""#;

/// The deadlock replayed as the kubelet prints it: the CNI line every 5 s, the API line every 10 s, for `secs`
/// seconds from `start` (unix s).
fn deadlock_episode(start: u64, secs: u64) -> Vec<harness::JournalLine<'static>> {
    let mut v = Vec::new();
    for t in (0..secs).step_by(5) {
        v.push(((start + t) * 1_000_000, K, CNI_LINE.as_bytes()));
        if t % 10 == 0 {
            v.push(((start + t) * 1_000_000 + 500_000, K, API_LINE.as_bytes()));
        }
    }
    v
}

/// `secs` of healthy kubelet lines every 10 s from `start`.
fn healthy(start: u64, secs: u64) -> Vec<harness::JournalLine<'static>> {
    (0..secs).step_by(10).map(|t| ((start + t) * 1_000_000, K, HEALTHY_LINE.as_bytes())).collect()
}

fn ids(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn cni_and_apiserver_failing_together_for_four_minutes_is_a_deadlock() {
    if !journal_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deadlock.journal");
    let start = 1_790_000_000u64;
    journal_file(&file, &deadlock_episode(start, 240));
    let (code, v) = scan(&["--file", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(ids(&v, "findings"), vec!["cni.not-ready", "apiserver.unreachable", "cni-apiserver.deadlock"]);
    assert_eq!(v["counts"]["cni.not-ready"], 48);
    let eps: Vec<_> =
        v["episodes"].as_array().unwrap().iter().filter(|e| e["id"] == "cni-apiserver.deadlock").collect();
    assert_eq!(eps.len(), 1, "{v:#}");
    assert_eq!((eps[0]["ongoing"].as_bool(), eps[0]["severity"].as_str()), (Some(true), Some("critical")));
    let start_s = eps[0]["start_usec"].as_u64().unwrap() / 1_000_000;
    assert!((start + 10..=start + 25).contains(&start_s), "together once both met their thresholds: {start_s}");
}

#[test]
fn an_eight_second_start_up_blip_followed_by_healthy_lines_is_no_deadlock() {
    if !journal_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blip.journal");
    let start = 1_790_000_000u64;
    // A control-plane kubelet's start: both failures once a second for 8 s, then five healthy minutes.
    let mut lines = Vec::new();
    for t in 0..8u64 {
        lines.push(((start + t) * 1_000_000, K, CNI_LINE.as_bytes()));
        lines.push(((start + t) * 1_000_000 + 400_000, K, API_LINE.as_bytes()));
    }
    lines.extend(healthy(start + 10, 300));
    journal_file(&file, &lines);
    let (code, v) = scan(&["--file", file.to_str().unwrap()]);
    assert!(!ids(&v, "findings").contains(&"cni-apiserver.deadlock".to_string()), "{v:#}");
    assert!(!ids(&v, "episodes").contains(&"cni-apiserver.deadlock".to_string()), "{v:#}");
    assert_ne!(code, 2, "{v:#}");
}

#[test]
fn three_deadlock_episodes_on_three_days_are_three_episodes_in_time_order() {
    if !journal_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("days.journal");
    let day0 = 1_790_000_000u64;
    let mut lines = Vec::new();
    for d in 0..3u64 {
        let start = day0 + d * 86_400 + d * 3_600;
        lines.extend(healthy(start - 600, 600));
        lines.extend(deadlock_episode(start, 180 + d * 60));
        lines.extend(healthy(start + 400, 1_200));
    }
    journal_file(&file, &lines);
    let (code, v) = scan(&["--file", file.to_str().unwrap()]);
    assert_eq!(code, 0, "nothing is active at the journal's end: {v:#}");
    let eps: Vec<_> =
        v["episodes"].as_array().unwrap().iter().filter(|e| e["id"] == "cni-apiserver.deadlock").collect();
    assert_eq!(eps.len(), 3, "{v:#}");
    let mut last = 0;
    for (d, e) in eps.iter().enumerate() {
        let (s, end) = (e["start_usec"].as_u64().unwrap() / 1_000_000, e["end_usec"].as_u64().unwrap() / 1_000_000);
        let start = day0 + d as u64 * 90_000;
        assert!(s > last && (start..start + 30).contains(&s), "day {d}: {e}");
        assert!(end >= start + 170 + d as u64 * 60 && end < start + 250 + d as u64 * 60, "day {d}: {e}");
        assert!(e["count"].as_u64().unwrap() > 30 && e["ongoing"] == false, "{e}");
        assert!(e["start"].as_str().unwrap().starts_with("2026-"), "{e}");
        assert!(e["sample"].as_str().unwrap().contains("Container runtime network not ready"), "{e}");
        last = s;
    }
    // The text output lists the episodes in time order.
    let out =
        Command::new(bin()).args(["--config", "/dev/null", "scan-journal", "--file"]).arg(&file).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("CRITICAL cni-apiserver.deadlock")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "{text}");
    assert!(text.contains("No findings at the journal's end."), "{text}");
}

#[test]
fn writers_are_their_systemd_unit_and_only_named_units_are_read() {
    if !journal_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("writers.journal");
    let base = 1_790_000_000_000_000u64;
    let rec = |i: u64, unit, fields: Vec<(&'static str, String)>, message: &'static str| harness::JournalRecord {
        usec: base + i * 1_000_000,
        unit,
        fields,
        message: message.as_bytes(),
    };
    let lock = "Another app is currently holding the xtables lock. Stopped waiting after 5s.";
    let records = vec![
        // A process that calls itself kubelet is not the kubelet.
        rec(0, "sshd.service", vec![("SYSLOG_IDENTIFIER", "kubelet".into())], CNI_LINE),
        rec(1, "kubelet.service", vec![("SYSLOG_IDENTIFIER", "not-kubelet".into())], CNI_LINE),
        // kube-proxy's container log through docker's journald driver, and another container's.
        rec(
            2,
            "docker.service",
            vec![("CONTAINER_NAME", "k8s_kube-proxy_kube-proxy-7x9kq_kube-system_0b3c_0".into())],
            lock,
        ),
        rec(3, "docker.service", vec![("CONTAINER_NAME", "k8s_web_web-0_default_0b3d_0".into())], lock),
        rec(4, "cron.service", vec![], lock),
    ];
    harness::journal_records(&file, &records);
    let (_, v) = scan(&["--file", file.to_str().unwrap()]);
    let got: Vec<(u64, &str, &str)> = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                (m["realtime_usec"].as_u64().unwrap() - base) / 1_000_000,
                m["unit"].as_str().unwrap(),
                m["rule"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(1, "kubelet.service", "cni.not-ready"), (2, "docker/kube-proxy", "iptables.lock-contention")]
    );
    assert_eq!(v["entries"], 3, "sshd.service and cron.service are named by no rule and not read: {v:#}");
}

#[test]
fn multi_line_huge_invalid_utf8_and_binary_messages_are_read_without_loss() {
    if !journal_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("j");
    std::fs::create_dir(&d).unwrap();
    let huge = format!("{} {}", "x".repeat(8000), "Another app is currently holding the xtables lock");
    let multi =
        b"panic: boom\ngoroutine 1 [running]:\nmain.main()\n\tAnother app is currently holding the xtables lock"
            .to_vec();
    let bad: &[u8] = b"E0102 10:00:00.000000 1 k.go:1] \xff\xfe Container runtime network not ready \x00\x01";
    let base = 1_790_000_000_000_000u64;
    journal_file(
        &d.join("odd.journal"),
        &[(base, K, huge.as_bytes()), (base + 1, K, &multi), (base + 2, K, bad), (base + 3, K, &[0u8, 1, 2, 255])],
    );
    let (_, v) = scan(&["--directory", d.to_str().unwrap()]);
    assert_eq!((v["entries"].as_u64(), v["bad_lines"].as_u64()), (Some(4), Some(0)), "{v:#}");
    assert_eq!(v["counts"]["iptables.lock-contention"], 2);
    assert_eq!(v["counts"]["cni.not-ready"], 1);

    // The same through stdin, as `journalctl -o json | routewarden scan-journal -`, with a garbage line.
    let json = Command::new("journalctl").args(["-o", "json", "--all", "--directory"]).arg(&d).output().unwrap().stdout;
    let mut input = json.clone();
    input.extend(b"this line is not json\n");
    let mut child = Command::new(bin())
        .args(["--config", "/dev/null", "scan-journal", "-", "-o", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &input).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["entries"].as_u64(), v["bad_lines"].as_u64()), (Some(4), Some(1)));
    assert_eq!(v["counts"]["iptables.lock-contention"], 2);
}

fn now_usec() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

fn metric(d: &harness::Daemon, name: &str) -> Option<f64> {
    let (_, body) = d.get("/metrics");
    body.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_daemon_follows_a_journal_and_resumes_after_its_cursor() {
    if !journal_tools() {
        return;
    }
    let Some(mut w) = World::new("journal-follow") else { return };
    let jdir = w.dir.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let now = now_usec();
    let cni = CNI_LINE.as_bytes();
    journal_file(
        &jdir.join("a.journal"),
        &[(now - 30_000_000, K, cni), (now - 20_000_000, K, cni), (now - 10_000_000, K, cni)],
    );
    let cfg = format!("[journal]\ndirectory = \"{}\"\nlookback_secs = 3600\n", jdir.display());
    let d = w.serve(&cfg);
    d.wait_notify("READY=1");
    let lines = "routewarden_journal_lines_total{unit=\"kubelet.service\"}";
    wait_until("3 journal lines", || metric(&d, lines) == Some(3.0));
    let s: serde_json::Value = serde_json::from_str(&d.get("/status").1).unwrap();
    assert_eq!(s["sources"]["journal"]["status"], "ok");
    assert!(s["findings"].as_array().unwrap().iter().any(|f| f["id"] == "cni.not-ready"), "{s:#}");
    assert_eq!(metric(&d, "routewarden_journal_matches_total{rule=\"cni.not-ready\"}"), Some(3.0));
    let cursor = w.dir.path().join("state/journal.cursor");
    wait_until("the cursor file", || cursor.exists());
    drop(d);

    // Restarted, it reads only what came after the saved cursor.
    let later = now_usec();
    journal_file(
        &jdir.join("b.journal"),
        &[(later, K, cni), (later + 1, "kernel", b"nfs: server 10.96.0.20 not responding, still trying")],
    );
    w.config_extra.clear();
    let d = w.serve(&cfg);
    d.wait_notify("READY=1");
    wait_until("the kernel line", || metric(&d, "routewarden_journal_lines_total{unit=\"kernel\"}") == Some(1.0));
    assert_eq!(
        metric(&d, lines),
        Some(1.0),
        "lines before the cursor were counted again; cursor {:?}; log:\n{}",
        std::fs::read_to_string(&cursor),
        d.log(&w)
    );
    assert_eq!(metric(&d, "routewarden_journal_matches_total{rule=\"cni.not-ready\"}"), Some(1.0));
    // One new line is below the rule's threshold of 3: the finding survives only because the rule's window
    // before the cursor was replayed.
    let s: serde_json::Value = serde_json::from_str(&d.get("/status").1).unwrap();
    assert!(s["findings"].as_array().unwrap().iter().any(|f| f["id"] == "cni.not-ready"), "{s:#}");
    let saved = std::fs::read_to_string(&cursor).unwrap();
    assert_eq!(saved.lines().count(), 2, "cursor and its time: {saved:?}");
}

#[test]
fn the_daemon_matches_the_configured_api_server_on_any_port() {
    // kubernetes#127747: the API server behind a load balancer on port 5000, which no fallback port covers.
    if !journal_tools() {
        return;
    }
    let Some(mut w) = World::new("journal-apiserver") else { return };
    let jdir = w.dir.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let line = all_lines_of("https://github.com/kubernetes/kubernetes/issues/127747");
    let now = now_usec();
    let entries: Vec<harness::JournalLine> =
        (0..3).map(|i| (now - 30_000_000 + i * 5_000_000, K, line.as_bytes())).collect();
    journal_file(&jdir.join("a.journal"), &entries);
    let cfg = format!(
        "[journal]\ndirectory = \"{}\"\nlookback_secs = 3600\napi_server = \"https://10.99.99.99:5000\"\n",
        jdir.display()
    );
    let d = w.serve(&cfg);
    d.wait_notify("READY=1");
    wait_until("3 journal lines", || {
        metric(&d, "routewarden_journal_lines_total{unit=\"kubelet.service\"}") == Some(3.0)
    });
    assert_eq!(metric(&d, "routewarden_journal_matches_total{rule=\"apiserver.unreachable\"}"), Some(3.0));
    let s: serde_json::Value = serde_json::from_str(&d.get("/status").1).unwrap();
    assert!(s["findings"].as_array().unwrap().iter().any(|f| f["id"] == "apiserver.unreachable"), "{s:#}");
    assert!(d.log(&w).contains("API server endpoint https://10.99.99.99:5000 (as given)"), "{}", d.log(&w));
}

/// The message of the (single-line) corpus group from `source`.
fn all_lines_of(source: &str) -> String {
    corpus().into_iter().find(|c| c.source == source).map(|c| c.message).unwrap()
}

#[test]
fn a_cursor_file_of_nul_bytes_is_gone_the_source_says_so_and_the_lookback_is_read() {
    // What a crash can leave of a cursor saved without fsync: once "nul byte found" every 30 s, for ever.
    if !journal_tools() {
        return;
    }
    let Some(mut w) = World::new("journal-nul") else { return };
    let jdir = w.dir.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let now = now_usec();
    let cni = CNI_LINE.as_bytes();
    journal_file(
        &jdir.join("a.journal"),
        &[(now - 30_000_000, K, cni), (now - 20_000_000, K, cni), (now - 10_000_000, K, cni)],
    );
    let cfg = format!("[journal]\ndirectory = \"{}\"\nlookback_secs = 3600\n", jdir.display());
    let cursor = w.dir.path().join("state/journal.cursor");
    std::fs::create_dir_all(cursor.parent().unwrap()).unwrap();
    std::fs::write(&cursor, [0u8; 160]).unwrap();
    let d = w.serve(&cfg);
    d.wait_notify("READY=1");
    let lines = "routewarden_journal_lines_total{unit=\"kubelet.service\"}";
    wait_until("3 journal lines", || metric(&d, lines) == Some(3.0));
    let s = status(&d);
    assert_eq!(s["sources"]["journal"]["status"], "ok", "{s:#}");
    let note = s["sources"]["journal"]["note"].as_str().unwrap_or_default();
    assert!(note.contains("cannot be used") && note.contains("look-back window"), "{s:#}");
    assert!(s["findings"].as_array().unwrap().iter().any(|f| f["id"] == "cni.not-ready"), "{s:#}");
    wait_until("a usable cursor saved", || {
        std::fs::read_to_string(&cursor).is_ok_and(|c| c.starts_with("s=") && !c.contains('\0'))
    });
}

#[test]
fn a_dying_journalctl_marks_the_journal_failed_and_is_restarted() {
    let Some(mut w) = World::new("journal-dies") else { return };
    let line = format!(
        "{{\"__CURSOR\":\"s=1\",\"__REALTIME_TIMESTAMP\":\"{}\",\"_SYSTEMD_UNIT\":\"kubelet.service\",\"MESSAGE\":\"Another app is currently holding the xtables lock\"}}",
        now_usec()
    );
    let marker = w.dir.path().join("second-run");
    let fake = w.dir.path().join("journalctl");
    // First run: one entry, then dies. Later runs: quiet for 3 s (so the failure stays visible whatever the load),
    // then one entry, then stays up like a following journalctl.
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ ! -e {m} ]; then touch {m}; echo '{line}'; echo 'journalctl: simulated crash' >&2; exit 1; fi\n\
             sleep 3\necho '{line}'\nexec sleep 600\n",
            m = marker.display()
        ),
    )
    .unwrap();
    harness::sh(&format!("chmod +x {}", fake.display()));
    let d = w.serve(&format!("[journal]\njournalctl = \"{}\"\n", fake.display()));
    d.wait_notify("READY=1");
    wait_until("the journal source to fail", || {
        let s: serde_json::Value = serde_json::from_str(&d.get("/status").1).unwrap();
        s["sources"]["journal"]["status"] == "failed"
            && s["sources"]["journal"]["error"].as_str().unwrap_or("").contains("simulated crash")
    });
    wait_until("the journal source to recover", || {
        let s: serde_json::Value = serde_json::from_str(&d.get("/status").1).unwrap();
        s["sources"]["journal"]["status"] == "ok"
    });
    // The restarted journalctl resumes after the last entry read (its arguments carry that cursor); here it prints
    // one more entry after 3 s.
    let mut last = None;
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(15) && last != Some(2.0) {
        last = metric(&d, "routewarden_journal_matches_total{rule=\"iptables.lock-contention\"}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(last, Some(2.0), "the second entry was not counted; daemon log:\n{}", d.log(&w));
}

#[test]
fn an_unwritable_state_directory_fails_the_journal_source_only() {
    if !journal_tools() {
        return;
    }
    let Some(mut w) = World::new("journal-state") else { return };
    // A regular file where the state directory should be.
    std::fs::write(w.dir.path().join("state"), b"").unwrap();
    // A journal of the test's own (not the host's, whose journalctl errors would outrank the cursor's).
    let cfg = cni_journal(&w);
    let d = w.serve(&cfg);
    d.wait_notify("READY=1");
    wait_until("the journal source to say the cursor cannot be saved", || {
        let s = status(&d);
        s["sources"]["journal"]["status"] == "failed"
            && s["sources"]["journal"]["error"].as_str().unwrap_or("").contains("saving the journal cursor")
    });
    assert_eq!(status(&d)["sources"]["nftables"]["status"], "ok");
}

#[test]
fn a_journalctl_that_hangs_is_noticed_and_restarted() {
    let Some(mut w) = World::new("journal-hangs") else { return };
    let entry = |usec: u64| {
        format!("{{\"__CURSOR\":\"s={usec}\",\"__REALTIME_TIMESTAMP\":\"{usec}\",\"_SYSTEMD_UNIT\":\"kubelet.service\",\"MESSAGE\":\"x\"}}")
    };
    let now = now_usec();
    let fake = w.dir.path().join("journalctl");
    // Following, it delivers one old entry and then nothing; asked once, it shows the journal has moved on.
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$*\" in *--follow*) echo '{}'; exec sleep 600;; *) echo '{}';; esac\n",
            entry(now - 100_000_000),
            entry(now)
        ),
    )
    .unwrap();
    harness::sh(&format!("chmod +x {}", fake.display()));
    let d = w.serve(&format!("[journal]\njournalctl = \"{}\"\nhang_check_secs = 1\n", fake.display()));
    d.wait_notify("READY=1");
    wait_until("the hang to be noticed", || {
        let s: serde_json::Value = serde_json::from_str(&d.get("/status").1).unwrap();
        s["sources"]["journal"]["error"].as_str().unwrap_or("").contains("stopped delivering entries")
    });
}

#[test]
fn a_hanging_hang_probe_is_killed_and_asked_again() {
    let Some(mut w) = World::new("journal-probe-hangs") else { return };
    let entry = |usec: u64| {
        format!("{{\"__CURSOR\":\"s={usec}\",\"__REALTIME_TIMESTAMP\":\"{usec}\",\"_SYSTEMD_UNIT\":\"kubelet.service\",\"MESSAGE\":\"x\"}}")
    };
    let now = now_usec();
    let fake = w.dir.path().join("journalctl");
    let probed = w.dir.path().join("probed");
    // The first one-shot probe hangs (it must be killed at its deadline); the next one answers.
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$*\" in *--follow*) echo '{}'; exec sleep 600;; esac\n\
             if [ ! -e {p} ]; then touch {p}; exec sleep 600; fi\necho '{}'\n",
            entry(now - 100_000_000),
            entry(now),
            p = probed.display()
        ),
    )
    .unwrap();
    harness::sh(&format!("chmod +x {}", fake.display()));
    let d = w.serve(&format!("[journal]\njournalctl = \"{}\"\nhang_check_secs = 1\n", fake.display()));
    d.wait_notify("READY=1");
    wait_until("the hang to be noticed after a hanging probe", || {
        let s: serde_json::Value = serde_json::from_str(&d.get("/status").1).unwrap();
        s["sources"]["journal"]["error"].as_str().unwrap_or("").contains("stopped delivering entries")
    });
    assert!(probed.exists());
}

/// Like [`wait_until`], for states reached only after a retry's backoff (1, 2, 4, ... s).
fn wait_long(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(45);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn status(d: &harness::Daemon) -> serde_json::Value {
    serde_json::from_str(&d.get("/status").1).unwrap()
}

#[test]
fn a_daemon_killed_right_after_new_entries_does_not_count_them_again() {
    if !journal_tools() {
        return;
    }
    let Some(mut w) = World::new("journal-kill9") else { return };
    let jdir = w.dir.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let now = now_usec();
    let cni = CNI_LINE.as_bytes();
    journal_file(&jdir.join("a.journal"), &[(now - 30_000_000, K, cni), (now - 20_000_000, K, cni)]);
    let cfg = format!("[journal]\ndirectory = \"{}\"\nlookback_secs = 3600\n", jdir.display());
    let d = w.serve(&cfg);
    d.wait_notify("READY=1");
    let lines = "routewarden_journal_lines_total{unit=\"kubelet.service\"}";
    wait_until("2 journal lines", || metric(&d, lines) == Some(2.0));
    // New entries; the moment the daemon publishes them it is killed (SIGKILL, no chance to save anything).
    let later = now_usec();
    journal_file(&jdir.join("b.journal"), &[(later, K, cni), (later + 1, K, cni)]);
    let waited = Instant::now();
    while metric(&d, lines) != Some(4.0) {
        assert!(waited.elapsed() < Duration::from_secs(15), "4 journal lines: {:?}\n{}", metric(&d, lines), d.log(&w));
        std::thread::sleep(Duration::from_millis(50));
    }
    let cursor = w.dir.path().join("state/journal.cursor");
    let saved = std::fs::read_to_string(&cursor).unwrap_or_default();
    drop(d);
    // The cursor was saved with the counts it describes, before they were published (once a second, as before,
    // it lagged them by up to a second).
    assert_eq!(saved.lines().nth(1), Some((later + 1).to_string().as_str()), "cursor {saved:?}");

    w.config_extra.clear();
    journal_file(&jdir.join("c.journal"), &[(later + 2, "kernel", b"nfs: server 10.96.0.20 not responding")]);
    let d = w.serve(&cfg);
    d.wait_notify("READY=1");
    wait_until("the kernel line", || metric(&d, "routewarden_journal_lines_total{unit=\"kernel\"}") == Some(1.0));
    assert_eq!(
        metric(&d, lines).unwrap_or(0.0),
        0.0,
        "entries counted before the kill were counted again:\n{}",
        d.log(&w)
    );
}

#[test]
fn a_journalctl_printing_only_garbage_fails_the_source_and_a_200_mb_line_is_skipped_unbuffered() {
    let Some(mut w) = World::new("journal-garbage") else { return };
    let go = w.dir.path().join("go");
    let entry = format!(
        "{{\"__CURSOR\":\"s=1\",\"__REALTIME_TIMESTAMP\":\"{}\",\"_SYSTEMD_UNIT\":\"kubelet.service\",\"MESSAGE\":\"Another app is currently holding the xtables lock\"}}",
        now_usec()
    );
    let fake = w.dir.path().join("journalctl");
    // Following: 150 lines of garbage; once the test says go, a 200 MB line without a newline until its end, then
    // one entry. Asked once (the hang probe): nothing.
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$*\" in *--follow*) ;; *) exit 0;; esac\n\
             i=0; while [ $i -lt 150 ]; do echo \"garbage line $i\"; i=$((i+1)); done\n\
             while [ ! -e {go} ]; do sleep 0.1; done\n\
             head -c 200000000 /dev/zero | tr '\\0' x; echo; echo '{entry}'\nexec sleep 600\n",
            go = go.display()
        ),
    )
    .unwrap();
    harness::sh(&format!("chmod +x {}", fake.display()));
    let d = w.serve(&format!("[journal]\njournalctl = \"{}\"\n", fake.display()));
    d.wait_notify("READY=1");
    wait_until("the journal source to fail on garbage", || {
        let s = status(&d);
        let e = s["sources"]["journal"]["error"].as_str().unwrap_or("").to_string();
        s["sources"]["journal"]["status"] == "failed" && e.contains("not journal entries") && e.contains("garbage line")
    });
    let skipped = metric(&d, "routewarden_journal_skipped_lines_total{reason=\"not-an-entry\"}").unwrap_or(0.0);
    assert!(skipped >= 100.0, "{skipped}");

    std::fs::write(&go, b"").unwrap();
    wait_until("the entry after the 200 MB line", || {
        metric(&d, "routewarden_journal_matches_total{rule=\"iptables.lock-contention\"}") == Some(1.0)
    });
    assert_eq!(status(&d)["sources"]["journal"]["status"], "ok", "an entry ends the garbage");
    assert_eq!(metric(&d, "routewarden_journal_skipped_lines_total{reason=\"too-long\"}"), Some(1.0));
    let proc_status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let peak_kb: u64 = proc_status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(peak_kb < 100 * 1024, "the 200 MB line was buffered: peak RSS {peak_kb} kB");
}

/// The daemon's view of a path inside its private mount namespace.
fn inside(d: &harness::Daemon, path: &std::path::Path) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/{}/root{}", d.child.id(), path.display()))
}

/// A journal directory with three CNI lines (a finding, so the daemon renders and saves as they arrive).
fn cni_journal(w: &World) -> String {
    let jdir = w.dir.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let now = now_usec();
    let cni = CNI_LINE.as_bytes();
    journal_file(
        &jdir.join("a.journal"),
        &[(now - 30_000_000, K, cni), (now - 20_000_000, K, cni), (now - 10_000_000, K, cni)],
    );
    format!("[journal]\ndirectory = \"{}\"\nlookback_secs = 3600\n", jdir.display())
}

#[test]
fn a_full_state_directory_is_reported_once_leaves_no_temp_file_and_recovers() {
    if !journal_tools() {
        return;
    }
    let Some(mut w) = World::new("journal-full") else { return };
    let state = w.dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // A 64 KiB tmpfs, filled, in the daemon's own mount namespace.
    w.serve_mounts = Some(format!(
        "mount -t tmpfs -o size=64k rw-journal-full {s}\ndd if=/dev/zero of={s}/fill bs=4k 2>/dev/null || true",
        s = state.display()
    ));
    let cfg = cni_journal(&w);
    let d = w.serve(&cfg);
    d.wait_notify("READY=1");
    // The journal is still read (its finding is there) while the source says the cursor cannot be saved.
    wait_until("the journal source to report the full state directory", || {
        let s = status(&d);
        s["sources"]["journal"]["status"] == "failed"
            && s["sources"]["journal"]["error"].as_str().unwrap_or("").contains("No space left on device")
            && s["findings"].as_array().unwrap().iter().any(|f| f["id"] == "cni.not-ready")
    });
    assert!(inside(&d, &state).join("fill").exists(), "not the daemon's tmpfs");
    assert!(!inside(&d, &state).join("journal.tmp").exists(), "an empty journal.tmp stayed behind");
    std::thread::sleep(Duration::from_secs(3));
    let warnings = d.log(&w).lines().filter(|l| l.contains("warning: saving the journal cursor")).count();
    assert_eq!(warnings, 1, "the failure is logged once, not every second:\n{}", d.log(&w));

    std::fs::remove_file(inside(&d, &state).join("fill")).unwrap();
    wait_long("the journal source to recover", || status(&d)["sources"]["journal"]["status"] == "ok");
    let saved = std::fs::read_to_string(inside(&d, &state).join("journal.cursor")).unwrap();
    assert_eq!(saved.lines().count(), 2, "{saved:?}");
    assert!(d.log(&w).contains("saved to"), "the recovery is logged: {}", d.log(&w));
    assert!(!state.join("fill").exists(), "the tmpfs reached the test's mount namespace");
}

#[test]
fn a_read_only_state_directory_is_retried_and_recovers_when_writable() {
    if !journal_tools() {
        return;
    }
    let Some(mut w) = World::new("journal-ro") else { return };
    let state = w.dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    w.serve_mounts = Some(format!("mount --bind {s} {s}\nmount -o remount,bind,ro {s}", s = state.display()));
    let cfg = cni_journal(&w);
    let d = w.serve(&cfg);
    d.wait_notify("READY=1");
    wait_until("the journal source to report the read-only state directory", || {
        let s = status(&d);
        s["sources"]["journal"]["status"] == "failed"
            && s["sources"]["journal"]["error"].as_str().unwrap_or("").contains("Read-only file system")
    });
    // Writable again, in the daemon's mount namespace only.
    let ns = format!("--mount=/proc/{}/ns/mnt", d.child.id());
    let out = Command::new("nsenter").arg(&ns).args(["mount", "-o", "remount,bind,rw"]).arg(&state).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_long("the journal source to recover", || status(&d)["sources"]["journal"]["status"] == "ok");
    assert!(state.join("journal.cursor").exists(), "the cursor is saved once the directory is writable");
}

/// Marks a real journal file as written by a systemd newer than any journalctl here: an incompatible-feature bit no
/// systemd defines yet (the header's `incompatible_flags`, le32 at offset 12 after the `LPKSHHRH` signature and
/// `compatible_flags`; systemd `src/libsystemd/sd-journal/journal-def.h`). journalctl then warns "uses an unsupported
/// feature, ignoring file." and goes on without it, as Debian 12's 252 does with a Fedora CoreOS node's files.
fn from_a_newer_systemd(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"LPKSHHRH", "not a journal file");
    let flags = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) | 1 << 30;
    bytes[12..16].copy_from_slice(&flags.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn journal_files_of_a_newer_format_fail_the_source_by_name_and_the_others_are_still_read() {
    // Before: journalctl skipped such a file with a warning on stderr nobody read, exited 0 (or kept following),
    // and the journal source said ok over entries it never saw; `scan-journal` said "No findings".
    if !journal_tools() {
        return;
    }
    let Some(mut w) = World::new("journal-newer") else { return };
    let cfg = cni_journal(&w);
    let jdir = w.dir.path().join("journal");
    let newer = jdir.join("newer.journal");
    journal_file(&newer, &[(now_usec() - 5_000_000, K, API_LINE.as_bytes())]);
    from_a_newer_systemd(&newer);

    let (code, v) = scan(&["--directory", jdir.to_str().unwrap()]);
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["ignored_files"][newer.to_str().unwrap()], "unsupported-feature", "{v:#}");
    assert_eq!(v["entries"], 3, "the readable file is read: {v:#}");

    let d = w.serve(&cfg);
    d.wait_notify("READY=1");
    wait_until("the journal source to name the file it cannot read", || {
        let s = status(&d);
        s["sources"]["journal"]["status"] == "failed"
            && s["sources"]["journal"]["error"].as_str().unwrap_or("").contains(newer.to_str().unwrap())
    });
    // journalctl's warning about the newer file can come before the readable file's lines are counted: the finding
    // of those lines (three over 20 s) is still to come, from a source that stays failed.
    wait_until("the readable file's finding", || {
        let s = status(&d);
        s["findings"].as_array().unwrap().iter().any(|f| f["id"] == "cni.not-ready")
    });
    let s = status(&d);
    assert_eq!(s["sources"]["journal"]["status"], "failed", "{s:#}");
    assert_ne!(s["verdict"], "ok", "{s:#}");
    assert_eq!(s["sources"]["nftables"]["status"], "ok", "{s:#}");
}
