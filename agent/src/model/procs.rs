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
    /// Processes with a watched name that do not count: not run by root (any local user can name a process
    /// `kube-proxy`), kept as evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<IgnoredProcess>,
}

/// A process named like an agent routewarden watches that was not counted, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IgnoredProcess {
    pub pid: u32,
    pub comm: String,
    /// Its real uid, when it could be read.
    pub uid: Option<u32>,
    pub reason: String,
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

impl ProcessState {
    /// One line on the processes not counted, for the `processes` source's note; `None` when there are none.
    pub fn ignored_note(&self) -> Option<String> {
        (!self.ignored.is_empty()).then(|| {
            let each: Vec<String> =
                self.ignored.iter().take(10).map(|p| format!("{} (pid {}): {}", p.comm, p.pid, p.reason)).collect();
            let more = self.ignored.len().saturating_sub(10);
            format!(
                "not counted, as any local user can name a process so: {}{}",
                each.join("; "),
                if more > 0 { format!("; and {more} more") } else { String::new() }
            )
        })
    }
}
