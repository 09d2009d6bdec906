//! Kernel change events: netlink multicast for link changes (rtnetlink) and nftables ruleset changes
//! (nfnetlink, which also covers the iptables-nft backend). iptables-legacy and BPF have no events.
//!
//! The sockets are netlink-sys's, bound to a kernel-assigned port and joined to one multicast group each.

use netlink_sys::protocols::{NETLINK_NETFILTER, NETLINK_ROUTE};
use netlink_sys::{Socket, SocketAddr};

/// rtnetlink's link group (RTNLGRP_LINK): links added, removed or changed.
const RTNLGRP_LINK: u32 = libc::RTNLGRP_LINK;
/// nfnetlink's nftables group (NFNLGRP_NFTABLES): tables, chains, rules, sets and elements.
const NFNLGRP_NFTABLES: u32 = libc::NFNLGRP_NFTABLES as u32;
/// Room for one notification; a longer one is cut, which does not matter: only its arrival counts.
const EVENT_BUFFER: usize = 64 * 1024;

/// A netlink socket subscribed to change notifications.
pub struct EventSocket {
    sock: Socket,
    pub what: &'static str,
}

#[derive(Debug, thiserror::Error)]
#[error("subscribing to {what} change events")]
pub struct EventError {
    what: &'static str,
    source: std::io::Error,
}

impl EventSocket {
    /// Link add/remove/change events.
    pub fn links() -> Result<EventSocket, EventError> {
        open(NETLINK_ROUTE, RTNLGRP_LINK, "link")
    }

    /// nftables table/chain/rule/set changes, including every iptables-nft change.
    pub fn nftables() -> Result<EventSocket, EventError> {
        open(NETLINK_NETFILTER, NFNLGRP_NFTABLES, "nftables")
    }

    /// Blocks until at least one event arrives, then drains what is queued. An overrun (ENOBUFS) also counts as
    /// "something changed".
    pub fn wait(&self) -> std::io::Result<()> {
        let mut buf = vec![0u8; EVENT_BUFFER];
        if let Err(e) = self.sock.recv(&mut &mut buf[..], 0) {
            if e.raw_os_error() != Some(libc::ENOBUFS) && e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        // Non-blocking drain: one wake-up for a burst of changes.
        while matches!(self.sock.recv(&mut &mut buf[..], libc::MSG_DONTWAIT), Ok(n) if n > 0) {}
        Ok(())
    }
}

fn open(protocol: isize, group: u32, what: &'static str) -> Result<EventSocket, EventError> {
    let err = |source| EventError { what, source };
    let mut sock = Socket::new(protocol).map_err(err)?;
    // Port 0: the kernel assigns one; no groups in the legacy bitmask, the membership below joins the one wanted.
    sock.bind(&SocketAddr::new(0, 0)).map_err(err)?;
    sock.add_membership(group).map_err(err)?;
    Ok(EventSocket { sock, what })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_subscription_names_what_and_the_cause_once() {
        let e = EventError { what: "link", source: std::io::Error::from_raw_os_error(libc::EPERM) };
        assert_eq!(crate::sys::chain(&e), "subscribing to link change events: Operation not permitted (os error 1)");
    }
}
