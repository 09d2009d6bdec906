//! Processes from procfs (under the host root): which Service proxies' agents and whether a kubelet run, and
//! which kubelet configuration files exist.

use std::path::Path;

use crate::config::Config;
use crate::model::procs::{Process, ProcessState};

/// Process names (`/proc/PID/comm`, at most 15 characters) routewarden looks for.
pub const WATCHED: &[&str] = &[
    "kube-proxy",
    "cilium-agent",
    "kubelet",
    "k3s-server",
    "k3s-agent",
    "k3s",
    // The other Service proxies' agents (docs/DATAPLANE-FACTS.md section 10).
    "calico-node",
    "kube-router",
    "antrea-agent",
    "ovnkube",
];

#[derive(Debug, thiserror::Error)]
#[error("listing processes in {path}: {source}")]
pub struct ProcsError {
    path: std::path::PathBuf,
    source: std::io::Error,
}

pub fn fetch(config: &Config) -> Result<ProcessState, ProcsError> {
    let proc = config.host_path(&config.proc_dir);
    let mut state = scan(&proc).map_err(|source| ProcsError { path: proc, source })?;
    // A kubelet that is installed but not running (yet) still makes this a Kubernetes node.
    state.kubelet_files =
        config.kubelet_files.iter().filter(|p| config.host_path(p).exists()).map(|p| p.display().to_string()).collect();
    Ok(state)
}

fn scan(proc: &Path) -> std::io::Result<ProcessState> {
    let mut processes = Vec::new();
    for entry in std::fs::read_dir(proc)? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        // A process may exit between readdir and read; that is not an error.
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else { continue };
        let comm = comm.trim_end();
        if WATCHED.contains(&comm) {
            processes.push(Process { pid, comm: comm.to_string() });
        }
    }
    processes.sort_by_key(|p| p.pid);
    Ok(ProcessState { processes, kubelet_files: Vec::new() })
}
