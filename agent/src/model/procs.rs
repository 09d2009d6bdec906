//! Processes routewarden watches, by pid and comm, and which kubelet configuration files exist.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessState {
    pub processes: Vec<Process>,
    /// Kubelet configuration files that exist (from the configured `kubelet_files`): a node where the kubelet is
    /// installed but not running is still a Kubernetes node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubelet_files: Vec<String>,
    /// Who listens on kube-proxy's health port (the port of `kube_proxy.healthz_address`, 10256): Calico and
    /// Cilium bind it too. `None` when nobody listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthz_port: Option<PortHolder>,
}

/// A TCP listener and the process that holds its socket (`pid`/`comm` unknown when no process's fds show it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortHolder {
    pub port: u16,
    pub pid: Option<u32>,
    pub comm: Option<String>,
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
