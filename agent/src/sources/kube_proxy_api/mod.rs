//! kube-proxy's own view, when it answers: `GET /proxyMode` on its metrics address (127.0.0.1:10249) and
//! `GET /healthz` on its health address (port 10256). Short timeouts; nobody answering is normal.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::config::Config;
use crate::model::kube_proxy_api::KubeProxyApi;

#[derive(Debug, thiserror::Error)]
#[error("invalid address {0:?} in the configuration")]
pub struct ApiError(String);

pub fn fetch(config: &Config) -> Result<KubeProxyApi, ApiError> {
    let parse = |s: &str| s.parse::<SocketAddr>().map_err(|_| ApiError(s.to_string()));
    let metrics = parse(&config.kube_proxy.metrics_address)?;
    let health = parse(&config.kube_proxy.healthz_address)?;
    let timeout = Duration::from_millis(config.kube_proxy.timeout_ms);
    let mode = get(metrics, "/proxyMode", timeout).and_then(|(code, body)| {
        let mode = body.trim().to_string();
        (code == 200 && !mode.is_empty() && mode.len() < 32).then_some(mode)
    });
    Ok(KubeProxyApi { proxy_mode: mode, healthz_status: get(health, "/healthz", timeout).map(|(c, _)| c) })
}

/// A minimal HTTP/1.0 GET; `None` when nothing answers in time.
fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).ok()?;
    let mut buf = Vec::new();
    let _ = s.take(64 * 1024).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}
