//! The local HTTP endpoint: `/status`, `/findings`, `/healthz`, `/readyz`, `/metrics`, all read-only and served
//! from the last published collection. The server is a function of (router, bound listener, shutdown signal).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
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
    match req.headers().get(header::HOST) {
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
    body(JSON, if q.contains_key("pretty") { p.status_pretty.clone() } else { p.status.clone() })
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

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    if s.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", s.not_ready_reason())).into_response()
    }
}

async fn metrics(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let p = s.current();
    let wants_om = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if wants_om {
        body(OPENMETRICS, p.openmetrics.clone())
    } else {
        body(PROM_TEXT, p.prometheus_text.clone())
    }
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
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
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

/// Serves `router` on `listener` until `shutdown` turns true. At most `max_connections` at once; a client that
/// does not send its headers within the timeout, or keeps a connection longer, is dropped.
pub async fn serve<L: Accept>(listener: L, router: Router, limits: Limits, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
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
        let svc = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.request_timeout)
                .serve_connection(TokioIo::new(io), svc);
            let _ = tokio::time::timeout(limits.request_timeout.saturating_mul(6), conn).await;
            drop(permit);
        });
    }
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
    async fn serves_the_published_collection_and_negotiates_metrics() {
        let shared = Shared::new(60);
        let r = router(Arc::clone(&shared));
        assert_eq!(call(&r, get("/status")).await.0, StatusCode::SERVICE_UNAVAILABLE);
        let (code, _, body) = call(&r, get("/readyz")).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("first collection"), "{body}");

        let snap: crate::model::Snapshot = serde_json::from_str(
            r#"{"schema_version":1,"node":"n","collected_at":"t","iptables_legacy":{"status":"disabled"},
            "nftables":{"status":"disabled"},"links":{"status":"disabled"},"ipvs":{"status":"disabled"},
            "bpf":{"status":"disabled"},"processes":{"status":"disabled"}}"#,
        )
        .unwrap();
        let report = crate::rules::analyse(&snap, "t".into());
        shared.publish(Published {
            status: "{\"compact\":1}".into(),
            status_pretty: "{\n  \"pretty\": 1\n}".into(),
            findings: "[]".into(),
            openmetrics: "om\n# EOF\n".into(),
            prometheus_text: "text\n".into(),
            report: Some(report),
        });
        shared.set_ready();
        assert_eq!(call(&r, get("/status")).await.2, "{\"compact\":1}");
        assert!(call(&r, get("/status?pretty")).await.2.contains("pretty"));
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

        let m = metrics_router(Arc::clone(&shared), None);
        assert_eq!(call(&m, get("/healthz")).await.0, StatusCode::OK);
        assert_eq!(call(&m, get("/metrics")).await.0, StatusCode::OK);
        for path in ["/status", "/findings", "/readyz"] {
            assert_eq!(call(&m, get(path)).await.0, StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[tokio::test]
    async fn the_metrics_router_challenges_requests_without_valid_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web.yml");
        std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {}\n", bcrypt::hash("pw", 4).unwrap())).unwrap();
        let auth = crate::outputs::web_config::WebConfig::load(&web).unwrap().auth;
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
}
