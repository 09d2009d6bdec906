//! Processes from procfs (under the host root): which Service proxies' agents and whether a kubelet run, and
//! which kubelet configuration files exist; who holds kube-proxy's health port.

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::model::procs::{PortHolder, Process, ProcessState};

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

/// At most this many bytes of each `/proc/net/tcp{,6}` table are read (about 4 million sockets at 150 bytes).
const MAX_TABLE_BYTES: u64 = 600 << 20;
/// At most this many file descriptors are looked at, for at most `FD_WALK_LIMIT`, to find a socket's process.
const MAX_FDS: usize = 1_000_000;
const FD_WALK_LIMIT: Duration = Duration::from_secs(2);

/// The listener on TCP `port` (IPv4 or IPv6, this network namespace) and the process holding it. Unreadable
/// files count as "nobody listens"; a socket no process's fds show (or not within the fd walk's bounds) has no
/// pid. The tables are streamed and the walk stops at the first match; nothing is walked when nobody listens.
fn holder(proc: &Path, port: u16) -> Option<PortHolder> {
    let inode = ["net/tcp", "net/tcp6"].iter().find_map(|f| {
        let file = std::fs::File::open(proc.join(f)).ok()?;
        listening_inode_in(std::io::BufReader::new(std::io::Read::take(file, MAX_TABLE_BYTES)), port)
    })?;
    let want = format!("socket:[{inode}]");
    let mut found = None;
    let (started, mut seen) = (Instant::now(), 0usize);
    'walk: for entry in std::fs::read_dir(proc).ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        let mut held = false;
        for fd in fds.flatten() {
            seen += 1;
            if seen > MAX_FDS || started.elapsed() > FD_WALK_LIMIT {
                break 'walk;
            }
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()) {
                held = true;
                break;
            }
        }
        if held {
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok().map(|c| c.trim_end().to_string());
            found = Some((pid, comm));
            break;
        }
    }
    Some(PortHolder { port, pid: found.as_ref().map(|f| f.0), comm: found.and_then(|f| f.1) })
}

/// The inode of the socket listening on `port` in a `/proc/net/tcp` or `tcp6` table (state 0A), if any.
pub fn listening_inode(text: &str, port: u16) -> Option<u64> {
    listening_inode_in(text.as_bytes(), port)
}

/// [`listening_inode`] over a stream, read line by line up to the first match (or a line that cannot be read).
fn listening_inode_in(reader: impl BufRead, port: u16) -> Option<u64> {
    let want = format!("{port:04X}");
    reader.lines().skip(1).map_while(Result::ok).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let local_port = f.get(1)?.rsplit_once(':')?.1;
        (local_port == want && *f.get(3)? == "0A").then(|| f.get(9)?.parse().ok()).flatten()
    })
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
    Ok(ProcessState { processes, kubelet_files: Vec::new(), healthz_port: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_on_a_port_is_found_by_its_inode() {
        // /proc/net/tcp as the kernel writes it: a connection from 10256 (state 01) is not a listener.
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2809 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:2810 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000000000000 20 4 30 10 -1
   2: 00000000:2810 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6161 1 0000000000000000 100 0 0 10 0
";
        assert_eq!(listening_inode(text, 10256), Some(6161));
        assert_eq!(listening_inode(text, 10249), Some(4242));
        assert_eq!(listening_inode(text, 10250), None);
        assert_eq!(listening_inode("garbage\n 0: x\n", 10256), None);
        // Streamed: the first match ends the read, even of an endless table.
        let endless = std::io::Read::chain(text.as_bytes(), std::io::repeat(b'x'));
        assert_eq!(listening_inode_in(std::io::BufReader::new(endless), 10256), Some(6161));
        // A bounded read of a table that never matches ends too.
        let lines = std::io::Read::take(std::io::repeat(b'\n'), 1 << 20);
        assert_eq!(listening_inode_in(std::io::BufReader::new(lines), 10256), None);
    }
}
