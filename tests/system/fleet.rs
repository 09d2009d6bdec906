//! System tests of fleet observability: the network metrics listener over TLS with basic auth and client
//! certificates (rcgen certificates, curl, a real Prometheus scraping it), the Host check on the loopback listener,
//! and the Grafana dashboard's queries evaluated against that Prometheus.

use std::path::Path;
use std::time::{Duration, Instant};

use routewarden_system_tests::{self as harness, get, in_netns, World};

const STEP1: &str = "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt";
/// The address of the node's "network" interface in the world (on its loopback device, so no veth is needed).
const NODE_IP: &str = "10.77.0.1";
const PASSWORD: &str = "scrape-s3cret";

/// A CA and a certificate it signed (server or client), as PEM files in `dir`.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} CA"));
        let ca = p.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
        Pki { ca, ca_key }
    }

    /// Writes `<file>.crt` and `<file>.key` for a leaf with the given SANs (IP addresses or names).
    fn leaf(&self, dir: &Path, file: &str, sans: &[&str], client: bool) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, file);
        p.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        std::fs::write(dir.join(format!("{file}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }
}

/// curl inside the world: the HTTP status, or 0 when the TLS handshake or the connection failed.
fn curl(w: &World, args: &str) -> u16 {
    let out = w.ns(&format!("curl -s -o /dev/null -w %{{http_code}} --max-time 10 {args} || true"));
    out.trim().parse().unwrap_or(0)
}

/// Polls Prometheus's instant-query API in the world until `check` accepts the JSON reply (30 s at most).
fn query_until(ns: &str, q: &str, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = query(ns, q);
        if check(&v) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One instant query: the JSON reply (`{"status": "error", ...}` on a bad query), or null when Prometheus did
/// not answer.
fn query(ns: &str, q: &str) -> serde_json::Value {
    let path = format!("/api/v1/query?query={}", urlencode(q));
    let (code, body) = in_netns(ns, move || {
        std::panic::catch_unwind(|| get("127.0.0.1:9090", &path, "")).unwrap_or((0, String::new()))
    });
    if code == 0 {
        return serde_json::Value::Null;
    }
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every PromQL expression in a Grafana dashboard (panel targets and query variables), with Grafana's variables
/// replaced by values Prometheus accepts.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(s)) if !s.is_empty() => out.push(s.clone()),
                        ("query", serde_json::Value::Object(q)) => {
                            if let Some(serde_json::Value::String(s)) = q.get("query") {
                                out.push(s.clone());
                            }
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out.into_iter()
        .map(|q| {
            // label_values(metric, label) is Grafana's, not PromQL: the metric is what Prometheus evaluates.
            let q = match q.strip_prefix("label_values(") {
                Some(rest) => rest.rsplit_once(',').map(|(m, _)| m.to_string()).unwrap_or(rest.to_string()),
                None => q,
            };
            q.replace("$__rate_interval", "1m")
                .replace("$__interval", "1m")
                .replace("$__range", "5m")
                .replace("${job:regex}", ".*")
                .replace("${node:regex}", ".*")
                .replace("$job", ".*")
                .replace("$node", ".*")
        })
        .collect()
}

/// The shipped scrape examples made to run in the world: their files in `dir`, the client certificate enabled, the
/// static targets and Kubernetes node discovery replaced by the world's node, a 1 s interval.
fn prometheus_config(dir: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/prometheus");
    let adapt = |file: &str, replacements: &[(&str, String)]| {
        let mut text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut all = vec![
            ("/etc/prometheus/routewarden/", format!("{}/", dir.display())),
            ("# cert_file:", "cert_file:".to_string()),
            ("# key_file:", "key_file:".to_string()),
        ];
        all.extend(replacements.iter().cloned());
        for (from, to) in all {
            assert!(text.contains(from), "{file} no longer contains {from:?}: update this test");
            text = text.replace(from, &to);
        }
        let start = text.find("scrape_configs:\n").unwrap() + "scrape_configs:\n".len();
        text[start..].to_string()
    };
    let kubernetes = adapt(
        "scrape-kubernetes.yml",
        &[(
            "kubernetes_sd_configs:\n      # Prometheus outside the cluster also needs api_server and authorization here.\n      - role: node",
            format!("file_sd_configs:\n      - files: ['{}/nodes.json']", dir.display()),
        )],
    );
    let static_ = adapt(
        "scrape-static.yml",
        &[
            ("job_name: routewarden", "job_name: routewarden-static".to_string()),
            ("- 10.0.0.5:9978\n          - 10.0.0.6:9978", format!("- {NODE_IP}:9978")),
        ],
    );
    format!("global:\n  scrape_interval: 1s\nscrape_configs:\n{kubernetes}{static_}")
}

#[test]
fn prometheus_scrapes_the_network_listener_over_tls_with_basic_auth_and_the_dashboard_queries_evaluate() {
    let Some(mut w) = World::new("fleet-tls") else { return };
    if !harness::tool("prometheus") || !harness::tool("curl") {
        return;
    }
    w.ns(&format!("ip addr add {NODE_IP}/32 dev lo"));
    w.iptables_fixture("nft", STEP1);
    let dir = w.dir.path().to_path_buf();
    let good = Pki::new(&dir, "fleet");
    good.leaf(&dir, "server", &[NODE_IP, "localhost"], false);
    good.leaf(&dir, "prometheus", &["prometheus"], true);
    let rogue = Pki::new(&dir, "rogue");
    rogue.leaf(&dir, "intruder", &["prometheus"], true);
    let hash = bcrypt::hash(PASSWORD, 6).unwrap();
    // Relative paths: exporter-toolkit takes them from the web configuration's directory.
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: fleet-ca.pem\n  \
             client_auth_type: RequireAndVerifyClientCert\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .unwrap();
    let d = w.serve(&format!(
        "[metrics]\nlisten = \"{NODE_IP}:9978\"\nweb_config = \"{}\"\n",
        dir.join("web.yml").display()
    ));
    d.wait_notify("READY=1");

    let url = |path: &str| format!("https://{NODE_IP}:9978{path}");
    let ca = format!("--cacert {}", dir.join("fleet-ca.pem").display());
    let client =
        format!("--cert {} --key {}", dir.join("prometheus.crt").display(), dir.join("prometheus.key").display());
    let intruder =
        format!("--cert {} --key {}", dir.join("intruder.crt").display(), dir.join("intruder.key").display());
    let creds = format!("-u prometheus:{PASSWORD}");
    assert_eq!(curl(&w, &format!("{ca} {client} {creds} {}", url("/metrics"))), 200, "{}", d.log(&w));
    assert_eq!(curl(&w, &format!("{ca} {client} {creds} {}", url("/healthz"))), 200);
    assert_eq!(curl(&w, &format!("{ca} {client} {}", url("/metrics"))), 401, "no credentials");
    assert_eq!(curl(&w, &format!("{ca} {client} -u prometheus:wrong {}", url("/metrics"))), 401, "wrong password");
    assert_eq!(curl(&w, &format!("{ca} {client} -u nobody:{PASSWORD} {}", url("/metrics"))), 401, "unknown user");
    for path in ["/status", "/findings", "/readyz"] {
        assert_eq!(curl(&w, &format!("{ca} {client} {creds} {}", url(path))), 404, "{path} on the network listener");
    }
    assert_eq!(curl(&w, &format!("{ca} {creds} {}", url("/metrics"))), 0, "no client certificate: handshake refused");
    assert_eq!(curl(&w, &format!("{ca} {intruder} {creds} {}", url("/metrics"))), 0, "a certificate of another CA");
    assert_eq!(curl(&w, &format!("{creds} http://{NODE_IP}:9978/metrics")), 0, "plain HTTP on the TLS port");
    // The loopback listener still serves everything, but not to a rebound DNS name.
    assert_eq!(curl(&w, "http://127.0.0.1:9977/status"), 200);
    assert_eq!(curl(&w, "-H 'Host: rebind.example:9977' http://127.0.0.1:9977/status"), 403);

    // A real Prometheus scrapes it with the client certificate and basic auth, configured by both shipped
    // examples: the static one, and the Kubernetes one with its node discovery replaced by a file listing what
    // role node would find (the kubelet's address and the node name), so that its relabelling is what is tested.
    for (from, to) in [("fleet-ca.pem", "ca.pem"), ("prometheus.crt", "client.crt"), ("prometheus.key", "client.key")] {
        std::fs::copy(dir.join(from), dir.join(to)).unwrap();
    }
    std::fs::write(dir.join("password"), PASSWORD).unwrap();
    std::fs::write(
        dir.join("nodes.json"),
        format!(
            "[{{\"targets\": [\"{NODE_IP}:10250\"], \"labels\": {{\"__meta_kubernetes_node_name\": \"world-node\"}}}}]"
        ),
    )
    .unwrap();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, prometheus_config(&dir)).unwrap();
    let mut prom = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", d.ns))
        .args(["prometheus", "--web.listen-address=127.0.0.1:9090"])
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("prom-data").display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    let up = query_until(&d.ns, "up{job=\"routewarden\"}", |v| v["data"]["result"][0]["value"][1] == "1");
    let up_static = query_until(&d.ns, "up{job=\"routewarden-static\"}", |v| v["data"]["result"][0]["value"][1] == "1");
    let services = query_until(&d.ns, "routewarden_kube_proxy_services", |v| v["data"]["result"][0]["value"][1] == "2");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/grafana/routewarden.json"))
            .unwrap(),
    )
    .unwrap();
    let queries = dashboard_queries(&dashboard);
    let results: Vec<(String, serde_json::Value)> = queries.iter().map(|q| (q.clone(), query(&d.ns, q))).collect();
    let _ = prom.kill();
    let _ = prom.wait();
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "up: {up}\n{log}");
    assert_eq!(services["data"]["result"][0]["value"][1], "2", "{services}");
    assert_eq!(up["data"]["result"][0]["metric"]["node"], "world-node", "{up}");
    assert_eq!(up["data"]["result"][0]["metric"]["instance"], format!("{NODE_IP}:9978"), "{up}");
    assert_eq!(up_static["data"]["result"][0]["value"][1], "1", "static example: {up_static}\n{log}");
    assert_eq!(up_static["data"]["result"][0]["metric"]["node"], NODE_IP, "{up_static}");
    assert!(queries.len() >= 10, "the dashboard has {} queries: {queries:?}", queries.len());
    let failed: Vec<_> = results.iter().filter(|(_, v)| v["status"] != "success").collect();
    assert!(failed.is_empty(), "queries Prometheus refused: {failed:#?}");
    // The per-proxy panel shows this world's kube-proxy with its node, not only a query that parses.
    let (_, per_proxy) = results
        .iter()
        .find(|(q, _)| q.starts_with("max by (node, instance, proxy, mode) (routewarden_service_proxy_info"))
        .expect("the dashboard's per-proxy panel");
    let rows = per_proxy["data"]["result"].as_array().cloned().unwrap_or_default();
    assert!(
        rows.iter().any(|r| r["metric"]["proxy"] == "kube-proxy" && r["metric"]["node"] == "world-node"),
        "the per-proxy panel does not show this node's kube-proxy: {per_proxy}"
    );
}

#[test]
fn dashboard_query_extraction_finds_targets_and_variables() {
    let d = serde_json::json!({
        "panels": [{"targets": [{"expr": "sum by (verdict) (routewarden_verdict{job=~\"$job\"})"}]},
                   {"type": "row", "panels": [{"targets": [{"expr": "rate(x[$__rate_interval])"}]}]}],
        "templating": {"list": [{"name": "node", "query": {"query": "label_values(routewarden_build_info, node)"}}]}
    });
    assert_eq!(
        dashboard_queries(&d),
        ["sum by (verdict) (routewarden_verdict{job=~\".*\"})", "rate(x[1m])", "routewarden_build_info"]
    );
}
