//! The local HTTP endpoint: `/status`, `/findings`, `/healthz`, `/readyz`, `/metrics`, all read-only and served
//! from the last published collection. The server is a function of (router, bound listener, shutdown signal).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Semaphore};

use crate::outputs::state::Shared;

const JSON: &str = "application/json";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROM_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The router, testable in-process with `tower::ServiceExt::oneshot`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/findings", get(findings))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            (StatusCode::NOT_FOUND, "not found: try /status, /findings, /healthz, /readyz or /metrics\n")
        })
        .layer(middleware::from_fn(refuse_bodies))
        .with_state(shared)
}

/// The network metrics listener's router: only `/metrics` and `/healthz` (`/status` and `/findings` stay on
/// loopback and the unix socket), behind basic auth when the web configuration has users.
pub fn metrics_router(shared: Arc<Shared>, auth: Option<Arc<crate::outputs::web_config::BasicAuth>>) -> Router {
    let r = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: this listener serves /metrics and /healthz\n") });
    let r = match auth {
        Some(a) => r.layer(middleware::from_fn_with_state(a, crate::outputs::web_config::require_basic_auth)),
        None => r,
    };
    r.layer(middleware::from_fn(refuse_bodies)).with_state(shared)
}

/// For the loopback TCP listener: a request whose `Host` is a name other than `localhost` is refused (a page in a
/// browser on the node could otherwise reach it through DNS rebinding). IP literals and a missing `Host` are
/// accepted: rebinding needs a name, and browsers always send one.
pub fn refuse_unknown_hosts(router: Router) -> Router {
    router.layer(middleware::from_fn(check_host))
}

async fn check_host(req: Request, next: Next) -> Response {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        // Proxies and browsers may read either one: a second Host header could carry the rebinding name.
        return (StatusCode::BAD_REQUEST, "refused: more than one Host header\n").into_response();
    }
    match first {
        Some(h) if !allowed_host(h.as_bytes()) => (
            StatusCode::FORBIDDEN,
            "refused: the Host header must be localhost or an IP address (DNS rebinding protection)\n",
        )
            .into_response(),
        _ => next.run(req).await,
    }
}

/// `localhost`, an IPv4 address or a bracketed IPv6 address, each with an optional port.
fn allowed_host(value: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(value) else { return false };
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || valid_port(port) => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

fn valid_port(p: &str) -> bool {
    p.strip_prefix(':').unwrap_or(p).parse::<u16>().is_ok()
}

/// Every endpoint is a read: a request that carries a body is refused before it is read.
async fn refuse_bodies(req: Request, next: Next) -> Response {
    let h = req.headers();
    let length = h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > 0) || h.contains_key(header::TRANSFER_ENCODING) {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request bodies are not accepted\n").into_response();
    }
    next.run(req).await
}

fn body(content_type: &'static str, text: String) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], text).into_response()
}

fn no_snapshot() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, JSON)],
        "{\"error\":\"no collection has finished yet\"}\n",
    )
        .into_response()
}

async fn status(State(s): State<Arc<Shared>>, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    let p = s.current();
    if p.report.is_none() {
        return no_snapshot();
    }
    body(JSON, if wants_pretty(&q) { p.status_pretty.clone() } else { p.status.clone() })
}

async fn findings(State(s): State<Arc<Shared>>) -> Response {
    let p = s.current();
    if p.report.is_none() {
        return no_snapshot();
    }
    body(JSON, p.findings.clone())
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    if s.healthy() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let msg = format!("the collection loop has made no progress for {} s\n", s.stalled_for());
        (StatusCode::SERVICE_UNAVAILABLE, msg).into_response()
    }
}

/// `/readyz`: the daemon's readiness (READY, latched). `/readyz?gate=1`: the node gate now, for controllers such as
/// node-readiness-controller: 200 while it holds, 503 with the unmet or unknown requirements otherwise.
async fn readyz(State(s): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    if query.as_deref().is_some_and(|q| q.split('&').any(|kv| matches!(kv, "gate=1" | "gate=true" | "gate"))) {
        use crate::rules::gate::NodeGate;
        let (code, text) = match &s.current().node_gate {
            Some(NodeGate::Met) => (StatusCode::OK, "gate met\n".to_string()),
            Some(NodeGate::Unmet(w)) => (StatusCode::SERVICE_UNAVAILABLE, format!("gate unmet: {}\n", w.join("; "))),
            Some(NodeGate::Unknown(w)) => {
                (StatusCode::SERVICE_UNAVAILABLE, format!("gate unknown: {}\n", w.join("; ")))
            }
            None => (StatusCode::SERVICE_UNAVAILABLE, "gate unknown: the first collection has not finished\n".into()),
        };
        return (code, text).into_response();
    }
    if s.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", s.not_ready_reason())).into_response()
    }
}

async fn metrics(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let p = s.current();
    let wants_om = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(prefers_openmetrics);
    if wants_om {
        body(OPENMETRICS, p.openmetrics.clone())
    } else {
        body(PROM_TEXT, p.prometheus_text.clone())
    }
}

/// Whether an `Accept` header prefers OpenMetrics to Prometheus text: media types compared without case, each
/// with its `q` (default 1; 0 refuses); OpenMetrics wins only with a higher `q` than text (`text/plain`,
/// `text/*` or `*/*`), so a tie or a malformed header gets text, the default.
pub fn prefers_openmetrics(accept: &str) -> bool {
    let (mut om, mut text) = (0.0f32, 0.0f32);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)).unwrap_or(0.0);
                }
            }
        }
        match media.as_str() {
            "application/openmetrics-text" => om = om.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    om > 0.0 && om > text
}

/// Whether `?pretty` asks for indentation: present and not `0`, `false` or `no`.
fn wants_pretty(q: &std::collections::HashMap<String, String>) -> bool {
    q.get("pretty").is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "no"))
}

/// Limits of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// Time a client may take to send its request headers; a connection lives at most six times this.
    pub request_timeout: Duration,
}

/// Something that accepts connections (TCP or unix listener).
pub trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + PeerIp + 'static;
    fn accept(&self) -> impl std::future::Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        tokio::net::TcpListener::accept(self).await.map(|(s, _)| s)
    }
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
    }
}

/// The address a connection comes from, when it has one (a unix socket's peer has none): handed to each request
/// as a [`crate::outputs::web_config::Peer`] extension, so basic auth can limit failed attempts per client.
pub trait PeerIp {
    fn peer_ip(&self) -> Option<std::net::IpAddr>;
}

impl PeerIp for tokio::net::TcpStream {
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.peer_addr().ok().map(|a| a.ip())
    }
}

impl PeerIp for tokio::net::UnixStream {
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        None
    }
}

impl PeerIp for tokio::io::DuplexStream {
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        None
    }
}

/// A step between accepting a connection and serving HTTP on it (TLS for the network metrics listener), run in
/// the connection's own task within its header timeout, holding its place: the accept loop never waits for it.
pub trait Handshake<I>: Clone + Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn handshake(&self, io: I) -> impl std::future::Future<Output = std::io::Result<Self::Io>> + Send;
}

/// No handshake: HTTP on the accepted connection itself.
#[derive(Debug, Clone, Copy)]
pub struct Plain;

impl<I: AsyncRead + AsyncWrite + Unpin + Send + 'static> Handshake<I> for Plain {
    type Io = I;
    async fn handshake(&self, io: I) -> std::io::Result<I> {
        Ok(io)
    }
}

/// Connections kept beyond `max_connections` for `/healthz` and `/readyz` alone, so a flood of idle connections
/// never starves the health checks.
pub const RESERVE: usize = 4;
/// At the limit, a connection that has not sent a request this long after it opened is cut.
const SILENT_AT_LIMIT: Duration = Duration::from_millis(250);

/// The router as hyper sees it, counting the requests of one connection; on a reserve connection every path but
/// the health checks answers 503 at once.
#[derive(Clone)]
struct Counted {
    inner: TowerToHyperService<Router>,
    requests: Arc<AtomicUsize>,
    health_only: bool,
    peer: Option<std::net::IpAddr>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Counted {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Response, Self::Error>>;

    fn call(&self, mut req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(ip) = self.peer {
            req.extensions_mut().insert(crate::outputs::web_config::Peer(ip));
        }
        if self.health_only && !matches!(req.uri().path(), "/healthz" | "/readyz") {
            let busy = (StatusCode::SERVICE_UNAVAILABLE, "too many connections: only /healthz and /readyz now\n");
            return Box::pin(std::future::ready(Ok(busy.into_response())));
        }
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map(IntoResponse::into_response) })
    }
}

/// Serves `router` on `listener` until `shutdown` turns true. At most `max_connections` at once; a client that
/// does not send its headers within the timeout is dropped, and a connection past six times the timeout is closed
/// once its request in flight is answered (`Connection: close`). At the limit, idle keep-alive connections and
/// connections that have sent nothing are cut at once, and a new connection is served from a reserve of
/// [`RESERVE`] that answers only `/healthz` and `/readyz`; beyond that it waits, off the accept loop, for the first
/// place shedding frees (at most the header timeout, at most `max_connections + RESERVE` waiting): accepting never
/// waits.
pub async fn serve<L: Accept>(listener: L, router: Router, limits: Limits, shutdown: watch::Receiver<bool>) {
    serve_with(listener, Plain, router, limits, shutdown).await
}

/// [`serve`] with `handshake` run on each connection before HTTP (in its task, under the same places, deadlines and
/// shedding): the one accept loop of every listener, loopback, unix socket and the network metrics listener's TLS.
pub async fn serve_with<L: Accept, H: Handshake<L::Io>>(
    listener: L,
    handshake: H,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(RESERVE));
    // Connections waiting for a place when every slot and the reserve are taken.
    let waiting = Arc::new(Semaphore::new(limits.max_connections + RESERVE));
    // Bumped each time a connection finds every slot taken.
    let (pressure, _) = watch::channel(0u64);
    loop {
        let io = tokio::select! {
            r = listener.accept() => match r {
                Ok(io) => io,
                Err(e) => {
                    log::warn!("accepting an HTTP connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let (permit, health_only) = match Arc::clone(&slots).try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => {
                pressure.send_modify(|n| *n = n.wrapping_add(1));
                match Arc::clone(&reserve).try_acquire_owned() {
                    Ok(p) => (p, true),
                    Err(_) => {
                        // Everything is taken: wait (off the accept loop, a bounded number at once) for the first
                        // slot or reserve place that shedding frees, up to the header timeout.
                        let Ok(waiter) = Arc::clone(&waiting).try_acquire_owned() else { continue };
                        let (slots, reserve) = (Arc::clone(&slots), Arc::clone(&reserve));
                        let (router, pressure) = (router.clone(), pressure.subscribe());
                        let handshake = handshake.clone();
                        tokio::spawn(async move {
                            let got = tokio::time::timeout(limits.request_timeout, async {
                                tokio::select! {
                                    p = slots.acquire_owned() => p.ok().map(|p| (p, false)),
                                    p = reserve.acquire_owned() => p.ok().map(|p| (p, true)),
                                }
                            })
                            .await;
                            drop(waiter);
                            if let Ok(Some((permit, health_only))) = got {
                                connection(io, handshake, router, limits, permit, health_only, pressure).await;
                            }
                        });
                        continue;
                    }
                }
            }
        };
        let handshake = handshake.clone();
        tokio::spawn(connection(io, handshake, router.clone(), limits, permit, health_only, pressure.subscribe()));
    }
}

/// Serves one connection holding `permit` (a slot, or a reserve place when `health_only`) until it ends, its
/// deadlines pass, or shedding at the limit cuts it; the handshake first, within the header timeout (and cut like
/// a silent connection at the limit).
async fn connection<I: PeerIp + Send + 'static, H: Handshake<I>>(
    raw: I,
    handshake: H,
    router: Router,
    limits: Limits,
    permit: tokio::sync::OwnedSemaphorePermit,
    health_only: bool,
    mut pressure: watch::Receiver<u64>,
) {
    let peer = raw.peer_ip();
    let svc =
        Counted { inner: TowerToHyperService::new(router), requests: Arc::new(AtomicUsize::new(0)), health_only, peer };
    let requests = Arc::clone(&svc.requests);
    let (header_timeout, lifetime) = if health_only {
        let t = limits.request_timeout.min(Duration::from_secs(1));
        (t, t.saturating_mul(2))
    } else {
        (limits.request_timeout, limits.request_timeout.saturating_mul(6))
    };
    let opened = tokio::time::Instant::now();
    let mut server_gone = false;
    // A change of pressure seen during the handshake (the receiver marks it seen): applied once HTTP starts.
    let mut pressed = false;
    let io = {
        let shake = handshake.handshake(raw);
        tokio::pin!(shake);
        let mut deadline = opened + header_timeout;
        loop {
            tokio::select! {
                biased;
                r = shake.as_mut() => match r {
                    Ok(io) => break io,
                    Err(e) => {
                        log::debug!("connection handshake: {e}");
                        return;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    log::debug!("connection handshake: not done within {} ms", deadline.saturating_duration_since(opened).as_millis());
                    return;
                }
                r = pressure.changed(), if !server_gone => {
                    if r.is_err() {
                        server_gone = true;
                        continue;
                    }
                    // At the limit a connection still in its handshake is cut like one that sent nothing.
                    pressed = true;
                    deadline = deadline.min((opened + SILENT_AT_LIMIT).max(tokio::time::Instant::now()));
                }
            }
        }
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(!health_only)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let cap = tokio::time::sleep(lifetime);
    tokio::pin!(cap);
    let mut closing = false;
    let mut cut_silent: Option<tokio::time::Instant> = None;
    if pressed {
        conn.as_mut().graceful_shutdown();
        cut_silent = Some((opened + SILENT_AT_LIMIT).max(tokio::time::Instant::now()));
    }
    loop {
        let silent_deadline = cut_silent.unwrap_or_else(|| opened + lifetime + header_timeout);
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = &mut cap => {
                if closing {
                    break;
                }
                // Past its lifetime: finish the request in flight, then close; a last grace to do so.
                conn.as_mut().graceful_shutdown();
                closing = true;
                cap.as_mut().reset(tokio::time::Instant::now() + header_timeout);
            }
            r = pressure.changed(), if !server_gone => {
                if r.is_err() {
                    // The server is gone; this connection finishes on its own deadlines.
                    server_gone = true;
                    continue;
                }
                // Every slot is taken: idle keep-alive connections close now, the others after their request,
                // and one that has sent nothing is cut shortly after it opened.
                conn.as_mut().graceful_shutdown();
                cut_silent = Some((opened + SILENT_AT_LIMIT).max(tokio::time::Instant::now()));
            }
            _ = tokio::time::sleep_until(silent_deadline), if cut_silent.is_some() => {
                if requests.load(Ordering::Relaxed) == 0 {
                    break;
                }
                cut_silent = None;
            }
        }
    }
    drop(permit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::state::Published;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn call(router: &Router, req: axum::http::Request<Body>) -> (StatusCode, String, String) {
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let ct = resp.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, ct, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn get(path: &str) -> axum::http::Request<Body> {
        axum::http::Request::get(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn readyz_with_gate_answers_the_node_gate_now_not_the_latch() {
        use crate::rules::gate::NodeGate;
        let shared = Shared::new(60);
        let r = router(Arc::clone(&shared));
        let (code, _, body) = call(&r, get("/readyz?gate=1")).await;
        assert_eq!(
            (code, body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "gate unknown: the first collection has not finished\n")
        );
        let publish = |g: NodeGate| shared.publish(Published { node_gate: Some(g), ..Published::default() });
        publish(NodeGate::Unmet(vec!["service-proxy: no Service proxy programs Services".into()]));
        shared.set_ready();
        assert_eq!(call(&r, get("/readyz")).await.0, StatusCode::OK, "plain /readyz is the READY latch");
        let (code, _, body) = call(&r, get("/readyz?gate=1")).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.starts_with("gate unmet: service-proxy: no Service proxy"), "{body}");
        publish(NodeGate::Met);
        let (code, _, body) = call(&r, get("/readyz?gate=1")).await;
        assert_eq!((code, body.as_str()), (StatusCode::OK, "gate met\n"));
        publish(NodeGate::Unknown(vec!["no-conflict: source bpf failed: denied".into()]));
        let (code, _, body) = call(&r, get("/readyz?x=y&gate=true")).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("gate unknown: no-conflict: source bpf failed"), "{body}");
    }

    #[tokio::test]
    async fn serves_the_published_collection_and_negotiates_metrics() {
        let shared = Shared::new(60);
        let r = router(Arc::clone(&shared));
        assert_eq!(call(&r, get("/status")).await.0, StatusCode::SERVICE_UNAVAILABLE);
        let (code, _, body) = call(&r, get("/readyz")).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("first collection"), "{body}");

        let snap: crate::model::Snapshot = serde_json::from_str(
            r#"{"schema_version":1,"node":"n","collected_at":"2026-01-01T00:00:00Z","iptables_legacy":{"status":"disabled"},
            "nftables":{"status":"disabled"},"links":{"status":"disabled"},"ipvs":{"status":"disabled"},
            "bpf":{"status":"disabled"},"processes":{"status":"disabled"}}"#,
        )
        .unwrap();
        let report = crate::rules::analyse(&snap, crate::model::Timestamp::from_unix(0));
        shared.publish(Published {
            status: "{\"compact\":1}".into(),
            status_pretty: "{\n  \"pretty\": 1\n}".into(),
            findings: "[]".into(),
            openmetrics: "om\n# EOF\n".into(),
            prometheus_text: "text\n".into(),
            report: Some(report),
            node_gate: None,
        });
        shared.set_ready();
        assert_eq!(call(&r, get("/status")).await.2, "{\"compact\":1}");
        assert!(call(&r, get("/status?pretty")).await.2.contains("pretty"));
        assert!(call(&r, get("/status?pretty=1")).await.2.contains("pretty"));
        assert_eq!(call(&r, get("/status?pretty=0")).await.2, "{\"compact\":1}");
        assert_eq!(call(&r, get("/status?pretty=false")).await.2, "{\"compact\":1}");
        assert_eq!(call(&r, get("/readyz")).await.0, StatusCode::OK);
        let (_, ct, body) = call(&r, get("/metrics")).await;
        assert_eq!((ct.as_str(), body.as_str()), (PROM_TEXT, "text\n"));
        let req = axum::http::Request::get("/metrics")
            .header(header::ACCEPT, "application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
            .body(Body::empty())
            .unwrap();
        let (_, ct, body) = call(&r, req).await;
        assert_eq!((ct.as_str(), body.as_str()), (OPENMETRICS, "om\n# EOF\n"));
        let post = axum::http::Request::post("/status").body(Body::empty()).unwrap();
        assert_eq!(call(&r, post).await.0, StatusCode::METHOD_NOT_ALLOWED);
        let with_body =
            axum::http::Request::get("/status").header(header::CONTENT_LENGTH, "3").body(Body::from("abc")).unwrap();
        assert_eq!(call(&r, with_body).await.0, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(call(&r, get("/nope")).await.0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn accept_is_parsed_with_q_values_and_without_case() {
        // Prometheus 3's scrape header, then 2.x's.
        assert!(prefers_openmetrics(
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;\
             version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,\
             */*;q=0.2"
        ));
        assert!(prefers_openmetrics(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
             text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(prefers_openmetrics("Application/OpenMetrics-Text; Version=1.0.0"));
        assert!(!prefers_openmetrics("application/openmetrics-text;q=0"), "q=0 refuses it");
        assert!(!prefers_openmetrics("application/openmetrics-text;q=0.5, text/plain"), "text has the higher q");
        assert!(!prefers_openmetrics("text/plain;version=0.0.4"));
        assert!(!prefers_openmetrics("*/*"));
        assert!(!prefers_openmetrics("application/openmetrics-text;q=bogus"));
        assert!(!prefers_openmetrics(""));
    }

    /// Reads one HTTP/1 answer (the server closes after it, or sends Content-Length) with a deadline.
    fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_checks_are_answered_under_a_flood_of_idle_connections_which_are_cut() {
        // Before: the accept loop waited for a free slot, and the silent connections held theirs for 60 s.
        use std::io::Read;
        let shared = Shared::new(60);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop, rx) = watch::channel(false);
        // A header timeout of 60 s: without a reserve the health check would wait that long for a slot.
        let limits = Limits { max_connections: 4, request_timeout: Duration::from_secs(60) };
        tokio::spawn(serve(listener, router(Arc::clone(&shared)), limits, rx));
        let (idle, health, status) = tokio::task::spawn_blocking(move || {
            // Twice the limit: the slots and the reserve are all taken by connections that send nothing.
            let idle: Vec<std::net::TcpStream> = (0..8).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
            std::thread::sleep(Duration::from_millis(300));
            let health = http_get(addr, "/healthz");
            let status = http_get(addr, "/status");
            // The idle ones beyond the limit were cut, not kept for the 60 s header timeout.
            let cut: Vec<bool> = idle
                .into_iter()
                .map(|mut c| {
                    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut b = [0u8; 16];
                    matches!(c.read(&mut b), Ok(0))
                        || c.read(&mut b).is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset)
                })
                .collect();
            (cut, health, status)
        })
        .await
        .unwrap();
        assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{health:?}");
        // At most `max_connections` of them may stay: those that took a slot freed by shedding, after the last
        // time every slot was taken (the next connection at the limit cuts them too).
        let kept = idle.iter().filter(|c| !**c).count();
        assert!(kept <= 4, "more idle connections kept than the limit: {idle:?}");
        // Once the idle ones are gone there are slots again: /status answers as usual (503 before a collection).
        assert!(status.contains("no collection has finished yet") || status.contains("only /healthz"), "{status:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reserve_answers_only_health_checks() {
        let shared = Shared::new(60);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop, rx) = watch::channel(false);
        // No slot at all: every connection is one beyond the limit.
        let limits = Limits { max_connections: 0, request_timeout: Duration::from_secs(60) };
        tokio::spawn(serve(listener, router(Arc::clone(&shared)), limits, rx));
        let (readyz, status) =
            tokio::task::spawn_blocking(move || (http_get(addr, "/readyz"), http_get(addr, "/status"))).await.unwrap();
        assert!(readyz.contains("not ready: "), "{readyz:?}");
        assert!(status.starts_with("HTTP/1.1 503") && status.contains("only /healthz and /readyz"), "{status:?}");
    }

    /// Connections handed over a channel: in-memory pipes, so a test can run on tokio's paused clock.
    struct Pipes(tokio::sync::Mutex<tokio::sync::mpsc::Receiver<tokio::io::DuplexStream>>);

    impl Accept for Pipes {
        type Io = tokio::io::DuplexStream;
        async fn accept(&self) -> std::io::Result<Self::Io> {
            self.0.lock().await.recv().await.ok_or_else(|| std::io::Error::other("no more connections"))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_lifetime_cap_lets_the_request_in_flight_finish() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let (_stop, stop) = watch::channel(false);
        // A connection lives 6 x 1 s.
        let limits = Limits { max_connections: 4, request_timeout: Duration::from_secs(1) };
        tokio::spawn(serve(Pipes(tokio::sync::Mutex::new(rx)), router(Shared::new(60)), limits, stop));
        // 32 bytes of pipe: the server cannot write an answer the client does not read.
        let (mut client, server) = tokio::io::duplex(32);
        tx.send(server).await.unwrap();
        let start = tokio::time::Instant::now();
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut buf = [0u8; 256];
        // Keep-alive requests until just before the cap, 5.6 s in.
        for _ in 0..14 {
            client.write_all(request).await.unwrap();
            let mut answer = Vec::new();
            while !answer.ends_with(b"ok\n") {
                let n = client.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&answer));
                answer.extend_from_slice(&buf[..n]);
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(5600));
        // The last request is in flight when the cap comes: its answer is stuck in the pipe until 6.3 s.
        client.write_all(request).await.unwrap();
        tokio::time::sleep_until(start + Duration::from_millis(6300)).await;
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        let rest = String::from_utf8_lossy(&rest);
        assert!(rest.starts_with("HTTP/1.1 200") && rest.ends_with("ok\n"), "cut in flight: {rest:?}");
    }

    #[test]
    fn only_localhost_and_ip_literals_pass_the_host_check() {
        for ok in ["localhost", "LOCALHOST:9977", "127.0.0.1", "127.0.0.1:9977", "[::1]", "[::1]:9977", "10.0.0.5:80"] {
            assert!(allowed_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9977",
            "localhost.evil.example",
            "localhost:",
            "[::1",
            "::1",
            "[zz]:1",
            "127.0.0.1:99999",
            "",
        ] {
            assert!(!allowed_host(bad.as_bytes()), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_loopback_router_refuses_a_rebound_name_and_the_metrics_router_serves_two_paths() {
        let shared = Shared::new(60);
        let r = refuse_unknown_hosts(router(Arc::clone(&shared)));
        let with_host =
            |h: &str| axum::http::Request::get("/healthz").header(header::HOST, h).body(Body::empty()).unwrap();
        assert_eq!(call(&r, with_host("rebind.example:9977")).await.0, StatusCode::FORBIDDEN);
        assert_eq!(call(&r, with_host("localhost:9977")).await.0, StatusCode::OK);
        assert_eq!(call(&r, get("/healthz")).await.0, StatusCode::OK, "no Host at all (HTTP/1.0 clients)");
        for pair in [["localhost:9977", "rebind.example:9977"], ["localhost", "127.0.0.1"]] {
            let req = axum::http::Request::get("/healthz")
                .header(header::HOST, pair[0])
                .header(header::HOST, pair[1])
                .body(Body::empty())
                .unwrap();
            assert_eq!(call(&r, req).await.0, StatusCode::BAD_REQUEST, "two Host headers {pair:?}");
        }

        let m = metrics_router(Arc::clone(&shared), None);
        assert_eq!(call(&m, get("/healthz")).await.0, StatusCode::OK);
        assert_eq!(call(&m, get("/metrics")).await.0, StatusCode::OK);
        for path in ["/status", "/findings", "/readyz"] {
            assert_eq!(call(&m, get(path)).await.0, StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[tokio::test]
    async fn the_metrics_router_challenges_requests_without_valid_credentials() {
        let auth = Some(crate::outputs::web_config::tests::basic_auth("prometheus", "pw", 4));
        let m = metrics_router(Shared::new(60), auth);
        let resp = m.clone().oneshot(get("/metrics")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"routewarden\"");
        let with = |v: &'static str| {
            axum::http::Request::get("/metrics").header(header::AUTHORIZATION, v).body(Body::empty()).unwrap()
        };
        // base64("prometheus:pw") and base64("prometheus:no")
        assert_eq!(call(&m, with("Basic cHJvbWV0aGV1czpwdw==")).await.0, StatusCode::OK);
        assert_eq!(call(&m, with("Basic cHJvbWV0aGV1czpubw==")).await.0, StatusCode::UNAUTHORIZED);
        // Unknown paths are 404 only for an authenticated client: nothing is learnt without credentials.
        assert_eq!(call(&m, get("/status")).await.0, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_wrong_passwords_runs_two_bcrypt_checks_at_a_time_and_the_rest_wait_or_are_refused() {
        let auth = crate::outputs::web_config::tests::basic_auth("prometheus", "pw", 6);
        let m = metrics_router(Shared::new(60), Some(Arc::clone(&auth)));
        let wrong = || {
            axum::http::Request::get("/metrics")
                .header(header::AUTHORIZATION, "Basic cHJvbWV0aGV1czpubw==")
                .body(Body::empty())
                .unwrap()
        };
        let flood: Vec<_> = (0..120).map(|_| tokio::spawn(m.clone().oneshot(wrong()))).collect();
        // Meanwhile tokio's blocking pool (collection's) answers at once: no bcrypt runs there.
        let t = std::time::Instant::now();
        tokio::task::spawn_blocking(|| ()).await.unwrap();
        assert!(t.elapsed() < Duration::from_millis(200), "{:?}", t.elapsed());
        let mut codes = std::collections::BTreeMap::new();
        for f in flood {
            *codes.entry(f.await.unwrap().unwrap().status()).or_insert(0) += 1;
        }
        assert!(auth.peak_running() <= 2, "at most two verifications at once, saw {}", auth.peak_running());
        assert!(codes.get(&StatusCode::UNAUTHORIZED).is_some_and(|&n| n >= 2), "{codes:?}");
        assert!(codes.get(&StatusCode::TOO_MANY_REQUESTS).is_some_and(|&n| n > 0), "{codes:?}");
        assert!(codes.keys().all(|c| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(c)));
        // The right password still passes once the flood is over.
        let ok = axum::http::Request::get("/metrics")
            .header(header::AUTHORIZATION, "Basic cHJvbWV0aGV1czpwdw==")
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&m, ok).await.0, StatusCode::OK);
    }

    /// A request for `/metrics` with `auth` (base64 of user:password) from `peer`.
    fn scrape(auth: &str, peer: &str) -> axum::http::Request<Body> {
        let mut r = axum::http::Request::get("/metrics")
            .header(header::AUTHORIZATION, format!("Basic {auth}"))
            .body(Body::empty())
            .unwrap();
        r.extensions_mut().insert(crate::outputs::web_config::Peer(peer.parse().unwrap()));
        r
    }

    #[tokio::test]
    async fn a_client_that_used_up_its_failed_attempts_is_refused_without_a_check_and_others_are_not() {
        // Before: every wrong password from one address ran a bcrypt verification, without end.
        let auth = crate::outputs::web_config::tests::basic_auth("prometheus", "pw", 4);
        let m = metrics_router(Shared::new(60), Some(Arc::clone(&auth)));
        let (right, wrong) = ("cHJvbWV0aGV1czpwdw==", "cHJvbWV0aGV1czpubw==");
        // A right password first: remembered, and it costs the client nothing.
        assert_eq!(call(&m, scrape(right, "192.0.2.1")).await.0, StatusCode::OK);
        for i in 0..10 {
            assert_eq!(call(&m, scrape(wrong, "192.0.2.1")).await.0, StatusCode::UNAUTHORIZED, "attempt {i}");
        }
        let resp = m.clone().oneshot(scrape(wrong, "192.0.2.1")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers().get(header::RETRY_AFTER).unwrap(), "2");
        let peak = auth.counters();
        // Remembered credentials still pass from that address; another address is not limited.
        assert_eq!(call(&m, scrape(right, "192.0.2.1")).await.0, StatusCode::OK);
        assert_eq!(call(&m, scrape(wrong, "192.0.2.2")).await.0, StatusCode::UNAUTHORIZED);
        // An IPv6 host is one /64: its neighbours share its allowance, the next /64 has its own.
        for _ in 0..10 {
            call(&m, scrape(wrong, "2001:db8:0:1::1")).await;
        }
        assert_eq!(call(&m, scrape(wrong, "2001:db8:0:1::ffff")).await.0, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(call(&m, scrape(wrong, "2001:db8:0:2::1")).await.0, StatusCode::UNAUTHORIZED);
        let c = auth.counters();
        assert_eq!((peak.accepted, peak.refused, peak.rate_limited), (1, 10, 1), "{peak:?}");
        assert_eq!((c.accepted, c.refused, c.rate_limited, c.busy), (2, 22, 2, 0), "{c:?}");
        assert_eq!(c.limited_clients, 2, "{c:?}");
        assert!((1..=2).contains(&c.verifications_peak), "{c:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_listener_hands_each_request_its_client_address() {
        // The limit needs the address of a real TCP connection (before: no request knew it).
        let auth = crate::outputs::web_config::tests::basic_auth("prometheus", "pw", 4);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop, stop) = watch::channel(false);
        let limits = Limits { max_connections: 8, request_timeout: Duration::from_secs(5) };
        tokio::spawn(serve(listener, metrics_router(Shared::new(60), Some(Arc::clone(&auth))), limits, stop));
        let statuses = tokio::task::spawn_blocking(move || {
            (0..11)
                .map(|_| {
                    use std::io::{Read, Write};
                    let mut s = std::net::TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
                    write!(s, "{req}Authorization: Basic cHJvbWV0aGV1czpubw==\r\n\r\n").unwrap();
                    let mut out = String::new();
                    let _ = s.read_to_string(&mut out);
                    out.split(' ').nth(1).unwrap_or("").to_string()
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(statuses[..10], vec!["401"; 10][..], "{statuses:?}");
        assert_eq!(statuses[10], "429", "{statuses:?}");
    }
}
