//! What kube-proxy says about itself on its HTTP endpoints.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KubeProxyApi {
    /// What `/proxyMode` answered (`iptables`, `ipvs`, `nftables`), when it answered.
    pub proxy_mode: Option<String>,
    /// HTTP status of `/healthz`, when it answered.
    pub healthz_status: Option<u16>,
}
