//! A Kubernetes API server stand-in for the exporter's system tests (no real one can run here): HTTPS on a
//! loopback port inside a world's network namespace, with a test CA, a server certificate and a client
//! certificate made with rcgen. It checks what a real API server would for the calls routewarden makes: TLS
//! against the kubeconfig's CA, client-certificate or bearer-token authentication (401 otherwise), the PATCH
//! content type `application/strategic-merge-patch+json` and body shapes, Event bodies, and for the Node's
//! taints a JSON merge patch with its `resourceVersion` precondition (409 when stale) and the NodeRestriction
//! admission rule (a `system:node:` identity may not modify its Node's taints: 403). It keeps one Node
//! (conditions merged by `type`, as the strategic merge does; `resourceVersion` bumped on every change) and the
//! Events, records every request, and can be stopped and started again on the same port.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

/// How the kubeconfig authenticates.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// A bearer token (the server accepts only this one).
    Token(String),
    /// A client certificate signed by the test CA (CN `system:node:<node>`).
    ClientCert,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub content_type: String,
    /// "certificate", "token" or "none".
    pub auth: String,
    pub status: u16,
    pub body: Value,
}

/// The server's objects and its request log.
#[derive(Debug, Default)]
pub struct State {
    pub node: Value,
    pub events: BTreeMap<String, Value>,
    pub requests: Vec<Recorded>,
    /// Bodies that a real API server would refuse, with why (a test asserts there are none).
    pub refused: Vec<String>,
    /// Answer every Event with 403, as RBAC does for an identity without `create` on `events`.
    pub forbid_events: bool,
    /// Writes by someone else that land just before the next taint patches (each a new `resourceVersion`).
    pub racing_writes: u32,
}

/// The test CA and the certificates it signed, as PEM.
pub struct Pki {
    pub ca_pem: String,
    server: (String, String),
    pub client: (String, String),
}

impl Pki {
    pub fn new(node: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(rcgen::DnType::CommonName, "kubernetes");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf = |sans: Vec<String>, cn: &str, client: bool| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(sans).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p.extended_key_usages = vec![if client {
                rcgen::ExtendedKeyUsagePurpose::ClientAuth
            } else {
                rcgen::ExtendedKeyUsagePurpose::ServerAuth
            }];
            let c = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
            (c.pem(), key.serialize_pem())
        };
        Pki {
            ca_pem: ca_cert.pem(),
            server: leaf(vec!["127.0.0.1".into(), "localhost".into()], "kube-apiserver", false),
            client: leaf(vec![], &format!("system:node:{node}"), true),
        }
    }
}

/// A running (or stopped) test API server.
pub struct ApiServer {
    pub ns: String,
    pub port: u16,
    pub node_name: String,
    pub state: Arc<Mutex<State>>,
    pki: Arc<Pki>,
    token: Option<String>,
    rt: tokio::runtime::Runtime,
    stop: Option<(tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

impl ApiServer {
    /// Starts a server in network namespace `ns` holding Node `node` (uid `uid-<node>`, the kubelet's Ready
    /// condition) and accepting `auth`.
    pub fn start(ns: &str, node: &str, auth: &Auth) -> ApiServer {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let state = State {
            node: json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node, "uid": format!("uid-{node}"), "resourceVersion": "1"},
                "spec": {},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status", "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
            }),
            ..State::default()
        };
        let token = match auth {
            Auth::Token(t) => Some(t.clone()),
            Auth::ClientCert => None,
        };
        let mut s = ApiServer {
            ns: ns.to_string(),
            port: 0,
            node_name: node.to_string(),
            state: Arc::new(Mutex::new(state)),
            pki: Arc::new(Pki::new(node)),
            token,
            rt,
            stop: None,
        };
        s.listen();
        s
    }

    fn listen(&mut self) {
        let port = self.port;
        let std_listener = crate::in_netns(&self.ns, move || {
            let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
            l.set_nonblocking(true).unwrap();
            l
        });
        self.port = std_listener.local_addr().unwrap().port();
        let tls = Arc::new(self.server_config());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let state = Arc::clone(&self.state);
        let token = self.token.clone();
        let node = self.node_name.clone();
        let task = self.rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            let mut conns = tokio::task::JoinSet::new();
            let mut stop = stop_rx.clone();
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    Ok((tcp, _)) = listener.accept() => {
                        let acceptor = acceptor.clone();
                        let (state, token, node) = (Arc::clone(&state), token.clone(), node.clone());
                        conns.spawn(async move {
                            let Ok(tls) = acceptor.accept(tcp).await else { return };
                            let cert = tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                            let svc = hyper::service::service_fn(move |req| {
                                let (state, token, node) = (Arc::clone(&state), token.clone(), node.clone());
                                async move { Ok::<_, std::convert::Infallible>(handle(req, cert, token, &node, &state).await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                                .await;
                        });
                    }
                }
            }
            // Stopped: every open connection goes too, as when an API server dies.
            conns.abort_all();
            while conns.join_next().await.is_some() {}
        });
        self.stop = Some((stop_tx, task));
    }

    fn server_config(&self) -> rustls::ServerConfig {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(self.pki.ca_pem.as_bytes()).unwrap()).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).allow_unauthenticated().build().unwrap();
        let cert = CertificateDer::from_pem_slice(self.pki.server.0.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(self.pki.server.1.as_bytes()).unwrap();
        rustls::ServerConfig::builder().with_client_cert_verifier(verifier).with_single_cert(vec![cert], key).unwrap()
    }

    /// Stops answering: returns once the port is closed and open connections are cut.
    pub fn stop(&mut self) {
        if let Some((s, task)) = self.stop.take() {
            let _ = s.send(true);
            let _ = self.rt.block_on(task);
        }
    }

    /// Starts again on the same port, with the same objects.
    pub fn restart(&mut self) {
        self.stop();
        self.listen();
    }

    /// A kubeconfig for this server: its CA, and `auth` (`token` may differ from the one the server accepts).
    pub fn kubeconfig(&self, auth: &Auth) -> String {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let user = match auth {
            Auth::Token(t) => format!("    token: {t}\n"),
            Auth::ClientCert => format!(
                "    client-certificate-data: {}\n    client-key-data: {}\n",
                b64(&self.pki.client.0),
                b64(&self.pki.client.1)
            ),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{}\n    \
             certificate-authority-data: {}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: \
             system:node:{}\ncurrent-context: test\nusers:\n- name: system:node:{}\n  user:\n{user}",
            self.port,
            b64(&self.pki.ca_pem),
            self.node_name,
            self.node_name
        )
    }

    /// The test CA as PEM (what a Pod finds in its service account's `ca.crt`).
    pub fn ca_pem(&self) -> String {
        self.pki.ca_pem.clone()
    }

    /// The Node's condition of `kind`, if it has one.
    pub fn condition(&self, kind: &str) -> Option<Value> {
        let s = self.state.lock().unwrap();
        s.node["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind).cloned()
    }

    /// Pads the Node with an annotation of `bytes` bytes (an oversized answer).
    pub fn pad_node(&self, bytes: usize) {
        let mut s = self.state.lock().unwrap();
        s.node["metadata"]["annotations"] = json!({ "test/padding": "x".repeat(bytes) });
    }

    /// The Node's taints now.
    pub fn taints(&self) -> Vec<Value> {
        self.state.lock().unwrap().node["spec"]["taints"].as_array().cloned().unwrap_or_default()
    }

    /// Sets the Node's taints as someone else would (`kubectl taint`, the kubelet's registration).
    pub fn set_taints(&self, taints: Vec<Value>) {
        let mut s = self.state.lock().unwrap();
        s.node["spec"]["taints"] = Value::Array(taints);
        bump(&mut s.node);
    }

    /// Lets someone else write the Node just before each of the next `n` taint patches (a race: 409).
    pub fn race_taint_patches(&self, n: u32) {
        self.state.lock().unwrap().racing_writes = n;
    }

    /// Refuses (403) or accepts Events from now on.
    pub fn forbid_events(&self, forbid: bool) {
        self.state.lock().unwrap().forbid_events = forbid;
    }

    /// Sets a condition on the Node (as a previous run would have).
    pub fn set_condition(&self, c: Value) {
        let mut s = self.state.lock().unwrap();
        merge_conditions(&mut s.node, &[c]);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn events(&self) -> Vec<Value> {
        self.state.lock().unwrap().events.values().cloned().collect()
    }

    pub fn refused(&self) -> Vec<String> {
        self.state.lock().unwrap().refused.clone()
    }

    /// Waits up to `secs` for `f` to hold of the server; panics with `what` and the request log otherwise.
    pub fn wait_for(&self, secs: u64, what: &str, f: impl Fn(&ApiServer) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !f(self) {
            if std::time::Instant::now() > deadline {
                let log: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| format!("{} {} {} {}", r.method, r.path, r.status, r.body))
                    .collect();
                panic!("{what} within {secs} s; requests: {log:#?}; node: {:#}", self.state.lock().unwrap().node);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A list field, where absent and empty are the same (as the API server's semantic equality has it).
fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// A new `resourceVersion`, as every write gets.
fn bump(node: &mut Value) {
    let rv: u64 = node["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0);
    node["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
}

/// What a real API server would refuse in a taints merge patch: other fields, a taint without key or with an
/// unknown effect.
fn check_taints_patch(body: &Value) -> Option<String> {
    let fields: Vec<&String> = body.as_object()?.keys().collect();
    if fields.iter().any(|k| *k != "metadata" && *k != "spec")
        || body["spec"].as_object().is_some_and(|o| o.keys().any(|k| k != "taints"))
        || body["metadata"].as_object().is_some_and(|o| o.keys().any(|k| k != "resourceVersion"))
    {
        return Some(format!("a taints patch that touches more than spec.taints: {body}"));
    }
    let Some(list) = body["spec"]["taints"].as_array() else {
        return Some(format!("a taints patch without spec.taints: {body}"));
    };
    for t in list {
        let effect = t["effect"].as_str().unwrap_or("");
        if t["key"].as_str().unwrap_or("").is_empty()
            || !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
        {
            return Some(format!("an invalid taint: {t}"));
        }
    }
    None
}

/// Merges conditions into the Node by `type`, as a strategic merge on `status.conditions` does.
fn merge_conditions(node: &mut Value, new: &[Value]) {
    let list = node["status"]["conditions"].as_array_mut().unwrap();
    for c in new {
        match list.iter_mut().find(|o| o["type"] == c["type"]) {
            Some(o) => {
                for (k, v) in c.as_object().unwrap() {
                    o[k] = v.clone();
                }
            }
            None => list.push(c.clone()),
        }
    }
}

fn reply(code: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
               "code": code.as_u16()}),
    )
}

const STRATEGIC: &str = "application/strategic-merge-patch+json";
const MERGE: &str = "application/merge-patch+json";

/// What a real API server would refuse in a condition patch, if anything.
fn check_condition_patch(body: &Value) -> Option<String> {
    let top = body.as_object()?;
    if top.keys().collect::<Vec<_>>() != ["status"]
        || body["status"].as_object()?.keys().collect::<Vec<_>>() != ["conditions"]
    {
        return Some(format!("a status patch with more than status.conditions: {body}"));
    }
    for c in body["status"]["conditions"].as_array()? {
        let ours = ["ServiceRoutingConflict", "ServiceRoutingMissing", "StaleServiceRules", "CNIAPIServerDeadlock"];
        if !ours.contains(&c["type"].as_str().unwrap_or("")) {
            return Some(format!("a condition not routewarden's: {c}"));
        }
        if !matches!(c["status"].as_str(), Some("True" | "False" | "Unknown")) {
            return Some(format!("a condition status not True/False/Unknown: {c}"));
        }
        for k in ["reason", "message", "lastHeartbeatTime", "lastTransitionTime"] {
            if !c[k].is_string() {
                return Some(format!("a condition without {k}: {c}"));
            }
        }
    }
    None
}

fn check_event(body: &Value, node: &str) -> Option<String> {
    let e = body;
    let ok = e["metadata"]["namespace"] == "default"
        && e["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(&format!("{node}.")))
        && e["involvedObject"]["kind"] == "Node"
        && e["involvedObject"]["name"] == node
        && e["source"]["component"] == "routewarden"
        && e["source"]["host"] == node
        && matches!(e["type"].as_str(), Some("Warning" | "Normal"))
        && e["reason"].as_str().is_some_and(|r| !r.is_empty())
        && e["count"] == 1
        && e["firstTimestamp"].is_string()
        && e["lastTimestamp"].is_string();
    (!ok).then(|| format!("an Event a real API server or kubectl would not take as the node's: {e}"))
}

async fn handle(
    req: Request<Incoming>,
    cert: bool,
    token: Option<String>,
    node: &str,
    state: &Mutex<State>,
) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    // routewarden names itself as the field manager of what it patches.
    let managed = req.uri().query().unwrap_or("").split('&').any(|kv| kv == "fieldManager=routewarden");
    let header = |h: &str| req.headers().get(h).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let content_type = header("content-type");
    let bearer = header("authorization").strip_prefix("Bearer ").map(str::to_string);
    let auth = match (&token, &bearer) {
        (None, _) if cert => "certificate",
        (Some(t), Some(b)) if t == b => "token",
        _ => "none",
    };
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    let resp = if auth == "none" {
        status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    } else {
        let node_path = format!("/api/v1/nodes/{node}");
        let events = "/api/v1/namespaces/default/events";
        match (method.as_str(), path.as_str()) {
            ("GET", p) if p == node_path => reply(StatusCode::OK, s.node.clone()),
            ("PATCH", p) if p == format!("{node_path}/status") => {
                if content_type != STRATEGIC {
                    status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", &content_type)
                } else if !managed {
                    let why = format!("a status patch without fieldManager=routewarden: {path}");
                    s.refused.push(why.clone());
                    status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &why)
                } else if let Some(why) = check_condition_patch(&body) {
                    s.refused.push(why.clone());
                    status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &why)
                } else {
                    let new = body["status"]["conditions"].as_array().cloned().unwrap_or_default();
                    merge_conditions(&mut s.node, &new);
                    bump(&mut s.node);
                    reply(StatusCode::OK, s.node.clone())
                }
            }
            ("PATCH", p) if p == node_path => {
                let current = s.node["metadata"]["resourceVersion"].clone();
                let wanted = &body["metadata"]["resourceVersion"];
                if content_type != MERGE {
                    status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", &content_type)
                } else if !managed {
                    let why = format!("a Node patch without fieldManager=routewarden: {path}");
                    s.refused.push(why.clone());
                    status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &why)
                } else if let Some(why) = check_taints_patch(&body) {
                    s.refused.push(why.clone());
                    status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &why)
                } else if s.racing_writes > 0 {
                    s.racing_writes -= 1;
                    bump(&mut s.node);
                    let why = "the object has been modified; please apply your changes to the latest version";
                    status(StatusCode::CONFLICT, "Conflict", why)
                } else if !wanted.is_null() && *wanted != current {
                    let why = "the object has been modified; please apply your changes to the latest version";
                    status(StatusCode::CONFLICT, "Conflict", why)
                } else if auth == "certificate" && list(&body["spec"]["taints"]) != list(&s.node["spec"]["taints"]) {
                    // NodeRestriction (plugin/pkg/admission/noderestriction/admission.go): a node's own identity
                    // may set taints only when it registers, never on an update.
                    let why = format!("nodes \"{node}\" is forbidden: node \"{node}\" is not allowed to modify taints");
                    status(StatusCode::FORBIDDEN, "Forbidden", &why)
                } else {
                    s.node["spec"]["taints"] = body["spec"]["taints"].clone();
                    bump(&mut s.node);
                    reply(StatusCode::OK, s.node.clone())
                }
            }
            ("POST", p) if p == events && s.forbid_events => {
                status(StatusCode::FORBIDDEN, "Forbidden", "events is forbidden: cannot create resource \"events\"")
            }
            ("POST", p) if p == events => {
                let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
                if let Some(why) = check_event(&body, node) {
                    s.refused.push(why.clone());
                    status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &why)
                } else {
                    match s.events.entry(name) {
                        std::collections::btree_map::Entry::Occupied(e) => {
                            status(StatusCode::CONFLICT, "AlreadyExists", e.key())
                        }
                        std::collections::btree_map::Entry::Vacant(e) => {
                            e.insert(body.clone());
                            reply(StatusCode::CREATED, body.clone())
                        }
                    }
                }
            }
            ("PATCH", p) if p.starts_with(&format!("{events}/")) => {
                let name = &p[events.len() + 1..];
                if content_type != STRATEGIC {
                    status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", &content_type)
                } else if !managed {
                    let why = format!("an Event patch without fieldManager=routewarden: {path}");
                    s.refused.push(why.clone());
                    status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &why)
                } else if !s.events.contains_key(name) {
                    status(StatusCode::NOT_FOUND, "NotFound", name)
                } else {
                    let e = s.events.get_mut(name).unwrap();
                    for (k, v) in body.as_object().cloned().unwrap_or_default() {
                        e[k] = v;
                    }
                    let e = e.clone();
                    reply(StatusCode::OK, e)
                }
            }
            _ => status(StatusCode::NOT_FOUND, "NotFound", &path),
        }
    };
    let code = resp.status().as_u16();
    s.requests.push(Recorded { method, path, content_type, auth: auth.to_string(), status: code, body });
    resp
}
