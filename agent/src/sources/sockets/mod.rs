//! Who listens on a TCP port, from procfs: the listening sockets of `/proc/net/tcp{,6}` and the processes whose
//! `/proc/PID/fd` links hold them. Shared by `procs` (kube-proxy's health port) and `kube_proxy_api` (whether an
//! answer comes from kube-proxy). Every read is bounded in bytes, file descriptors and time.

pub mod parse;

use std::path::Path;
use std::time::Instant;

pub use parse::Listener;

/// At most this many bytes of each `/proc/net/tcp{,6}` table are read (about 4 million sockets at 150 bytes).
const MAX_TABLE_BYTES: u64 = 600 << 20;
/// At most this many file descriptors are looked at to find the processes holding a socket.
const MAX_FDS: usize = 1_000_000;

/// The listening sockets of `proc_dir`'s `net/tcp` then `net/tcp6`, streamed: a caller that stops at its first
/// match reads no further. An unreadable table counts as empty.
pub fn listeners(proc_dir: &Path) -> impl Iterator<Item = Listener> + '_ {
    [("net/tcp", false), ("net/tcp6", true)].into_iter().flat_map(move |(file, v6)| {
        let table = std::fs::File::open(proc_dir.join(file)).ok();
        let reader = table.map(|f| std::io::BufReader::new(std::io::Read::take(f, MAX_TABLE_BYTES)));
        reader.into_iter().flat_map(move |r| parse::listeners_in(r, v6))
    })
}

/// A process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub inode: u64,
    pub pid: u32,
    /// `/proc/PID/comm`, empty when it could not be read.
    pub comm: String,
}

/// The processes holding one of `inodes` (one entry per process, for the first of them it holds), looked for
/// until `deadline`, over at most [`MAX_FDS`] descriptors, and until `limit` holders are found.
pub fn holders(proc_dir: &Path, inodes: &[u64], deadline: Instant, limit: usize) -> Vec<Holder> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(proc_dir) else { return out };
    let mut seen = 0usize;
    'walk: for entry in dir.flatten() {
        if out.len() >= limit {
            break;
        }
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            seen += 1;
            if seen > MAX_FDS || Instant::now() > deadline {
                break 'walk;
            }
            let Ok(link) = std::fs::read_link(fd.path()) else { continue };
            let Some(inode) = parse::socket_inode(&link.to_string_lossy()) else { continue };
            if inodes.contains(&inode) {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                out.push(Holder { inode, pid, comm: comm.trim_end().to_string() });
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn this_process_is_found_holding_its_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let proc_dir = Path::new("/proc");
        let mine = listeners(proc_dir).find(|s| s.port == port).expect("our listener in /proc/net/tcp");
        let found = holders(proc_dir, &[mine.inode], Instant::now() + Duration::from_secs(5), 1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, std::process::id());
        assert_eq!(found[0].inode, mine.inode);
        // A host root without procfs: nobody listens, nothing holds.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(listeners(empty.path()).count(), 0);
        assert!(holders(empty.path(), &[mine.inode], Instant::now() + Duration::from_secs(1), 1).is_empty());
    }
}
