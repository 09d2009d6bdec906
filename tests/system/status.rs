//! System test of `routewarden status` against the real daemon in a conflict world (kube-proxy's iptables rules
//! next to Cilium's socket-LB), with the Kubernetes exporter talking to the API server stand-in: what `status`
//! prints is what the daemon sees, its exit code is the daemon's verdict, and it asks the daemon's unix socket
//! from outside the world's network namespace.

use std::time::{Duration, Instant};

use routewarden_system_tests::apiserver::{ApiServer, Auth};
use routewarden_system_tests::{bin, World};

const OVERALL: &str = "kube-proxy-iptables-TestOverallIPTablesRules.txt";
const CLUSTER_IP: u8 = 0;
const NODE: &str = "node-a";

fn status(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin()).args(["--config", "/dev/null", "status"]).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn status_shows_the_daemons_conflict_and_exporter_and_exits_critical() {
    let Some(mut w) = World::new("status") else { return };
    w.iptables_fixture("nft", OVERALL);
    w.veth("cilium_host", "cilium_net");
    w.socket_lb();
    w.lb4_map(&[([10, 96, 0, 1], 443, CLUSTER_IP), ([10, 96, 0, 10], 53, CLUSTER_IP)]);
    let server = ApiServer::start(&w.name, NODE, &Auth::ClientCert);
    let kubeconfig = w.dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(&Auth::ClientCert)).unwrap();
    let socket = w.dir.path().join("routewarden.sock");
    let proc = w.fake_proc(&["kubelet", "kube-proxy", "cilium-agent"]);
    let d = w.serve(&format!(
        "{proc}[daemon]\ndebounce_ms = 100\nresync_secs = 3600\nunix_socket = \"{}\"\n\n[kubernetes]\nenabled = \
         true\nkubeconfig = \"{}\"\n",
        socket.display(),
        kubeconfig.display()
    ));
    d.wait_notify("READY=1");
    let sock = socket.to_str().unwrap();

    // Once the exporter has reached the API server, status shows it beside the conflict.
    let start = Instant::now();
    let (code, out, err) = loop {
        let (code, out, err) = status(&["--socket", sock]);
        if out.contains("API server reached") {
            break (code, out, err);
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the exporter never showed as up: {out}{err}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(code, 2, "the daemon's verdict is critical: {out}{err}");
    assert!(out.starts_with(&format!("asked the daemon on {sock} (last collection ")), "{out}");
    assert!(out.contains(": CRITICAL\n") && out.contains("\nCRITICAL service-routing.conflict: "), "{out}");
    assert!(out.contains("  kube-proxy: iptables mode, nft backend, 5 services"), "{out}");
    assert!(out.contains("kube-proxy replacement ON (socket-LB"), "{out}");
    assert!(out.contains("  node gate:  UNMET"), "{out}");
    assert!(out.contains("\ndaemon:\n  collections: "), "{out}");
    assert!(out.contains(&format!("  kubernetes: Node {NODE}, API server reached, last success ")), "{out}");

    // The JSON is the daemon's /status: the same verdict, the daemon's part with the exporter's counters.
    let (code, json, err) = status(&["--socket", sock, "--output", "json"]);
    assert_eq!(code, 2, "{err}");
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(r["verdict"], "critical");
    assert_eq!(r["daemon"]["kubernetes"]["up"], true, "{:#}", r["daemon"]);
    assert!(r["daemon"]["kubernetes"]["requests_ok"].as_u64().unwrap() > 0, "{:#}", r["daemon"]);
    assert_eq!(r["node_gate"]["state"], "unmet", "{:#}", r["node_gate"]);
    // The report type reads all of it back, the exporter's and the gate's parts included.
    let back: routewarden::report::Report = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), r, "the daemon's report does not round-trip");

    // Stopped: the socket is gone and status says no daemon answers.
    d.signal(libc::SIGTERM);
    d.wait_notify("STOPPING=1");
    let start = Instant::now();
    while socket.exists() {
        assert!(start.elapsed() < Duration::from_secs(5), "the unix socket was left behind on stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, out, err) = status(&["--socket", sock]);
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    assert!(err.contains(&format!("no routewarden daemon answers on {sock} (no such socket)")), "{err}");
}
