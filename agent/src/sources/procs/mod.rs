//! Processes from procfs (under the host root): which Service proxies' agents and whether a kubelet run, and
//! which kubelet configuration files exist; who holds kube-proxy's health port. A process with a watched name
//! counts only when root runs it and its origin fits ([`origin`]).

mod origin;

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
#[error("listing processes in {path}")]
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
        let Ok(comm) = read_small(&entry.path().join("comm")) else { continue };
        let comm = comm.trim_end();
        if WATCHED.contains(&comm) {
            let comm = comm.to_string();
            match owner(&entry.path()) {
                Owner::Root => {
                    let exe = std::fs::read_link(entry.path().join("exe")).map(|p| p.display().to_string());
                    let cgroup = read_small(&entry.path().join("cgroup"));
                    match origin::judge(&comm, exe, cgroup) {
                        (origin, None) => processes.push(Process { pid, comm, origin: Some(origin) }),
                        (origin, Some(reason)) => {
                            ignored.push(IgnoredProcess { pid, comm, uid: Some(0), reason, origin: Some(origin) })
                        }
                    }
                }
                Owner::Gone => {}
                Owner::Other { uid, reason } => ignored.push(IgnoredProcess { pid, comm, uid, reason, origin: None }),
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
    let status = match read_small(&dir.join("status")) {
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

/// The most of one procfs file (`comm`, `status`, `cgroup`) that is read: each is a few hundred bytes.
const PROC_FILE_CAP: u64 = 64 * 1024;

/// Reads a small procfs file, at most [`PROC_FILE_CAP`] bytes (a longer one is cut there). Opened non-blocking:
/// `proc_dir` is configurable, and a FIFO there must not hang the source (procfs files ignore the flag).
fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let mut text = String::new();
    file.take(PROC_FILE_CAP).read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_listing_names_the_directory_and_the_cause_once() {
        let e = ProcsError { path: "/host/proc".into(), source: std::io::Error::from_raw_os_error(libc::ENOENT) };
        assert_eq!(
            crate::model::strict_chain(&e),
            "listing processes in /host/proc: No such file or directory (os error 2)"
        );
    }

    /// A procfs stand-in entry: `comm`, a root `status`, `exe` linking to `exe`, and `cgroup`.
    fn entry(proc: &Path, pid: u32, comm: &str, exe: &str, cgroup: &str) {
        let dir = proc.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(dir.join("status"), format!("Name:\t{comm}\nUid:\t0\t0\t0\t0\n")).unwrap();
        std::os::unix::fs::symlink(exe, dir.join("exe")).unwrap();
        std::fs::write(dir.join("cgroup"), cgroup).unwrap();
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // A FIFO for the test, made the ordinary way.
    fn a_root_process_counts_only_from_its_agents_executable_and_a_runtimes_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let proc = tmp.path();
        let pod = "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-\
                   0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n";
        entry(proc, 10, "kube-proxy", "/usr/local/bin/kube-proxy", pod);
        entry(proc, 11, "kube-proxy", "/usr/bin/sleep", pod);
        entry(proc, 12, "kubelet", "/usr/bin/kubelet", "0::/tests/agents\n");
        entry(proc, 13, "kubelet", "/usr/bin/kubelet (deleted)", "0::/system.slice/kubelet.service\n");
        // A FIFO where a file should be (proc_dir is configurable) neither hangs nor drops the others.
        std::fs::create_dir_all(proc.join("14")).unwrap();
        let fifo = proc.join("14/comm");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());

        let state = scan(proc).unwrap();
        let counted: Vec<(u32, &str)> = state.processes.iter().map(|p| (p.pid, p.comm.as_str())).collect();
        assert_eq!(counted, vec![(10, "kube-proxy"), (13, "kubelet")]);
        let ignored: Vec<(u32, &str)> = state.ignored.iter().map(|p| (p.pid, p.reason.as_str())).collect();
        assert_eq!(
            ignored,
            vec![
                (11, "its executable is /usr/bin/sleep, not kube-proxy's"),
                (12, "its cgroup /tests/agents is a cgroup of no container runtime or service manager"),
            ]
        );
        assert_eq!(state.pids_text("kubelet"), "13 (systemd unit kubelet.service)");
    }
}
