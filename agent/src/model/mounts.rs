//! NFS mounts of the host.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountState {
    pub nfs: Vec<NfsMount>,
    /// The configured Service CIDRs when this was collected.
    #[serde(default)]
    pub service_cidrs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NfsMount {
    pub mount_point: String,
    pub fstype: String,
    /// Server address (from `addr=` or the source `server:/path`).
    pub server: String,
}
