//! IPVS virtual server counts.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpvsState {
    /// Whether the IPVS table exists at all (the ip_vs module is loaded).
    pub loaded: bool,
    /// Number of virtual servers.
    pub virtual_servers: u32,
}
