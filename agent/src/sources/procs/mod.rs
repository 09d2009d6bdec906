//! Processes from procfs (under the host root): is kube-proxy running, is cilium-agent running.

use std::path::Path;

use crate::config::Config;
use crate::model::procs::{Process, ProcessState};

/// Process names (`/proc/PID/comm`, at most 15 characters) routewarden looks for.
pub const WATCHED: &[&str] = &["kube-proxy", "cilium-agent", "kubelet", "k3s-server", "k3s-agent", "k3s"];

#[derive(Debug, thiserror::Error)]
#[error("listing processes in {path}: {source}")]
pub struct ProcsError {
    path: std::path::PathBuf,
    source: std::io::Error,
}

pub fn fetch(config: &Config) -> Result<ProcessState, ProcsError> {
    let proc = config.host_path(&config.proc_dir);
    scan(&proc).map_err(|source| ProcsError { path: proc, source })
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
    Ok(ProcessState { processes })
}
