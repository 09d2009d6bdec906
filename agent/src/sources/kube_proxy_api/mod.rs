//! kube-proxy's own view, when it answers: `GET /proxyMode` on its metrics address (127.0.0.1:10249) and
//! `GET /healthz` on its health address (port 10256). One deadline for each whole exchange and a size cap;
//! nobody answering is normal. The ports are unprivileged, so an answer counts only when the listening socket
//! belongs to a root-owned kube-proxy, k3s or rke2 process (socket inode in `/proc/net/tcp{,6}`, then the pid
//! whose `/proc/PID/fd` links to it, then its `comm`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::model::kube_proxy_api::KubeProxyApi;
use crate::sources::sockets;

/// The most of one answer that is read.
const MAX_ANSWER: u64 = 64 * 1024;
/// Processes whose sockets are trusted to speak for kube-proxy.
const TRUSTED: [&str; 5] = ["kube-proxy", "k3s", "k3s-server", "k3s-agent", "rke2"];
/// The longest the owner lookup may take (it reads every process's fd table).
const OWNER_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
#[error("invalid address {0:?} in the configuration")]
pub struct ApiError(String);

/// Why the socket answering on an address is not trusted to speak for kube-proxy (a note in the state, not a
/// failure of the source).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    #[error("no listening socket for it was found in {0}/net/tcp")]
    NoListener(std::path::PathBuf),
    #[error("its socket belongs to pid {pid} ({comm}) as uid {uid}")]
    NotRoot { pid: u32, comm: String, uid: u32 },
    #[error("no process holding its socket (uid {uid}) could be seen")]
    NoHolder { uid: u32 },
    #[error("its socket belongs to {}, not kube-proxy", .holders.join(", "))]
    NotKubeProxy { holders: Vec<String> },
    #[error("no owner found")]
    NoOwner,
}

pub fn fetch(config: &Config) -> Result<KubeProxyApi, ApiError> {
    let parse = |s: &str| s.parse::<SocketAddr>().map_err(|_| ApiError(s.to_string()));
    let metrics = parse(&config.kube_proxy.metrics_address)?;
    let health = parse(&config.kube_proxy.healthz_address)?;
    let timeout = Duration::from_millis(config.kube_proxy.timeout_ms);
    let proc_dir = config.host_path(&config.proc_dir);
    let mut api = KubeProxyApi::default();

    let proc_dir = proc_dir.as_path();
    let owner_of = |addr| move || owner(proc_dir, addr);
    if let Some((code, body, who)) = get(metrics, "/proxyMode", Instant::now() + timeout, owner_of(metrics)) {
        let mode = body.trim().to_string();
        if code == 200 && !mode.is_empty() && mode.len() < 32 {
            match who {
                Ok(o) => {
                    api.proxy_mode = Some(mode);
                    api.owner = Some(o);
                }
                Err(why) => api.ignored.push(format!("{metrics}/proxyMode answered {mode:?}, but {why}")),
            }
        }
    }
    if let Some((code, _, who)) = get(health, "/healthz", Instant::now() + timeout, owner_of(health)) {
        match who {
            Ok(o) => {
                api.healthz_status = Some(code);
                api.owner.get_or_insert(o);
            }
            Err(why) => api.ignored.push(format!("{health}/healthz answered {code}, but {why}")),
        }
    }
    Ok(api)
}

/// A minimal HTTP/1.0 GET, all of it before `deadline` and at most [`MAX_ANSWER`] bytes; `None` when nothing
/// answers in time (a server that drips its answer is cut at the deadline). `while_connected` runs once the
/// request is sent, while the server's socket is surely listening (to find who owns it).
fn get<T>(
    addr: SocketAddr,
    path: &str,
    deadline: Instant,
    while_connected: impl FnOnce() -> T,
) -> Option<(u16, String, T)> {
    let left = || deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero());
    let mut s = TcpStream::connect_timeout(&addr, left()?).ok()?;
    s.set_write_timeout(left()).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).ok()?;
    let seen = while_connected();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let wait = left()?;
        s.set_read_timeout(Some(wait)).ok()?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() as u64 > MAX_ANSWER {
                    return None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body, seen))
}

/// Who listens on `addr`, when that is a root-owned kube-proxy (or k3s/rke2) process: `pid 42 (kube-proxy), uid
/// 0`; otherwise why not. Every listening socket that would take a connection to `addr` must be such a socket.
fn owner(proc_dir: &Path, addr: SocketAddr) -> Result<String, Untrusted> {
    let listeners: Vec<sockets::Listener> = sockets::listeners(proc_dir).filter(|l| l.accepts(addr)).collect();
    if listeners.is_empty() {
        return Err(Untrusted::NoListener(proc_dir.to_path_buf()));
    }
    let inodes: Vec<u64> = listeners.iter().map(|l| l.inode).collect();
    let holders = sockets::holders(proc_dir, &inodes, Instant::now() + OWNER_DEADLINE, usize::MAX);
    let mut trusted = None;
    for l in &listeners {
        let held: Vec<&sockets::Holder> = holders.iter().filter(|h| h.inode == l.inode).collect();
        let good = held.iter().find(|h| TRUSTED.contains(&h.comm.as_str()));
        match good {
            Some(h) if l.uid == 0 => trusted = Some(format!("pid {} ({}), uid 0", h.pid, h.comm)),
            Some(h) => return Err(Untrusted::NotRoot { pid: h.pid, comm: h.comm.clone(), uid: l.uid }),
            None if held.is_empty() => return Err(Untrusted::NoHolder { uid: l.uid }),
            None => {
                let holders = held.iter().map(|h| format!("pid {} ({})", h.pid, h.comm)).collect();
                return Err(Untrusted::NotKubeProxy { holders });
            }
        }
    }
    trusted.ok_or(Untrusted::NoOwner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server on a free loopback port that writes `answer` with `pause` between chunks of `chunk` bytes.
    fn server(answer: Vec<u8>, chunk: usize, pause: Duration) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req);
                for part in answer.chunks(chunk) {
                    if s.write_all(part).is_err() {
                        return;
                    }
                    std::thread::sleep(pause);
                }
                drop(s);
                // The listener stays a while, as a server's does.
                std::thread::sleep(Duration::from_secs(3));
            }
        });
        addr
    }

    #[test]
    fn a_server_that_drips_its_answer_is_cut_at_the_deadline() {
        let answer = b"HTTP/1.0 200 OK\r\n\r\nipvs".repeat(100);
        let addr = server(answer, 1, Duration::from_millis(50));
        let start = Instant::now();
        assert_eq!(get(addr, "/proxyMode", start + Duration::from_millis(300), || ()), None);
        // Each byte comes well within a per-read timeout; only a total deadline stops it (else about 120 s).
        assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    }

    #[test]
    fn an_answer_past_the_size_cap_is_refused() {
        let mut answer = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        answer.resize(4 << 20, b'x');
        let addr = server(answer, 64 * 1024, Duration::ZERO);
        assert_eq!(get(addr, "/proxyMode", Instant::now() + Duration::from_secs(20), || ()), None);
        let ok = server(b"HTTP/1.0 200 OK\r\n\r\nipvs\n".to_vec(), 5, Duration::ZERO);
        let answer = get(ok, "/proxyMode", Instant::now() + Duration::from_secs(20), || 7);
        assert_eq!(answer, Some((200, "ipvs\n".into(), 7)));
    }

    /// A host root with `/proc/net/tcp` listing 127.0.0.1:10249 as `uid`, held by pid 42 named `comm`.
    fn host_proc(uid: u32, comm: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("net")).unwrap();
        std::fs::create_dir_all(d.path().join("42/fd")).unwrap();
        std::fs::create_dir_all(d.path().join("7/fd")).unwrap();
        let line = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
             0: 0100007F:2809 00000000:0000 0A 00000000:00000000 00:00000000 00000000 {uid:>5}        0 77123 1 \
             0000000012345678 100 0 0 10 0\n"
        );
        std::fs::write(d.path().join("net/tcp"), line).unwrap();
        std::fs::write(d.path().join("42/comm"), format!("{comm}\n")).unwrap();
        std::os::unix::fs::symlink("socket:[77123]", d.path().join("42/fd/3")).unwrap();
        std::fs::write(d.path().join("7/comm"), "sshd\n").unwrap();
        std::os::unix::fs::symlink("socket:[490]", d.path().join("7/fd/3")).unwrap();
        d
    }

    #[test]
    fn only_a_root_owned_kube_proxy_socket_is_trusted() {
        let addr: SocketAddr = "127.0.0.1:10249".parse().unwrap();
        assert_eq!(owner(host_proc(0, "kube-proxy").path(), addr), Ok("pid 42 (kube-proxy), uid 0".into()));
        assert_eq!(owner(host_proc(0, "k3s-server").path(), addr), Ok("pid 42 (k3s-server), uid 0".into()));
        let squatter = owner(host_proc(1000, "python3").path(), addr).unwrap_err().to_string();
        assert_eq!(squatter, "its socket belongs to pid 42 (python3), not kube-proxy");
        let named = owner(host_proc(1000, "kube-proxy").path(), addr).unwrap_err().to_string();
        assert_eq!(named, "its socket belongs to pid 42 (kube-proxy) as uid 1000");
        let proc = host_proc(0, "kube-proxy");
        let other_port = owner(proc.path(), "127.0.0.1:10256".parse().unwrap()).unwrap_err().to_string();
        assert_eq!(other_port, format!("no listening socket for it was found in {}/net/tcp", proc.path().display()));
    }

    #[test]
    fn an_answer_from_a_socket_that_is_not_kube_proxys_is_ignored_and_said() {
        // A real server in this test process, seen through the real /proc: its owner is the test binary.
        let addr = server(b"HTTP/1.0 200 OK\r\n\r\nipvs".to_vec(), 1024, Duration::ZERO);
        let mut config = Config::default();
        config.kube_proxy.metrics_address = addr.to_string();
        config.kube_proxy.healthz_address = "127.0.0.1:1".into();
        config.kube_proxy.timeout_ms = 5000;
        let api = fetch(&config).unwrap();
        assert_eq!(api.proxy_mode, None, "{api:?}");
        assert_eq!(api.ignored.len(), 1, "{api:?}");
        assert!(api.ignored[0].contains("answered \"ipvs\"") && api.ignored[0].contains("not kube-proxy"), "{api:?}");
    }
}
