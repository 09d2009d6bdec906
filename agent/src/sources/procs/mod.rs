//! Processes from procfs (under the host root): which Service proxies' agents and whether a kubelet run, and
//! which kubelet configuration files exist; who holds kube-proxy's health port.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::model::procs::{IgnoredProcess, PortHolder, Process, ProcessState};
use crate::sources::sockets;

/// Process names (`/proc/PID/comm`, at most 15 characters) routewarden looks for.
pub const WATCHED: &[&str] = &[
    "kube-proxy",
    "cilium-agent",
    "kubelet",
    "k3s-server",
    "k3s-agent",
    "k3s",
    // MicroK8s runs the kubelet inside kubelite.
    "kubelite",
    // The other Service proxies' agents (docs/DATAPLANE-FACTS.md section 10).
    "calico-node",
    "kube-router",
    "antrea-agent",
    "ovnkube",
    // LoxiLB (section 11.1).
    "loxilb",
];

#[derive(Debug, thiserror::Error)]
#[error("listing processes in {path}: {source}")]
pub struct ProcsError {
    path: std::path::PathBuf,
    source: std::io::Error,
}

pub fn fetch(config: &Config) -> Result<ProcessState, ProcsError> {
    let proc = config.host_path(&config.proc_dir);
    let mut state = scan(&proc).map_err(|source| ProcsError { path: proc.clone(), source })?;
    // A kubelet that is installed but not running (yet) still makes this a Kubernetes node.
    state.kubelet_files =
        config.kubelet_files.iter().filter(|p| config.host_path(p).exists()).map(|p| p.display().to_string()).collect();
    let port = config.kube_proxy.healthz_address.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
    if let Some(port) = port {
        state.healthz_port = holder(&proc, port);
    }
    Ok(state)
}

/// The fd walk that finds a socket's process stops after this long.
const FD_WALK_LIMIT: Duration = Duration::from_secs(2);

/// The listener on TCP `port` (IPv4 or IPv6, this network namespace) and the process holding it. Unreadable
/// files count as "nobody listens"; a socket no process's fds show (or not within the fd walk's bounds) has no
/// pid. The tables are streamed and the walk stops at the first match; nothing is walked when nobody listens.
fn holder(proc: &Path, port: u16) -> Option<PortHolder> {
    let inode = sockets::listeners(proc).find(|l| l.port == port)?.inode;
    let found = sockets::holders(proc, &[inode], Instant::now() + FD_WALK_LIMIT, 1).into_iter().next();
    Some(PortHolder { port, pid: found.as_ref().map(|h| h.pid), comm: found.map(|h| h.comm).filter(|c| !c.is_empty()) })
}

fn scan(proc: &Path) -> std::io::Result<ProcessState> {
    let (mut processes, mut ignored) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(proc)? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        // A process may exit between readdir and read; that is not an error.
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else { continue };
        let comm = comm.trim_end();
        if WATCHED.contains(&comm) {
            match owner(&entry.path()) {
                Owner::Root => processes.push(Process { pid, comm: comm.to_string() }),
                Owner::Gone => {}
                Owner::Other { uid, reason } => {
                    ignored.push(IgnoredProcess { pid, comm: comm.to_string(), uid, reason })
                }
            }
        }
    }
    processes.sort_by_key(|p| p.pid);
    ignored.sort_by_key(|p| p.pid);
    Ok(ProcessState { processes, kubelet_files: Vec::new(), healthz_port: None, ignored })
}

/// Who runs a process with a watched name, as far as counting it goes.
#[derive(Debug, PartialEq, Eq)]
enum Owner {
    /// Real and effective uid 0, as the agents run (on the host, or in a container of the node's runtime).
    Root,
    /// It exited while being read.
    Gone,
    /// Anything else: not counted; its uid if read, and why.
    Other { uid: Option<u32>, reason: String },
}

/// Reads the process's owner from `/proc/PID/status` (`Uid:` real, effective, saved, filesystem). The uids are
/// those of the reader's user namespace: the host's in the daemon's container with hostPID.
fn owner(dir: &Path) -> Owner {
    let status = match std::fs::read_to_string(dir.join("status")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Owner::Gone,
        Err(e) => return Owner::Other { uid: None, reason: format!("its owner cannot be read: {e}") },
    };
    let uids: Vec<u32> = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .map(|l| l.split_whitespace().filter_map(|u| u.parse().ok()).collect())
        .unwrap_or_default();
    match uids.as_slice() {
        [0, 0, ..] => Owner::Root,
        [real, ..] => Owner::Other { uid: Some(*real), reason: format!("run by uid {real}, not root") },
        [] => Owner::Other { uid: None, reason: "no Uid line in its status".into() },
    }
}
