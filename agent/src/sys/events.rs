//! Kernel change events: netlink multicast for link changes (rtnetlink) and nftables ruleset changes
//! (nfnetlink, which also covers the iptables-nft backend). iptables-legacy and BPF have no events.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_NETFILTER: i32 = 12;
const RTMGRP_LINK: u32 = 1;
const NFNLGRP_NFTABLES: u32 = 7;
const SOL_NETLINK: i32 = 270;
const NETLINK_ADD_MEMBERSHIP: i32 = 1;

/// A netlink socket subscribed to change notifications.
pub struct EventSocket {
    fd: OwnedFd,
    pub what: &'static str,
}

#[derive(Debug, thiserror::Error)]
#[error("subscribing to {what} change events: {source}")]
pub struct EventError {
    what: &'static str,
    source: std::io::Error,
}

impl EventSocket {
    /// Link add/remove/change events.
    pub fn links() -> Result<EventSocket, EventError> {
        open(libc::NETLINK_ROUTE, RTMGRP_LINK, None, "link")
    }

    /// nftables table/chain/rule/set changes, including every iptables-nft change.
    pub fn nftables() -> Result<EventSocket, EventError> {
        open(NETLINK_NETFILTER, 0, Some(NFNLGRP_NFTABLES), "nftables")
    }

    /// Blocks until at least one event arrives, then drains what is queued. An overrun (ENOBUFS) also counts as
    /// "something changed".
    pub fn wait(&self) -> std::io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOBUFS) && e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        // SAFETY: as above, non-blocking drain.
        while unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) } > 0 {}
        Ok(())
    }
}

fn open(proto: i32, groups: u32, add_group: Option<u32>, what: &'static str) -> Result<EventSocket, EventError> {
    let err = |source| EventError { what, source };
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is fresh and owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a zeroed sockaddr_nl with family and groups set is valid for bind.
    let rc = unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = groups;
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    if let Some(group) = add_group {
        // SAFETY: group is a valid u32 option value for NETLINK_ADD_MEMBERSHIP.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_NETLINK,
                NETLINK_ADD_MEMBERSHIP,
                (&group as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
    }
    Ok(EventSocket { fd, what })
}
