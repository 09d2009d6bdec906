//! Processes routewarden watches, by pid and comm, and which kubelet configuration files exist.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessState {
    pub processes: Vec<Process>,
    /// Kubelet configuration files that exist (from the configured `kubelet_files`): a node where the kubelet is
    /// installed but not running is still a Kubernetes node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubelet_files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
}

impl ProcessState {
    /// Pids of processes named `comm`.
    pub fn pids(&self, comm: &str) -> Vec<u32> {
        self.processes.iter().filter(|p| p.comm == comm).map(|p| p.pid).collect()
    }
}
