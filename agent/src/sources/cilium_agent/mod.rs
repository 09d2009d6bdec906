//! The Cilium agent's own view: `GET /v1/healthz` on its unix socket (`/var/run/cilium/cilium.sock` under the host
//! root) reports the configured kube-proxy replacement. An agent that does not answer is data, not a failure.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::config::Config;
use crate::model::cilium_agent::CiliumAgent;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the Cilium agent at {path} answered, but not with a status")]
    BadAnswer { path: std::path::PathBuf, source: StatusError },
}

/// Why an answer is not a StatusResponse.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("not a JSON object")]
    NotAnObject,
}

pub fn fetch(config: &Config) -> Result<CiliumAgent, AgentError> {
    let path = config.host_path(&config.cilium_socket);
    let timeout = Duration::from_millis(config.kube_proxy.timeout_ms.max(500));
    let Some(body) = get(&path, timeout) else { return Ok(CiliumAgent::default()) };
    parse(&body).map_err(|source| AgentError::BadAnswer { path, source })
}

/// `GET /v1/healthz` over the unix socket; `None` when nothing answers.
fn get(path: &std::path::Path, timeout: Duration) -> Option<String> {
    let mut s = UnixStream::connect(path).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(b"GET /v1/healthz HTTP/1.0\r\nHost: localhost\r\nAccept: application/json\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    let _ = s.take(4 << 20).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    Some(text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or(text))
}

/// Reads the kube-proxy replacement part of a StatusResponse (pure).
pub fn parse(body: &str) -> Result<CiliumAgent, StatusError> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(StatusError::NotJson)?;
    if !v.is_object() {
        return Err(StatusError::NotAnObject);
    }
    let kpr = &v["kube-proxy-replacement"];
    let enabled = |f: &str| kpr["features"][f]["enabled"].as_bool();
    Ok(CiliumAgent {
        reachable: true,
        kpr_mode: kpr["mode"].as_str().map(str::to_string),
        node_port: enabled("nodePort"),
        socket_lb: enabled("socketLB").or_else(|| enabled("hostReachableServices")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_mode_and_features_of_new_and_old_agents() {
        let new = r#"{"cilium":{"state":"Ok"},"kube-proxy-replacement":{"mode":"True","devices":["eth0"],
            "features":{"nodePort":{"enabled":true,"mode":"SNAT"},"socketLB":{"enabled":true}}}}"#;
        let a = parse(new).unwrap();
        assert_eq!(
            (a.kpr_mode.as_deref(), a.node_port, a.socket_lb, a.configured_kpr()),
            (Some("True"), Some(true), Some(true), Some(true))
        );
        let old = r#"{"kube-proxy-replacement":{"mode":"Partial","features":{"nodePort":{"enabled":false},
            "hostReachableServices":{"enabled":true,"protocols":["TCP"]}}}}"#;
        assert_eq!(parse(old).unwrap().configured_kpr(), Some(true));
        let off = r#"{"kube-proxy-replacement":{"mode":"False","features":{"nodePort":{"enabled":false}}}}"#;
        assert_eq!(parse(off).unwrap().configured_kpr(), Some(false));
        assert_eq!(parse(r#"{"cilium":{}}"#).unwrap().configured_kpr(), None);
        let e = AgentError::BadAnswer { path: "/run/cilium.sock".into(), source: parse("<html>").unwrap_err() };
        assert_eq!(
            crate::model::strict_chain(&e),
            "the Cilium agent at /run/cilium.sock answered, but not with a status: not JSON: expected value at line 1 \
             column 1"
        );
        assert_eq!(parse("[1]").unwrap_err().to_string(), "not a JSON object");
    }
}
