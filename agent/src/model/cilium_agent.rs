//! What the Cilium agent reports about its kube-proxy replacement configuration.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CiliumAgent {
    /// Whether the agent answered on its socket.
    pub reachable: bool,
    /// `kube-proxy-replacement.mode` as the agent reports it (`True`, `False`, or the older `Strict`, `Partial`,
    /// `Probe`, `Disabled`).
    pub kpr_mode: Option<String>,
    /// `features.nodePort.enabled`.
    pub node_port: Option<bool>,
    /// `features.socketLB.enabled` (older agents: `features.hostReachableServices.enabled`).
    pub socket_lb: Option<bool>,
}

impl CiliumAgent {
    /// Whether the configuration says Cilium load-balances Services beyond pod ClusterIP traffic.
    pub fn configured_kpr(&self) -> Option<bool> {
        let mode = self.kpr_mode.as_deref()?;
        Some(match mode {
            "True" | "Strict" => true,
            "False" | "Disabled" => self.node_port == Some(true) || self.socket_lb == Some(true),
            // Partial and Probe enable what the features say.
            _ => self.node_port == Some(true) || self.socket_lb == Some(true),
        })
    }
}
