//! IPVS virtual server counts.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpvsState {
    /// Whether the IPVS table exists at all (the ip_vs module is loaded).
    pub loaded: bool,
    /// Number of virtual servers.
    pub virtual_servers: u32,
    /// The virtual servers' addresses (dotted or colon form, without port), one per virtual server, sorted, of
    /// at most `MAX_VIPS` distinct VIPs (the smallest); firewall-mark services have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<String>,
}

/// At most this many distinct VIPs are kept (a node with more Service ports still counts them all).
pub const MAX_VIPS: usize = 65536;
