//! `routewarden status`: asks the running daemon for its report (`GET /status`) over its unix socket, or over
//! loopback HTTP, within one deadline and a size bound, and checks that the answer is a routewarden report.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::BodyExt;

use crate::report::Report;

/// Where the packaged units put the daemon's unix socket (the runtime directory is root-only).
pub const DEFAULT_SOCKET: &str = "/run/routewarden/routewarden.sock";
/// The largest answer read: the same bound as a snapshot file for `check --snapshot` (a report is far smaller).
pub const MAX_STATUS_BYTES: usize = 64 << 20;

/// Whom to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A unix socket.
    Unix(PathBuf),
    /// Plain HTTP to `host:port`.
    Http(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "{}", p.display()),
            Target::Http(a) => write!(f, "http://{a}"),
        }
    }
}

impl Target {
    /// `--url`: `http://HOST:PORT`, with an optional trailing `/` (the path asked is always `/status`).
    pub fn from_url(url: &str) -> Result<Target, UrlError> {
        let bad = |why| UrlError { url: url.to_string(), why };
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(bad(if url.starts_with("https://") { BadUrl::Https } else { BadUrl::NotHttp }));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let port_ok =
            authority.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad(BadUrl::NotHostPort));
        }
        Ok(Target::Http(authority.to_string()))
    }
}

/// A `--url` that is not `http://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--url {url:?} {why}: give http://HOST:PORT such as http://127.0.0.1:9977")]
pub struct UrlError {
    pub url: String,
    pub why: BadUrl,
}

/// What is wrong with a `--url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadUrl {
    Https,
    NotHttp,
    NotHostPort,
}

impl std::fmt::Display for BadUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadUrl::Https => "is https (the daemon's listener is plain HTTP)",
            BadUrl::NotHttp => "is not an http:// URL",
            BadUrl::NotHostPort => "is not http://HOST:PORT",
        })
    }
}

/// Why an answer is not a routewarden daemon's report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// serde's text says where and what.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(
        "schema_version {0}; this routewarden reads versions 1 to {max} (use the daemon's own binary)",
        max = crate::model::SCHEMA_VERSION
    )]
    Schema(u32),
    #[error("it has no \"daemon\" part (what `check --output json` prints, not a daemon's /status)")]
    NoDaemonPart,
    #[error("the answer is not UTF-8")]
    NotUtf8,
    /// The request could not be built (the host named is no header value).
    #[error(transparent)]
    Request(#[from] hyper::http::Error),
}

/// What the operator asked for on the command line.
#[derive(Debug, Clone)]
pub enum Choice {
    /// `--socket PATH`.
    Socket(PathBuf),
    /// `--url URL`.
    Url(Target),
    /// Neither: `daemon.unix_socket` (else [`DEFAULT_SOCKET`]), and `daemon.listen` when that socket does not exist.
    Default { socket: PathBuf, listen: std::net::SocketAddr },
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "no routewarden daemon answers on {tried}: is routewarden.service running? `routewarden check` collects \
         without it"
    )]
    NoDaemon { tried: String },
    #[error(
        "cannot reach {path}: permission denied (the daemon's socket is root-only: mode 0660 in /run/routewarden); \
         run `sudo routewarden status`"
    )]
    PermissionDenied { path: PathBuf },
    #[error("the daemon on {target} did not answer within {}", humantime::format_duration(*.timeout))]
    Timeout { target: Target, timeout: Duration },
    #[error("the daemon on {target} answered HTTP {code}: {body}")]
    Refused { target: Target, code: u16, body: String },
    #[error("{target} answered with more than {MAX_STATUS_BYTES} bytes: not a routewarden report")]
    TooLarge { target: Target },
    #[error("{target} answered with something that is not a routewarden report")]
    NotAReport { target: Target, source: ReportError },
    #[error("talking HTTP to {target}")]
    Http { target: Target, source: hyper::Error },
    #[error("starting the client's runtime")]
    Runtime(#[source] std::io::Error),
}

/// The daemon's answer: its report, and the JSON text as it was sent.
#[derive(Debug)]
pub struct Answer {
    pub target: Target,
    pub json: String,
    pub report: Report,
}

/// Asks the daemon `choice` names for `/status`, within `timeout` for everything (connect, request, answer).
pub fn fetch(choice: &Choice, timeout: Duration) -> Result<Answer, StatusError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(StatusError::Runtime)?;
    let target = match choice {
        Choice::Socket(p) => Target::Unix(p.clone()),
        Choice::Url(t) => t.clone(),
        Choice::Default { socket, listen } => match std::fs::symlink_metadata(socket) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // No socket configured there: the loopback listener, and both named when neither answers.
                let http = Target::Http(listen.to_string());
                return match rt.block_on(ask(&http, timeout)) {
                    Err(StatusError::NoDaemon { tried }) => Err(StatusError::NoDaemon {
                        tried: format!("{} (no such socket) nor on {tried}", socket.display()),
                    }),
                    other => other,
                };
            }
            // It exists, or cannot be seen (a root-only directory): connecting says which, never another listener.
            _ => Target::Unix(socket.clone()),
        },
    };
    rt.block_on(ask(&target, timeout))
}

async fn ask(target: &Target, timeout: Duration) -> Result<Answer, StatusError> {
    match tokio::time::timeout(timeout, exchange(target)).await {
        Ok(r) => r,
        Err(_) => Err(StatusError::Timeout { target: target.clone(), timeout }),
    }
}

/// Connects, sends `GET /status` and reads the answer (at most [`MAX_STATUS_BYTES`]).
async fn exchange(target: &Target) -> Result<Answer, StatusError> {
    match target {
        Target::Unix(path) => {
            let io = tokio::net::UnixStream::connect(path).await.map_err(|e| connect_error(target, path, e))?;
            request(target, io, "localhost").await
        }
        Target::Http(authority) => {
            let io = tokio::net::TcpStream::connect(authority.as_str())
                .await
                .map_err(|e| StatusError::NoDaemon { tried: format!("{target} ({})", io_reason(&e)) })?;
            request(target, io, authority).await
        }
    }
}

fn connect_error(target: &Target, path: &Path, e: std::io::Error) -> StatusError {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        return StatusError::PermissionDenied { path: path.to_path_buf() };
    }
    StatusError::NoDaemon { tried: format!("{target} ({})", io_reason(&e)) }
}

/// "connection refused", "no such file", or the error's own text.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::NotFound => "no such socket".into(),
        _ => e.to_string(),
    }
}

async fn request<I>(target: &Target, io: I, host: &str) -> Result<Answer, StatusError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |source| StatusError::Http { target: target.clone(), source };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await.map_err(http)?;
    // The connection is driven beside the request; it ends with this function (the runtime is dropped after).
    tokio::spawn(conn);
    let req = hyper::Request::get("/status")
        .header(hyper::header::HOST, host)
        .header(hyper::header::ACCEPT, "application/json")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| StatusError::NotAReport { target: target.clone(), source: e.into() })?;
    let resp = sender.send_request(req).await.map_err(http)?;
    let code = resp.status().as_u16();
    let body =
        http_body_util::Limited::new(resp.into_body(), MAX_STATUS_BYTES).collect().await.map_err(|e| match e
            .downcast::<hyper::Error>(
        ) {
            Ok(h) => http(*h),
            Err(_) => StatusError::TooLarge { target: target.clone() },
        })?;
    let bytes = body.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    if code != 200 {
        // The daemon's errors are short (`{"error": ...}` or a line); anything else is cut to one line.
        let said = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| text.trim().chars().take(200).collect::<String>().replace('\n', " "));
        return Err(StatusError::Refused { target: target.clone(), code, body: said });
    }
    let json = String::from_utf8(bytes.to_vec())
        .map_err(|_| StatusError::NotAReport { target: target.clone(), source: ReportError::NotUtf8 })?;
    let report = parse(&json).map_err(|source| StatusError::NotAReport { target: target.clone(), source })?;
    Ok(Answer { target: target.clone(), json, report })
}

/// The daemon's `/status` text as a report of a schema this routewarden reads, carrying the daemon's state.
pub fn parse(json: &str) -> Result<Report, ReportError> {
    let report: Report = serde_json::from_str(json)?;
    if !(1..=crate::model::SCHEMA_VERSION).contains(&report.schema_version) {
        return Err(ReportError::Schema(report.schema_version));
    }
    if report.daemon.is_none() {
        return Err(ReportError::NoDaemonPart);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_that_cannot_start_is_said_once() {
        let e = StatusError::Runtime(std::io::Error::from_raw_os_error(libc::EMFILE));
        assert_eq!(crate::model::strict_chain(&e), "starting the client's runtime: Too many open files (os error 24)");
    }

    #[test]
    fn urls_are_plain_http_host_and_port() {
        assert_eq!(Target::from_url("http://127.0.0.1:9977"), Ok(Target::Http("127.0.0.1:9977".into())));
        assert_eq!(Target::from_url("http://localhost:9977/"), Ok(Target::Http("localhost:9977".into())));
        assert_eq!(Target::from_url("http://[::1]:9977"), Ok(Target::Http("[::1]:9977".into())));
        for bad in ["https://127.0.0.1:9977", "127.0.0.1:9977", "http://127.0.0.1", "http://h:1/status", "http://:80"] {
            let e = Target::from_url(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("http://HOST:PORT"), "{e}");
        }
    }

    #[test]
    fn a_report_without_the_daemon_part_or_of_a_later_schema_is_refused() {
        let not_a_report = |source| StatusError::NotAReport { target: Target::Http("h:1".into()), source };
        let e = crate::model::strict_chain(&not_a_report(parse("{\"verdict\":\"ok\"}").unwrap_err()));
        assert_eq!(
            e,
            "http://h:1 answered with something that is not a routewarden report: missing field `schema_version` at \
             line 1 column 16"
        );
        let snap =
            include_str!("../tests/data/snapshots/kube_proxy_alone_is_healthy_with_mode_backend_and_services.json");
        let at = crate::model::Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        let check = crate::rules::analyse(&serde_json::from_str(snap).unwrap(), at);
        let mut v = serde_json::to_value(&check).unwrap();
        let e = crate::model::strict_chain(&not_a_report(parse(&v.to_string()).unwrap_err()));
        assert!(e.ends_with("not a routewarden report: it has no \"daemon\" part (what `check --output json` prints, not a daemon's /status)"), "{e}");
        v["daemon"] = serde_json::to_value(crate::report::DaemonState::default()).unwrap();
        parse(&v.to_string()).unwrap();
        v["schema_version"] = 99.into();
        let e = parse(&v.to_string()).unwrap_err().to_string();
        let max = crate::model::SCHEMA_VERSION;
        assert_eq!(
            e,
            format!("schema_version 99; this routewarden reads versions 1 to {max} (use the daemon's own binary)")
        );
    }

    #[test]
    fn a_reports_time_is_rfc3339_text_and_an_older_daemons_report_still_loads() {
        let snap =
            include_str!("../tests/data/snapshots/kube_proxy_alone_is_healthy_with_mode_backend_and_services.json");
        let at = crate::model::Timestamp::parse("2026-12-06T14:00:00Z").unwrap();
        let mut r = crate::rules::analyse(&serde_json::from_str(snap).unwrap(), at);
        r.daemon = Some(crate::report::DaemonState::default());
        let mut v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["generated_at"], "2026-12-06T14:00:00Z");
        assert_eq!(parse(&v.to_string()).unwrap().generated_at, at);
        // An older daemon wrote humantime's RFC 3339 seconds there as a plain string: the same text loads and
        // writes back.
        let older = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        v["generated_at"] = older.clone().into();
        let back = parse(&v.to_string()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap()["generated_at"], older.as_str());
        // Something that is no time is refused, naming it.
        v["generated_at"] = "yesterday".into();
        let e = crate::model::error_chain(&parse(&v.to_string()).unwrap_err());
        assert!(e.contains("\"yesterday\" is not an RFC 3339 time"), "{e}");
    }

    #[test]
    fn the_daemon_part_shows_the_journal_and_the_exporter_as_they_are() {
        use crate::model::kubernetes::{ExporterStatus, TaintState};
        use crate::report::{DaemonState, JournalCounters};
        let snap =
            include_str!("../tests/data/snapshots/kube_proxy_alone_is_healthy_with_mode_backend_and_services.json");
        let mut r = crate::rules::analyse(&serde_json::from_str(snap).unwrap(), crate::model::Timestamp::from_unix(0));
        r.daemon = Some(DaemonState {
            collections: 7,
            rule_changes: 3,
            last_collection_unix: 1000.0,
            rendered_unix: 1000.0,
            journal: Some(JournalCounters {
                matches: [("cni-apiserver.deadlock".to_string(), 2), ("quiet".to_string(), 0)].into(),
                lines: [("kubelet.service".to_string(), 40), ("kernel".to_string(), 2)].into(),
                lag_seconds: 0.25,
                not_entries: 1,
                overlong_lines: 0,
            }),
            kubernetes: Some(ExporterStatus {
                node: "n1".into(),
                up: Some(false),
                last_error: Some("connection refused".into()),
                requests_ok: 5,
                requests_failed: 2,
                taint: Some(TaintState::Present),
                ..ExporterStatus::default()
            }),
            metrics_auth: Some(crate::report::AuthCounters {
                accepted: 9,
                refused: 4,
                busy: 0,
                rate_limited: 2,
                verifications_peak: 2,
                limited_clients: 1,
            }),
        });
        let text = crate::outputs::text::daemon_state(&r, 1012.0);
        let want =
            "\ndaemon:\n  collections: 7 since start, the last 12s ago; kube-proxy chains added or removed since \
start: 3\n  journal:    42 entries read (kernel 2, kubelet.service 40), 0.2 s behind the clock\n              matches: \
cni-apiserver.deadlock 2\n              skipped: 1 lines that were not journal entries, 0 over the line bound\n  \
kubernetes: Node n1, API server NOT reached: connection refused; requests 5 ok, 2 failed; 0 events dropped; taint \
present\n  basic auth: 9 accepted, 4 refused, 0 busy, 2 rate-limited; 1 clients limited now\n";
        assert_eq!(text, want);
        r.daemon = None;
        assert!(crate::outputs::text::daemon_state(&r, 0.0).contains("sent no counters"));
    }
}
