//! Certificates found on the node, and the files that could not be read.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CertState {
    /// The thresholds in force when this was collected (days before expiry).
    pub warning_days: u64,
    pub critical_days: u64,
    pub certificates: Vec<CertInfo>,
    /// Files that could not be read or parsed: (path, error).
    pub errors: Vec<(PathBuf, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    pub path: PathBuf,
    /// Where in the file: `pem` (with its index in a bundle) or the kubeconfig field.
    pub location: String,
    pub subject: String,
    pub issuer: String,
    /// The serial number as colon-separated hex (as `openssl x509 -serial` groups it); empty in snapshots
    /// recorded before it was collected.
    #[serde(default)]
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
}
