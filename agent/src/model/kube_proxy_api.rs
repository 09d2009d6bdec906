//! What kube-proxy says about itself on its HTTP endpoints, and who owned the socket that answered.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KubeProxyApi {
    /// What `/proxyMode` answered (`iptables`, `ipvs`, `nftables`), when it answered from a socket owned by
    /// kube-proxy (or k3s/rke2, which embed it).
    pub proxy_mode: Option<String>,
    /// HTTP status of `/healthz`, when it answered from such a socket.
    pub healthz_status: Option<u16>,
    /// The process whose listening socket gave the trusted answers (`pid 42 (kube-proxy), uid 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Answers ignored because the listening socket was not kube-proxy's: what answered, and who owned it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
}
