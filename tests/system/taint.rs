//! System tests of the node taint (`[kubernetes] taint`) and `/readyz?gate=1`: the real daemon in a world whose
//! Service routing comes and goes, against the API server stand-in (merge patches of `spec.taints` with their
//! `resourceVersion`, NodeRestriction's rule for node identities). A node with no proxy is tainted within
//! seconds; kube-proxy's rules remove the taint (through a 409 when someone else changed the Node meanwhile); a
//! conflict puts it back; a failed source leaves it; the API server away changes nothing and the local
//! endpoints answer; other taints survive every patch; `routewarden untaint` removes it; a kubelet identity is
//! refused by NodeRestriction without holding up the conditions.

use std::time::{Duration, Instant};

use routewarden_system_tests::apiserver::{ApiServer, Auth};
use routewarden_system_tests::{Daemon, World};
use serde_json::{json, Value};

const OVERALL: &str = "kube-proxy-iptables-TestOverallIPTablesRules.txt";
const NODE: &str = "node-t";
const KEY: &str = "routewarden.io/service-routing-not-ready";

fn ours(taints: &[Value]) -> bool {
    taints.iter().any(|t| t["key"] == KEY && t["effect"] == "NoSchedule")
}

fn section(w: &World, kubeconfig: &str) -> String {
    let path = w.dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig).unwrap();
    format!(
        "[daemon]\ndebounce_ms = 100\nresync_secs = 3600\n\n[kubernetes]\nenabled = true\ntaint = true\nkubeconfig = \
         \"{}\"\nnode_name = \"{NODE}\"\n",
        path.display()
    )
}

fn gate(d: &Daemon) -> (u16, String) {
    d.get("/readyz?gate=1")
}

/// Waits up to `secs` for `/readyz?gate=1` to answer `code` with a body containing `text`.
fn wait_gate(d: &Daemon, w: &World, secs: u64, code: u16, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (c, body) = gate(d);
        if c == code && body.contains(text) {
            return;
        }
        assert!(Instant::now() < deadline, "/readyz?gate=1 is {c} {body:?}, not {code} {text:?}\n{}", d.log(w));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_taint_follows_the_node_gate_and_never_touches_other_taints() {
    let Some(mut w) = World::new("taint-gate") else { return };
    let token = "rw-taint-token-2b7e151628aed2a6abf7158809cf4f3c";
    let mut server = ApiServer::start(&w.name, NODE, &Auth::Token(token.into()));
    let other = json!({"key": "example.com/dedicated", "value": "db", "effect": "NoExecute"});
    server.set_taints(vec![other.clone()]);
    // No Service proxy at all: the gate is unmet.
    let proc = w.fake_proc(&["kubelet"]);
    let d = w.serve(&format!("{proc}{}", section(&w, &server.kubeconfig(&Auth::Token(token.into())))));
    d.wait_notify("READY=1");
    let start = Instant::now();
    server.wait_for(10, "the taint on a node without Service routing", |s| ours(&s.taints()));
    eprintln!("tainted {} ms after READY", start.elapsed().as_millis());
    assert!(server.taints().contains(&other), "another's taint kept: {:?}", server.taints());
    let (code, body) = gate(&d);
    assert_eq!(code, 503, "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r: Value = serde_json::from_str(&d.get("/status").1).unwrap();
        let g = &r["node_gate"];
        if g["taint"] == "present" {
            assert_eq!(g["state"], "unmet", "{g}");
            assert!(g["why"][0].as_str().unwrap().starts_with("service-proxy:"), "{g}");
            break;
        }
        assert!(Instant::now() < deadline, "the report's node gate: {g}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(body.starts_with("gate unmet:") && body.contains("service-proxy"), "{body}");
    assert_eq!(d.get("/readyz").0, 200, "plain /readyz is the daemon's READY");
    server.wait_for(5, "a Warning Event for the taint", |s| {
        s.events().iter().any(|e| e["reason"] == "ServiceRoutingNotReady" && e["type"] == "Warning")
    });
    let patch =
        server.requests().into_iter().find(|r| r.method == "PATCH" && r.path == format!("/api/v1/nodes/{NODE}"));
    let patch = patch.unwrap();
    assert_eq!((patch.content_type.as_str(), patch.status), ("application/merge-patch+json", 200));
    assert!(patch.body["metadata"]["resourceVersion"].is_string(), "the patch carries its precondition");

    // Someone else changes the Node (a third taint): routewarden's view is now stale. Then kube-proxy programs
    // its rules: the removal meets a 409, the Node is read again, and the taint goes with the others kept.
    let third = json!({"key": "example.com/maintenance", "effect": "PreferNoSchedule"});
    server.set_taints(vec![other.clone(), json!({"key": KEY, "effect": "NoSchedule"}), third.clone()]);
    server.race_taint_patches(2);
    w.fake_proc(&["kubelet", "kube-proxy"]);
    w.iptables_fixture("nft", OVERALL);
    server.wait_for(15, "the taint removed once kube-proxy programs Services", |s| !ours(&s.taints()));
    assert_eq!(server.taints(), vec![other.clone(), third.clone()], "only its own taint removed");
    let conflicts = server.requests().iter().filter(|r| r.status == 409).count();
    assert_eq!(conflicts, 2, "the raced patches were refused, the Node read again and the patch retried");
    wait_gate(&d, &w, 5, 200, "gate met");
    server.wait_for(5, "a Normal Event for the removal", |s| {
        s.events().iter().any(|e| e["reason"] == "ServiceRoutingReady" && e["type"] == "Normal")
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, m) = d.get("/metrics");
        if m.contains("routewarden_kubernetes_taint{state=\"absent\"} 1")
            && m.contains("routewarden_kubernetes_taint_transitions_total 2")
        {
            assert!(m.contains("routewarden_kubernetes_taint{state=\"present\"} 0"), "{m}");
            break;
        }
        assert!(Instant::now() < deadline, "taint metrics: {m}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Cilium's socket-LB next to kube-proxy: a conflict closes the gate again and the taint comes back.
    w.socket_lb();
    w.lb4_map(&[([10, 96, 0, 1], 443, 0)]);
    w.fake_proc(&["kubelet", "kube-proxy", "cilium-agent"]);
    w.veth("cilium_host", "cilium_net"); // a link change: the daemon collects
    server.wait_for(10, "the taint back on a conflict", |s| ours(&s.taints()));
    wait_gate(&d, &w, 5, 503, "no-conflict");

    // A failed source: the gate is unknown and the taint stays, though the conflict is gone meanwhile.
    let ip_vs = w.dir.path().join("ip_vs");
    let _ = std::fs::remove_file(&ip_vs);
    std::fs::create_dir_all(&ip_vs).unwrap();
    w.fake_proc(&["kubelet", "cilium-agent"]);
    w.ns("nft flush ruleset");
    d.signal(libc::SIGHUP);
    wait_gate(&d, &w, 10, 503, "gate unknown");
    std::thread::sleep(Duration::from_secs(2));
    assert!(ours(&server.taints()), "a failed source never removes the taint: {:?}", server.taints());

    // The API server away for a minute: local endpoints answer, nothing changes; back, the taint goes (Cilium alone is a
    // programmed Service proxy).
    server.stop();
    std::fs::remove_dir(&ip_vs).unwrap();
    d.signal(libc::SIGHUP);
    wait_gate(&d, &w, 10, 200, "gate met");
    let away = Instant::now();
    while away.elapsed() < Duration::from_secs(60) {
        for path in ["/status", "/healthz", "/readyz?gate=1", "/metrics"] {
            let t = Instant::now();
            assert_eq!(d.get(path).0, 200, "{path} while the API server is away");
            assert!(t.elapsed() < Duration::from_secs(2), "{path} took {:?}", t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(ours(&server.taints()), "nothing changed while the API server was away");
    server.restart();
    server.wait_for(60, "the taint removed once the API server is back", |s| !ours(&s.taints()));
    assert_eq!(server.taints(), vec![other.clone(), third.clone()]);

    // Stopped with the taint on: `routewarden untaint` removes it and only it.
    w.fake_proc(&["kubelet"]);
    d.signal(libc::SIGHUP);
    server.wait_for(10, "the taint again without a proxy agent", |s| ours(&s.taints()));
    d.signal(libc::SIGTERM);
    d.wait_notify("STOPPING=1");
    let (code, out, err) = w.run("untaint");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("removed taint {KEY}:NoSchedule from Node {NODE}")), "{out}");
    assert_eq!(server.taints(), vec![other.clone(), third], "untaint removes only its own taint");
    let (code, out, _) = w.run("untaint");
    assert_eq!((code, out.contains("has no taint")), (0, true), "{out}");
    assert_eq!(server.refused(), Vec::<String>::new(), "nothing a real API server would refuse");
}

#[test]
fn a_kubelet_identity_may_not_taint_and_says_so_without_holding_up_the_conditions() {
    let Some(mut w) = World::new("taint-noderestr") else { return };
    let server = ApiServer::start(&w.name, NODE, &Auth::ClientCert);
    let proc = w.fake_proc(&["kubelet"]);
    let d = w.serve(&format!("{proc}{}", section(&w, &server.kubeconfig(&Auth::ClientCert))));
    d.wait_notify("READY=1");
    server.wait_for(10, "ServiceRoutingMissing=True", |s| {
        s.condition("ServiceRoutingMissing").is_some_and(|c| c["status"] == "True")
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = d.get("/status");
        let r: Value = serde_json::from_str(&body).unwrap();
        let k = &r["sources"]["kubernetes"];
        if k["error"].as_str().is_some_and(|e| e.contains("not allowed to modify taints")) {
            assert_eq!(k["status"], "failed", "{k}");
            break;
        }
        assert!(Instant::now() < deadline, "no NodeRestriction error: {k}\n{}", d.log(&w));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!ours(&server.taints()));
    server.wait_for(5, "the findings' Events still sent", |s| s.events().iter().any(|e| e["type"] == "Warning"));
}
