//! IPVS virtual server counts.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpvsState {
    /// Whether the IPVS table exists at all (the ip_vs module is loaded).
    pub loaded: bool,
    /// Number of virtual servers.
    pub virtual_servers: u32,
    /// The virtual servers' addresses (without port), one per virtual server, in numeric order (IPv4 first), of
    /// at most `MAX_VIPS` distinct VIPs (the smallest); firewall-mark services have none. Serialised as the
    /// strings they always were (`"10.96.0.1"`, `"fd00::1"`); a snapshot with anything else there does not load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<IpAddr>,
}

/// At most this many distinct VIPs are kept (a node with more Service ports still counts them all).
pub const MAX_VIPS: usize = 65536;
