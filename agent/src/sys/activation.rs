//! The descriptors systemd passes on socket activation (sd_listen_fds(3)): taking fds 3.. into ownership (once
//! per process, close-on-exec), asking the kernel what each is (family, type, listening), and removing the
//! `LISTEN_*` variables so no child sees them. Parsing the variables is the daemon's (`daemon::activation`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The first descriptor systemd passes (SD_LISTEN_FDS_START).
pub const FIRST_FD: RawFd = 3;

/// The address family of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// AF_INET or AF_INET6.
    Inet,
    /// AF_UNIX.
    Unix,
    /// Anything else (the raw family number).
    Other(i32),
}

/// What the kernel says of a passed descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub family: Family,
    /// SOCK_STREAM.
    pub stream: bool,
    /// SO_ACCEPTCONN: `listen` was called on it.
    pub listening: bool,
}

static TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes descriptors `FIRST_FD .. FIRST_FD + count` into ownership and marks each close-on-exec (so a tool the
/// daemon runs never inherits a listener). Each entry is the descriptor or why it could not be taken (not open).
/// Only the first call in a process takes anything: later ones return an empty list (a descriptor must have one
/// owner).
pub fn take_passed(count: usize) -> Vec<std::io::Result<OwnedFd>> {
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Vec::new();
    }
    (0..count).map(|i| take_one(FIRST_FD.saturating_add(RawFd::try_from(i).unwrap_or(RawFd::MAX)))).collect()
}

fn take_one(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_GETFD reads the descriptor's flags; on a closed descriptor it fails with EBADF and changes nothing.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above, for F_SETFD on an open descriptor.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open (F_GETFD succeeded) and was inherited through exec, so nothing in this process
    // opened it; `take_passed` runs once per process, so no other owner is ever made for it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The family, type and listening state of a descriptor (an error when it is not a socket: ENOTSOCK).
pub fn kind(fd: &OwnedFd) -> std::io::Result<Kind> {
    let mut addr = std::mem::MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: addr is valid for len bytes, which the kernel never exceeds; len is a valid in/out pointer.
    if unsafe { libc::getsockname(fd.as_raw_fd(), addr.as_mut_ptr().cast(), &mut len) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: zero-initialised and partly filled by the kernel; every bit pattern is a valid sockaddr_storage.
    let family = i32::from(unsafe { addr.assume_init() }.ss_family);
    let family = match family {
        libc::AF_INET | libc::AF_INET6 => Family::Inet,
        libc::AF_UNIX => Family::Unix,
        other => Family::Other(other),
    };
    let stream = int_option(fd, libc::SO_TYPE)? == libc::SOCK_STREAM;
    let listening = int_option(fd, libc::SO_ACCEPTCONN)? != 0;
    Ok(Kind { family, stream, listening })
}

/// One `SOL_SOCKET` option whose value is an int.
fn int_option(fd: &OwnedFd, name: libc::c_int) -> std::io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value is a valid int and len its size; the kernel writes at most len bytes.
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, name, (&mut value as *mut libc::c_int).cast(), &mut len)
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(value)
}

/// Removes `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` from the environment (as sd_listen_fds(1) does), so no
/// child takes the descriptors as its own. Call it before any thread starts.
pub fn unset_listen_env() {
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_tells_a_listening_tcp_socket_from_a_unix_one_and_a_connected_one() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let k = kind(&OwnedFd::from(tcp.try_clone().unwrap())).unwrap();
        assert_eq!(k, Kind { family: Family::Inet, stream: true, listening: true });
        let conn = std::net::TcpStream::connect(addr).unwrap();
        assert!(!kind(&OwnedFd::from(conn)).unwrap().listening);
        let dir = tempfile::tempdir().unwrap();
        let unix = std::os::unix::net::UnixListener::bind(dir.path().join("s")).unwrap();
        assert_eq!(kind(&OwnedFd::from(unix)).unwrap().family, Family::Unix);
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(!kind(&OwnedFd::from(udp)).unwrap().stream);
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(kind(&OwnedFd::from(file)).is_err(), "a file is not a socket");
    }
}
