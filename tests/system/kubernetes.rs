//! System tests of the Kubernetes exporter (`[kubernetes]`): the real daemon in a conflict world talks to the
//! API server stand-in (`harness::apiserver`: HTTPS with the kubeconfig's CA, client-certificate or token
//! authentication, strategic-merge checks) in the world's own network namespace. A conflict sets
//! `ServiceRoutingConflict=True` within seconds and its resolution `False` (that world reads its processes from a
//! procfs stand-in; where a decisive source is not read a cleared condition is `Unknown`); Events de-duplicate; the API server
//! away for a minute never holds up `/status`, `/metrics` or `/healthz`, and the condition arrives once it is
//! back; a restart clears the conditions a previous run left; tokens never reach logs or the report.

use std::time::{Duration, Instant};

use routewarden_system_tests::apiserver::{ApiServer, Auth};
use routewarden_system_tests::World;

const OVERALL: &str = "kube-proxy-iptables-TestOverallIPTablesRules.txt";
const CLUSTER_IP: u8 = 0;
const NODE: &str = "node-a";

/// Cilium with socket-LB and kube-proxy replacement next to kube-proxy's iptables rules: a conflict.
fn conflict_world(name: &str) -> Option<World> {
    let mut w = World::new(name)?;
    w.iptables_fixture("nft", OVERALL);
    w.veth("cilium_host", "cilium_net");
    w.socket_lb();
    w.lb4_map(&[([10, 96, 0, 1], 443, CLUSTER_IP), ([10, 96, 0, 10], 53, CLUSTER_IP)]);
    Some(w)
}

/// The `[kubernetes]` section for a kubeconfig written to the world's directory.
fn kube_section(w: &World, kubeconfig: &str) -> String {
    let path = w.dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig).unwrap();
    format!(
        "[daemon]\ndebounce_ms = 100\nresync_secs = 3600\n\n[kubernetes]\nenabled = true\nkubeconfig = \"{}\"\n",
        path.display()
    )
}

fn status(d: &routewarden_system_tests::Daemon) -> serde_json::Value {
    let (code, body) = d.get("/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits (up to 10 s: the daemon re-renders after its debounce) for the `kubernetes` source to be `want`.
fn wait_source(d: &routewarden_system_tests::Daemon, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = status(d);
        if r["sources"]["kubernetes"]["status"] == want {
            return;
        }
        assert!(Instant::now() < deadline, "kubernetes source not {want}: {:#}", r["sources"]["kubernetes"]);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a condition says once its finding cleared in a served world: `Unknown`, since the harness disables the
/// processes source there (a decisive source not read: `coverage.incomplete`), and routewarden claims no
/// all-clear it cannot back (`False` is covered by the exporter's unit tests on recorded reports).
const UNKNOWN: &str = "Unknown";

fn is(server: &ApiServer, kind: &str, want: &str) -> bool {
    server.condition(kind).is_some_and(|c| c["status"] == want)
}

#[test]
fn a_conflict_sets_the_condition_its_resolution_clears_it_and_events_deduplicate() {
    let Some(mut w) = conflict_world("kube-conflict") else { return };
    let server = ApiServer::start(&w.name, NODE, &Auth::ClientCert);
    let section = kube_section(&w, &server.kubeconfig(&Auth::ClientCert));
    // This world reads its processes (from a procfs stand-in), so every decisive source is read and the
    // resolution below can be an all-clear.
    let proc = w.fake_proc(&["kubelet", "kube-proxy", "cilium-agent"]);
    let d = w.serve(&format!("{proc}{section}"));
    d.wait_notify("READY=1");

    let start = Instant::now();
    server.wait_for(10, "ServiceRoutingConflict=True", |s| is(s, "ServiceRoutingConflict", "True"));
    eprintln!("ServiceRoutingConflict=True {} ms after READY", start.elapsed().as_millis());
    let c = server.condition("ServiceRoutingConflict").unwrap();
    assert_eq!(c["reason"], "ServiceRoutingConflict", "{c}");
    assert!(c["message"].as_str().unwrap().contains("kube-proxy"), "the finding's summary: {c}");
    assert!(server.condition("Ready").is_some_and(|r| r["reason"] == "KubeletReady"), "the kubelet's condition kept");
    assert!(server.condition("StaleServiceRules").is_none(), "no False condition added to a node that never had it");
    let reqs = server.requests();
    assert!(reqs.iter().all(|r| r.auth == "certificate"), "every request authenticated by the client certificate");
    let patch = reqs.iter().find(|r| r.method == "PATCH" && r.path == format!("/api/v1/nodes/{NODE}/status")).unwrap();
    assert_eq!(patch.content_type, "application/strategic-merge-patch+json");
    assert_eq!(patch.status, 200);
    assert_eq!(patch.body["status"]["conditions"].as_array().unwrap().len(), 1, "{}", patch.body);
    server.wait_for(5, "the conflict's Warning Event", |s| {
        s.events().iter().any(|e| e["type"] == "Warning" && e["reason"] == "ServiceRoutingConflict")
    });
    let e = server.events().into_iter().find(|e| e["reason"] == "ServiceRoutingConflict").unwrap();
    assert_eq!(e["involvedObject"]["uid"], format!("uid-{NODE}"), "the Node's uid from the API server: {e}");
    wait_source(&d, "ok");
    let (_, metrics) = d.get("/metrics");
    assert!(metrics.contains("routewarden_kubernetes_up 1"), "{metrics}");
    assert!(metrics.contains("routewarden_kubernetes_requests_total{result=\"ok\"}"), "{metrics}");
    if routewarden_system_tests::tool("promtool") {
        let file = w.dir.path().join("metrics.txt");
        std::fs::write(&file, &metrics).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("promtool check metrics < {}", file.display()))
            .output()
            .unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.is_empty(), "promtool: {said}\n{metrics}");
    }

    // Resolved: kube-proxy is removed (its process and, in the world's own namespace, its rules). Every decisive
    // source was read, so the condition turns False, with a Normal Event.
    let transition = c["lastTransitionTime"].clone();
    w.fake_proc(&["kubelet", "cilium-agent"]);
    w.ns("nft flush ruleset");
    server.wait_for(10, "ServiceRoutingConflict=False", |s| is(s, "ServiceRoutingConflict", "False"));
    let c = server.condition("ServiceRoutingConflict").unwrap();
    assert_eq!(c["reason"], "NoServiceRoutingConflict", "{c}");
    assert!(c["lastTransitionTime"].as_str() >= transition.as_str(), "{c}");
    let r = status(&d);
    assert_eq!(r["sources"]["processes"]["status"], "ok", "{:#}", r["sources"]);
    assert!(r["findings"].as_array().unwrap().iter().all(|f| f["id"] != "coverage.incomplete"), "{r:#}");
    server.wait_for(5, "a Normal Event", |s| {
        s.events().iter().any(|e| e["type"] == "Normal" && e["reason"] == "ServiceRoutingConflictCleared")
    });

    // The conflict again: the same Warning Event, its count 2, no second Event.
    w.fake_proc(&["kubelet", "kube-proxy", "cilium-agent"]);
    w.iptables_fixture("nft", OVERALL);
    server.wait_for(10, "ServiceRoutingConflict=True again", |s| is(s, "ServiceRoutingConflict", "True"));
    server.wait_for(5, "the Warning Event's count at 2", |s| {
        s.events().iter().any(|e| e["reason"] == "ServiceRoutingConflict" && e["count"] == 2)
    });
    let warnings: Vec<_> = server.events().into_iter().filter(|e| e["reason"] == "ServiceRoutingConflict").collect();
    assert_eq!(warnings.len(), 1, "de-duplicated: {warnings:#?}");
    assert!(warnings[0]["lastTimestamp"].as_str() >= warnings[0]["firstTimestamp"].as_str());
    let bump = server.requests().into_iter().find(|r| r.method == "PATCH" && r.path.contains("/events/")).unwrap();
    assert_eq!(bump.content_type, "application/strategic-merge-patch+json");
    assert_eq!(bump.body["count"], 2, "{}", bump.body);
    assert_eq!(server.refused(), Vec::<String>::new(), "nothing a real API server would refuse");
}

#[test]
fn the_api_server_away_for_a_minute_never_holds_up_the_local_endpoints_and_a_token_never_leaks() {
    let Some(mut w) = conflict_world("kube-outage") else { return };
    let token = "rw-test-token-4f9c1e2ab7d34c58a0e6b1c2d3e4f5a6";
    let mut server = ApiServer::start(&w.name, NODE, &Auth::Token(token.into()));
    // First a wrong token: refused (401), reported, and neither token appears in the log or the report.
    let wrong = "rw-wrong-token-0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let section = kube_section(&w, &server.kubeconfig(&Auth::Token(wrong.into())));
    let d = w.serve(&section);
    d.wait_notify("READY=1");
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let r = status(&d);
        // Before its first exchange the source is failed too ("no exchange with the API server yet").
        let k = &r["sources"]["kubernetes"];
        if k["status"] == "failed" && k["error"].as_str().is_some_and(|e| !e.contains("no exchange")) {
            break r;
        }
        assert!(Instant::now() < deadline, "no failed kubernetes source: {:#}", r["sources"]);
        std::thread::sleep(Duration::from_millis(100));
    };
    let error = failed["sources"]["kubernetes"]["error"].as_str().unwrap().to_string();
    assert!(error.contains("401") || error.contains("Unauthorized"), "{error}");
    assert!(
        failed["findings"].as_array().unwrap().iter().all(|f| f["id"] != "source.failed"),
        "not a dataplane source"
    );
    assert!(server.requests().iter().all(|r| r.auth == "none"));

    // The right token: the kubeconfig is read again on the next attempt.
    std::fs::write(w.dir.path().join("kubeconfig"), server.kubeconfig(&Auth::Token(token.into()))).unwrap();
    server.wait_for(40, "ServiceRoutingConflict=True", |s| is(s, "ServiceRoutingConflict", "True"));
    assert!(server.requests().iter().any(|r| r.auth == "token"));
    // The round goes on to the conflict's Event after the condition; only a whole round is a success to remember.
    wait_source(&d, "ok");

    // The API server goes away for a minute; meanwhile the conflict is resolved.
    server.stop();
    w.ns("nft flush ruleset");
    let start = Instant::now();
    let mut polls = 0;
    let mut saw_down = false;
    while start.elapsed() < Duration::from_secs(60) {
        for path in ["/status", "/metrics", "/healthz"] {
            let t = Instant::now();
            let (code, body) = d.get(path);
            assert_eq!(code, 200, "{path} while the API server is away: {body}");
            assert!(t.elapsed() < Duration::from_secs(2), "{path} took {:?}", t.elapsed());
            if path == "/status" {
                let r: serde_json::Value = serde_json::from_str(&body).unwrap();
                let k = &r["sources"]["kubernetes"];
                if k["status"] == "failed" {
                    saw_down = true;
                    // When it last worked stays in the report while it is away.
                    let last = k["last_success"].as_str().unwrap_or_else(|| panic!("no last_success: {k}"));
                    assert!(last.ends_with('Z') && last.len() == 20, "RFC 3339 seconds: {k}");
                }
            }
            polls += 1;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(saw_down, "the kubernetes source shows the API server away");
    let (_, metrics) = d.get("/metrics");
    assert!(metrics.contains("routewarden_kubernetes_up 0"), "{metrics}");
    assert!(is(&server, "ServiceRoutingConflict", "True"), "nothing could be sent while it was away");
    eprintln!("{polls} local requests answered while the API server was away");

    server.restart();
    let back = Instant::now();
    server.wait_for(60, "ServiceRoutingConflict no longer True once the API server is back", |s| {
        is(s, "ServiceRoutingConflict", UNKNOWN)
    });
    eprintln!("condition arrived {} ms after the API server came back", back.elapsed().as_millis());
    wait_source(&d, "ok");

    let log = d.log(&w);
    let (_, body) = d.get("/status");
    let (_, metrics) = d.get("/metrics");
    for secret in [token, wrong] {
        assert!(!log.contains(secret), "a token in the daemon's log");
        assert!(!body.contains(secret) && !metrics.contains(secret), "a token in /status or /metrics");
    }
    assert!(log.contains("Kubernetes API"), "the failures were logged: {log}");
}

#[test]
fn a_restart_clears_the_conditions_a_previous_run_left_and_disabled_is_not_incomplete_coverage() {
    let Some(mut w) = World::new("kube-restart") else { return };
    let server = ApiServer::start(&w.name, NODE, &Auth::ClientCert);
    for kind in ["ServiceRoutingConflict", "StaleServiceRules"] {
        server.set_condition(serde_json::json!({"type": kind, "status": "True", "reason": "Old",
            "message": "left by a previous run", "lastHeartbeatTime": "2026-01-01T00:00:00Z",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}));
    }
    let section = kube_section(&w, &server.kubeconfig(&Auth::ClientCert));
    let d = w.serve(&section);
    d.wait_notify("READY=1");
    // Cleared from True; Unknown rather than False since the served world's processes source is disabled.
    server.wait_for(10, "both stale conditions cleared", |s| {
        is(s, "ServiceRoutingConflict", UNKNOWN) && is(s, "StaleServiceRules", UNKNOWN)
    });
    let c = server.condition("StaleServiceRules").unwrap();
    assert_ne!(c["lastTransitionTime"], "2026-01-01T00:00:00Z", "a transition: {c}");
    assert!(server.condition("Ready").is_some_and(|r| r["status"] == "True"), "the kubelet's condition kept");
    // The world has no Service proxy at all: that condition is the one that stands.
    server.wait_for(10, "ServiceRoutingMissing=True", |s| is(s, "ServiceRoutingMissing", "True"));
    assert!(server.condition("CNIAPIServerDeadlock").is_none(), "never set, never added");
    let reasons: Vec<String> = server.events().iter().map(|e| e["reason"].as_str().unwrap().to_string()).collect();
    assert!(!reasons.iter().any(|r| r.contains("Conflict") || r.contains("Stale")), "{reasons:?}");
    drop(d);

    // Without [kubernetes] the source is disabled, and that is no gap in coverage.
    w.config_extra.clear();
    let d = w.serve("");
    d.wait_notify("READY=1");
    let r = status(&d);
    assert_eq!(r["sources"]["kubernetes"]["status"], "disabled");
    let coverage = r["findings"].as_array().unwrap().iter().find(|f| f["id"] == "coverage.incomplete").cloned();
    if let Some(c) = coverage {
        assert!(!c["summary"].as_str().unwrap().contains("kubernetes"), "{c}");
    }
    let (_, metrics) = d.get("/metrics");
    assert!(!metrics.contains("\nroutewarden_kubernetes_up "), "no exporter series when disabled: {metrics}");
}

#[test]
fn an_oversized_answer_from_the_api_server_is_an_error_not_memory() {
    let Some(mut w) = World::new("kube-oversized") else { return };
    let server = ApiServer::start(&w.name, NODE, &Auth::ClientCert);
    server.pad_node(6 << 20);
    let section = kube_section(&w, &server.kubeconfig(&Auth::ClientCert));
    let d = w.serve(&section);
    d.wait_notify("READY=1");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = status(&d);
        let k = &r["sources"]["kubernetes"];
        if k["error"].as_str().is_some_and(|e| e.contains("length limit")) {
            assert_eq!(k["status"], "failed");
            break;
        }
        assert!(Instant::now() < deadline, "no size-limit error: {k:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.get("/healthz").0, 200);
    assert!(server.condition("ServiceRoutingMissing").is_none(), "nothing patched without reading the Node");
}

#[test]
fn events_refused_for_good_are_dropped_and_hold_up_neither_the_source_nor_later_events() {
    let Some(mut w) = conflict_world("kube-forbid") else { return };
    let server = ApiServer::start(&w.name, NODE, &Auth::ClientCert);
    server.forbid_events(true);
    let section = kube_section(&w, &server.kubeconfig(&Auth::ClientCert));
    let d = w.serve(&section);
    d.wait_notify("READY=1");
    server.wait_for(10, "ServiceRoutingConflict=True", |s| is(s, "ServiceRoutingConflict", "True"));
    // The Warning Event was refused (403): dropped and counted; the source is ok, since the conditions went.
    wait_source(&d, "ok");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = d.get("/metrics");
        let dropped = metrics
            .lines()
            .find_map(|l| l.strip_prefix("routewarden_kubernetes_events_dropped_total "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if dropped.is_some_and(|n| n >= 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no dropped Event counted: {metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status(&d)["sources"]["kubernetes"]["status"], "ok", "the drop fails nothing");
    assert!(server.events().is_empty());
    assert!(d.log(&w).contains("dropped"), "the drop is logged");

    // Events allowed again: the next transition's Event goes out, nothing stuck before it.
    server.forbid_events(false);
    w.ns("nft flush ruleset");
    server.wait_for(10, "the Normal Event once Events are allowed", |s| {
        s.events().iter().any(|e| e["reason"] == "ServiceRoutingConflictCleared")
    });
}

/// In a Pod without a kubeconfig: the service account's CA and projected token (read by routewarden, bounded)
/// authenticate against the stand-in; a token the kubelet rotated is what the next connection sends.
#[test]
fn in_cluster_the_service_accounts_token_and_ca_reach_the_api_server() {
    use routewarden::kubernetes::client::{self, ApiClient};
    let Some(w) = World::new("kube-incluster") else { return };
    let token = "rw-sa-token-7c1d9e2fa3b44c6d8e0f1a2b3c4d5e6f";
    let server = ApiServer::start(&w.name, NODE, &Auth::Token(token.into()));
    let sa = tempfile::tempdir().unwrap();
    std::fs::write(sa.path().join("ca.crt"), server.ca_pem()).unwrap();
    let get_node = |written: &str| {
        std::fs::write(sa.path().join("token"), format!("{written}\n")).unwrap();
        let (dir, port) = (sa.path().to_path_buf(), server.port.to_string());
        routewarden_system_tests::in_netns(&w.name, move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let loaded = client::in_cluster(&dir, "127.0.0.1", &port, Some(NODE)).map_err(|e| e.to_string())?;
                let api = ApiClient::connect(loaded, &dir).await.map_err(|e| e.to_string())?;
                api.get_node(NODE).await.map(|v| v.uid).map_err(|e| e.to_string())
            })
        })
    };
    assert_eq!(get_node(token).unwrap().as_deref(), Some("uid-node-a"));
    let last = server.requests().last().cloned().unwrap();
    assert_eq!((last.auth.as_str(), last.status), ("token", 200), "the projected token was sent");
    let err = get_node("rw-rotated-away-0a1b2c3d4e5f60718293a4b5c6d7e8f9").unwrap_err();
    assert!(err.contains("401") && !err.contains("rw-rotated-away"), "{err}");
}
