//! Journal tests with real journal files (written by systemd-journal-remote, read back by the real journalctl):
//! every default rule on real-looking lines of several Kubernetes versions, benign lines that must not match, the
//! CNI/API-server deadlock over time, odd entries, stdin, and the daemon following a journal directory with a
//! persisted cursor and a journalctl that dies. The scans need only the journal tools; the daemon tests need a
//! world (root).

use std::process::Command;
use std::time::{Duration, Instant};

use routewarden_system_tests::{self as harness, bin, journal_file, journal_tools, World};

const K: &str = "kubelet.service";

/// (unit, message, the rule it must match or "" for none).
const CORPUS: &[(&str, &str, &str)] = &[
    // cni.not-ready: 1.2x structured klog, 1.18 dockershim wording, k3s, containerd.
    (K, r#"E0102 10:00:00.123456    1234 kubelet.go:2855] "Container runtime network not ready" networkReady="NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized""#, "cni.not-ready"),
    (K, "E0102 10:00:00.123456    1234 kubelet.go:2183] Container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:docker: network plugin is not ready: cni config uninitialized", "cni.not-ready"),
    ("k3s.service", r#"E0102 10:00:00.123456    1234 kubelet.go:2874] "Container runtime network not ready" networkReady="NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized""#, "cni.not-ready"),
    ("containerd.service", r#"time="2026-01-02T10:00:00.000000000Z" level=error msg="failed to load cni during init, please check CRI plugin status before setting up network for pods" error="cni config load failed: no network config found in /etc/cni/net.d: cni plugin not initialized: failed to load cni config""#, "cni.not-ready"),
    // apiserver.unreachable
    (K, r#"E0102 10:00:01.000000    1234 reflector.go:147] k8s.io/client-go/informers/factory.go:159: Failed to watch *v1.Node: failed to list *v1.Node: Get "https://10.0.0.1:6443/api/v1/nodes?limit=500": dial tcp 10.0.0.1:6443: connect: connection refused"#, "apiserver.unreachable"),
    (K, r#"E0102 10:00:02.000000    1234 kubelet_node_status.go:96] "Unable to register node with API server" err="Post \"https://192.168.1.10:6443/api/v1/nodes\": dial tcp 192.168.1.10:6443: i/o timeout" node="node-1""#, "apiserver.unreachable"),
    (K, r#"W0102 10:00:03.000000    1234 reflector.go:535] k8s.io/client-go/informers/factory.go:159: failed to list *v1.Service: Get "https://10.96.0.1:443/api/v1/services?limit=500": net/http: TLS handshake timeout"#, "apiserver.unreachable"),
    (K, r#"E0102 10:00:04.000000    1234 controller.go:145] "Failed to ensure lease exists, will retry" err="Get \"https://10.0.0.1:6443/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1?timeout=10s\": dial tcp 10.0.0.1:6443: connect: no route to host" interval="7s""#, "apiserver.unreachable"),
    // pod.crash-loop: 1.2x and older wording.
    (K, r#"E0102 10:00:00.000000    1234 pod_workers.go:1298] "Error syncing pod, skipping" err="failed to \"StartContainer\" for \"kube-proxy\" with CrashLoopBackOff: \"back-off 5m0s restarting failed container=kube-proxy pod=kube-proxy-7x9kq_kube-system(0b3c2d1e-0000-4000-8000-000000000001)\"" pod="kube-system/kube-proxy-7x9kq" podUID="0b3c2d1e-0000-4000-8000-000000000001""#, "pod.crash-loop"),
    (K, r#"E0102 10:00:00.000000    1234 pod_workers.go:191] Error syncing pod 1234 ("cilium-abcde_kube-system(1234)"), skipping: failed to "StartContainer" for "cilium-agent" with CrashLoopBackOff: "back-off 2m40s restarting failed container=cilium-agent pod=cilium-abcde_kube-system(1234)""#, "pod.crash-loop"),
    // certificate.expired
    (K, r#"E0102 10:00:00.000000    1234 bootstrap.go:266] part of the existing bootstrap client certificate in /etc/kubernetes/kubelet.conf is expired: 2026-01-01 00:00:00 +0000 UTC"#, "certificate.expired"),
    (K, r#"E0102 10:00:00.000000    1234 reflector.go:147] failed to list *v1.Pod: Get "https://10.0.0.1:6443/api/v1/pods": tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2026-01-02T10:00:00Z is after 2026-01-01T00:00:00Z"#, "certificate.expired"),
    (K, r#"E0102 10:00:00.000000    1234 certificate_manager.go:562] kubernetes.io/kube-apiserver-client-kubelet: Failed while requesting a signed certificate from the control plane: cannot create certificate signing request: Unauthorized"#, "certificate.expired"),
    // volume.mount-hang
    ("kernel", "nfs: server 10.96.0.20 not responding, still trying", "volume.mount-hang"),
    (K, r#"E0102 10:00:00.000000    1234 pod_workers.go:1298] "Unable to attach or mount volumes for pod; skipping pod" err="unmounted volumes=[data], unattached volumes=[], failed to process volumes=[]: timed out waiting for the condition" pod="default/app-0""#, "volume.mount-hang"),
    // runtime.unhealthy
    (K, r#"E0102 10:00:00.000000    1234 kubelet.go:2379] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active 3m0.1s ago; threshold is 3m0s""#, "runtime.unhealthy"),
    (K, r#"E0102 10:00:00.000000    1234 kubelet.go:2851] "Container runtime not ready" runtimeReady="RuntimeReady=false reason: message:""#, "runtime.unhealthy"),
    (K, r#"E0102 10:00:00.000000    1234 remote_runtime.go:633] "Status from runtime service failed" err="rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix /run/containerd/containerd.sock: connect: connection refused\"""#, "runtime.unhealthy"),
    // iptables.lock-contention (kube-proxy, kubelet, Cilium all print it)
    (K, "Another app is currently holding the xtables lock. Stopped waiting after 5s.", "iptables.lock-contention"),
    ("cilium.service", "Another app is currently holding the xtables lock; still 4s 100000us time ahead to have a chance to grab the lock...", "iptables.lock-contention"),
    // Benign lines every kubelet and containerd print at start-up.
    (K, "Flag --container-runtime-endpoint has been deprecated, This parameter should be set via the config file specified by the Kubelet's --config flag.", ""),
    (K, r#"I0102 10:00:00.000000    1234 server.go:467] "Kubelet version" kubeletVersion="v1.30.2""#, ""),
    (K, r#"I0102 10:00:00.000000    1234 kuberuntime_manager.go:262] "Container runtime initialized" containerRuntime="containerd" version="1.7.13" apiVersion="v1""#, ""),
    (K, r#"I0102 10:00:00.000000    1234 certificate_manager.go:356] kubernetes.io/kube-apiserver-client-kubelet: Certificate rotation is enabled"#, ""),
    (K, r#"I0102 10:00:00.000000    1234 kubelet_node_status.go:73] "Attempting to register node" node="node-1""#, ""),
    (K, r#"I0102 10:00:00.000000    1234 kubelet_node_status.go:76] "Successfully registered node" node="node-1""#, ""),
    (K, r#"I0102 10:00:00.000000    1234 kubelet.go:2337] "Starting kubelet main sync loop""#, ""),
    (K, r#"I0102 10:00:00.000000    1234 kubelet_node_status.go:497] "Fast updating node status as it just became ready""#, ""),
    (K, r#"E0102 10:00:00.000000    1234 pod_workers.go:1298] "Error syncing pod, skipping" err="failed to \"StartContainer\" for \"coredns\" with CrashLoopBackOff: \"back-off 10s restarting failed container=coredns pod=coredns-5d78c9869d-abcde_kube-system(1)\"" pod="kube-system/coredns-5d78c9869d-abcde""#, ""),
    ("containerd.service", r#"time="2026-01-02T10:00:00.000000000Z" level=info msg="starting containerd" revision=64b8a811b07ba6288238eefc14d898ee0b5b99ba version=1.7.13"#, ""),
    ("sshd.service", "Container runtime network not ready: this is sshd talking, not a kubelet", ""),
];

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

#[test]
fn every_default_rule_matches_its_lines_and_benign_lines_match_nothing() {
    if !journal_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corpus.journal");
    let base = 1_790_000_000_000_000u64;
    let entries: Vec<harness::JournalLine> =
        CORPUS.iter().enumerate().map(|(i, (u, m, _))| (base + i as u64 * 1_000_000, *u, m.as_bytes())).collect();
    journal_file(&file, &entries);
    let (_, v) = scan(&["--file", file.to_str().unwrap()]);
    assert_eq!(v["entries"], CORPUS.len());
    for (i, (unit, message, want)) in CORPUS.iter().enumerate() {
        let ts = base + i as u64 * 1_000_000;
        let got: Vec<&str> = v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["realtime_usec"] == ts)
            .map(|m| m["rule"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = if want.is_empty() { vec![] } else { vec![want] };
        assert_eq!(got, want, "{unit}: {message}");
    }
}

#[test]
fn cni_and_apiserver_failing_together_for_minutes_is_a_deadlock() {
    if !journal_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deadlock.journal");
    let cni = CORPUS[0].1.as_bytes();
    let api = CORPUS[4].1.as_bytes();
    let base = 1_790_000_000_000_000u64;
    let mut entries = Vec::new();
    for t in (0..240u64).step_by(10) {
        entries.push((base + t * 1_000_000, K, cni));
        entries.push((base + (t + 3) * 1_000_000, K, api));
    }
    journal_file(&file, &entries);
    let (code, v) = scan(&["--file", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{v:#}");
    let ids: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["cni.not-ready", "apiserver.unreachable", "cni-apiserver.deadlock"]);
    assert_eq!(v["counts"]["cni.not-ready"], 24);

    // Only two minutes of CNI trouble and a single API error: no deadlock, exit 1 (warnings).
    let short = dir.path().join("short.journal");
    journal_file(
        &short,
        &[(base, K, cni), (base + 60_000_000, K, cni), (base + 100_000_000, K, cni), (base + 110_000_000, K, api)],
    );
    let (code, v) = scan(&["--file", short.to_str().unwrap()]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);
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
    let cni = CORPUS[0].1.as_bytes();
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
    assert_eq!(metric(&d, lines), Some(1.0), "lines before the cursor were counted again");
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
    let d = w.serve("[journal]\nenabled = true\n");
    d.wait_notify("READY=1");
    let s: serde_json::Value = serde_json::from_str(&d.get("/status").1).unwrap();
    assert_eq!(s["sources"]["journal"]["status"], "failed");
    assert!(s["sources"]["journal"]["error"].as_str().unwrap().contains("not writable"), "{s:#}");
    assert_eq!(s["sources"]["nftables"]["status"], "ok");
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
