//! System tests of the startup gate: `routewarden wait` in a namespace while the test creates the required state
//! with the real tools a moment later, and the daemon's `[gate]` holding back READY=1.

use std::process::Child;
use std::time::{Duration, Instant};

use routewarden_system_tests::{ids, World};

/// Asserts that `wait` is still waiting (it must not return before the state it waits for exists).
fn still_waiting(child: &mut Child) {
    assert!(child.try_wait().unwrap().is_none(), "wait returned before the required state was created");
}

/// The wall-clock bound of a test: `wait` was released by what the test created, not by its own timeout (the
/// exit code says that too). How fast it is released is a benchmark (`cargo bench --bench gate`, BENCHMARKS.md), not an
/// assertion, so a loaded machine does not fail these tests.
fn released_before_timeout(took: Duration, timeout: Duration) {
    assert!(took < timeout, "released only after {took:?}, its timeout is {timeout:?}");
}

/// Waits for the child; returns (exit code, stdout, stderr, time from `since` to exit).
fn finish(mut child: Child, since: Instant) -> (i32, String, String, Duration) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let took = since.elapsed();
            let out = child.wait_with_output().unwrap();
            return (
                status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
                took,
            );
        }
        assert!(Instant::now() < deadline, "wait did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_for_chain_created_later(backend: &str) {
    let Some(w) = World::new(&format!("gate-{backend}")) else { return };
    let mut child = w.spawn("wait --for chain:filter/KUBE-FORWARD --timeout 20s --poll-interval 200ms");
    std::thread::sleep(Duration::from_millis(500));
    still_waiting(&mut child);
    let created = Instant::now();
    w.ns(&format!("iptables-{backend} -w -t filter -N KUBE-FORWARD"));
    let (code, out, err, took) = finish(child, created);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok      chain filter/KUBE-FORWARD: in iptables-"), "{out}");
    // Events (nft) or a 200 ms poll (legacy); the latency is measured by the gate benchmark.
    released_before_timeout(took, Duration::from_secs(20));
}

#[test]
fn wait_returns_when_an_nft_backend_chain_appears() {
    wait_for_chain_created_later("nft");
}

#[test]
fn wait_returns_when_a_legacy_backend_chain_appears() {
    wait_for_chain_created_later("legacy");
}

#[test]
fn wait_returns_when_a_link_appears() {
    let Some(w) = World::new("gate-link") else { return };
    let mut child = w.spawn("wait --for link:cilium_host --timeout 20s --output json");
    std::thread::sleep(Duration::from_millis(300));
    still_waiting(&mut child);
    let created = Instant::now();
    w.veth("cilium_host", "cilium_net");
    let (code, out, err, took) = finish(child, created);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcome"], "satisfied");
    assert_eq!(v["requirements"][0]["requirement"], "link cilium_host");
    released_before_timeout(took, Duration::from_secs(20));
}

#[test]
fn a_timeout_exits_1_naming_what_is_missing() {
    let Some(w) = World::new("gate-timeout") else { return };
    w.veth("cilium_host", "cilium_net");
    let start = Instant::now();
    let (code, out, err) =
        w.run("wait --for chain:filter/KUBE-FORWARD --for link:cilium_host --timeout 1s --report-interval 200ms");
    assert_eq!(code, 1, "{out}{err}");
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert!(out.contains("timed out after"), "{out}");
    assert!(
        out.contains(
            "MISSING chain filter/KUBE-FORWARD: not in iptables-nft or iptables-legacy (kube-proxy not running)"
        ),
        "{out}"
    );
    assert!(out.contains("ok      link cilium_host"), "{out}");
    assert!(err.contains("waiting for chain filter/KUBE-FORWARD"), "progress is reported while waiting: {err}");
}

#[test]
fn no_conflict_flips_with_cilium_socket_lb() {
    let Some(mut w) = World::new("gate-conflict") else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    w.process("kube-proxy");
    let (code, out, _) = w.run("wait --for no-conflict --for kube-proxy --timeout 5s");
    assert_eq!(code, 0, "{out}");
    w.assert_recorded("no_conflict_flips_with_cilium_socket_lb-before");
    w.process("cilium-agent");
    w.socket_lb();
    w.assert_recorded("no_conflict_flips_with_cilium_socket_lb-after");
    let (code, out, _) = w.run("wait --for no-conflict --timeout 1s");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MISSING no-conflict") && out.contains("socket-LB"), "{out}");
    let (code, out, _) = w.run("wait --for bpf-prog:cil_sock4_connect --for cilium-lb --timeout 5s");
    assert_eq!(code, 0, "{out}");
}

#[test]
fn the_daemon_is_ready_only_once_the_gate_holds() {
    let Some(mut w) = World::new("gate-daemon") else { return };
    let d = w.serve("[gate]\nrequirements = [\"chain:filter/KUBE-FORWARD\"]\n");
    // The first collection's publish says what the gate waits for; nothing before it may say READY.
    let early = d.wait_notify("STATUS=waiting for chain filter/KUBE-FORWARD");
    assert!(!early.iter().any(|m| m.contains("READY=1")), "READY before the gate held: {early:?}");
    // While it waits it keeps systemd's start timeout from firing (the units ordered after it keep waiting).
    assert!(early.iter().any(|m| m.contains("EXTEND_TIMEOUT_USEC=")), "no EXTEND_TIMEOUT_USEC: {early:?}");
    let (code, body) = d.get("/readyz");
    assert_eq!(code, 503);
    assert!(body.contains("waiting for chain filter/KUBE-FORWARD"), "{body}");
    assert_eq!(d.get("/status").0, 200, "the report is served while the gate is closed");

    w.ns("iptables-nft -w -t filter -N KUBE-FORWARD");
    d.wait_notify("READY=1");
    assert_eq!(d.get("/readyz").0, 200);
    let after = d.notifications_for(Duration::from_millis(1500));
    assert!(!after.iter().any(|m| m.contains("EXTEND_TIMEOUT_USEC=")), "extending after READY: {after:?}");
}

#[test]
fn wait_for_kube_proxy_waits_for_its_rules_instead_of_giving_up() {
    let Some(mut w) = World::new("gate-kp") else { return };
    w.process("kube-proxy");
    let mut child = w.spawn("wait --for kube-proxy --timeout 20s");
    std::thread::sleep(Duration::from_millis(500));
    still_waiting(&mut child);
    let created = Instant::now();
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    let (code, out, err, took) = finish(child, created);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok      kube-proxy: iptables mode, 2 services"), "{out}");
    released_before_timeout(took, Duration::from_secs(20));
}

/// Issue 23: kube-proxy's rules without its process are stale. `wait --for kube-proxy` used to release ("ok
/// kube-proxy: iptables mode, 3 services") while `check` said NOT running and `kube-proxy.stale-rules`.
#[test]
fn wait_for_kube_proxy_does_not_release_on_stale_rules() {
    let Some(mut w) = World::new("gate-kp-stale") else { return };
    w.iptables_fixture("nft", "real-kube-proxy-1.30.5/iptables-nft-mode.n40.iptables-save.txt");
    let (code, out, err) = w.run("wait --for kube-proxy --timeout 1s");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("MISSING kube-proxy: kube-proxy NOT running; its iptables mode rules (42 services) are stale"),
        "{out}"
    );
    let (_, report) = w.check();
    assert_eq!(report["dataplane"]["kube_proxy"]["running"], false, "{report}");
    assert!(ids(&report).contains(&"kube-proxy.stale-rules".to_string()), "{report}");

    w.process("kube-proxy");
    let (code, out, err) = w.run("wait --for kube-proxy --timeout 5s");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok      kube-proxy: iptables mode, 42 services (kube-proxy running)"), "{out}");
}

/// Issue 23: on an empty node `wait` said "kube-proxy mode unknown" where `check` says "none"; "unknown" is for a
/// failed source only.
#[test]
fn wait_and_check_call_an_empty_node_none() {
    let Some(w) = World::new("gate-kp-none") else { return };
    let (code, out, err) = w.run("wait --for kube-proxy --timeout 1s");
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("MISSING kube-proxy: kube-proxy mode none, 0 services"), "{out}");
    let (_, text, _) = w.run("check");
    assert!(text.contains("kube-proxy: none"), "{text}");
}
