//! nftables over netlink: dumps of table and chain names (NFT_MSG_GETTABLE / NFT_MSG_GETCHAIN), without rules.
//!
//! Listing names this way costs milliseconds where `nft list tables` builds its whole cache (100 s at 10k Services).
//! The socket half is tiny; `parse_dump` is pure and tested on bytes.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLMSG_HDRLEN: usize = 16;
const NFGEN_HDRLEN: usize = 4;

/// One nftables object name as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftObject {
    /// Address family number (2 = ip, 10 = ip6, 1 = inet, 3 = arp, 7 = bridge, 5 = netdev).
    pub family: u8,
    /// Table name (for a table, its own name).
    pub table: String,
    /// Chain name; empty for a table.
    pub name: String,
    /// Whether the chain is a base chain (hooked into the stack).
    pub base: bool,
}

/// A netlink exchange that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("opening a NETLINK_NETFILTER socket: {0}")]
    Socket(std::io::Error),
    #[error("sending the nftables dump request: {0}")]
    Send(std::io::Error),
    #[error("receiving the nftables dump: {0}")]
    Recv(std::io::Error),
    #[error("the kernel refused the nftables dump: {0}")]
    Kernel(std::io::Error),
    #[error("malformed netlink message at byte {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error("the nftables ruleset kept changing during the dump; gave up after {0} tries")]
    Interrupted(u32),
}

/// Dumps every nftables table (as objects with an empty `name`) and every chain, in all families.
pub fn dump_tables_and_chains() -> Result<Vec<NftObject>, NetlinkError> {
    let mut out = dump(NFT_MSG_GETTABLE)?;
    out.extend(dump(NFT_MSG_GETCHAIN)?);
    Ok(out)
}

fn dump(msg: u16) -> Result<Vec<NftObject>, NetlinkError> {
    const TRIES: u32 = 5;
    for _ in 0..TRIES {
        match dump_once(msg)? {
            Some(objects) => return Ok(objects),
            None => continue,
        }
    }
    Err(NetlinkError::Interrupted(TRIES))
}

/// One dump; `None` when the kernel flagged it as interrupted by a concurrent change.
fn dump_once(msg: u16) -> Result<Option<Vec<NftObject>>, NetlinkError> {
    // SAFETY: plain socket(2) call; the returned descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_NETFILTER) };
    if fd < 0 {
        return Err(NetlinkError::Socket(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh, valid descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    set_recv_timeout(&sock).map_err(NetlinkError::Socket)?;

    let mut req = Vec::with_capacity(NLMSG_HDRLEN + NFGEN_HDRLEN);
    let len = u32::try_from(NLMSG_HDRLEN + NFGEN_HDRLEN).unwrap_or(20);
    req.extend_from_slice(&len.to_ne_bytes());
    req.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel assigns it
    req.extend_from_slice(&[0u8, 0u8, 0u8, 0u8]); // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 0

    // SAFETY: the zeroed sockaddr_nl is valid with nl_family set; req outlives the call.
    let sent = unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        libc::sendto(
            sock.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(NetlinkError::Send(std::io::Error::last_os_error()));
    }

    let mut objects = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut interrupted = false;
    loop {
        // SAFETY: buf is a valid writable buffer of buf.len() bytes.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(NetlinkError::Recv(std::io::Error::last_os_error()));
        }
        let n = usize::try_from(n).unwrap_or(0);
        let chunk = parse_dump(&buf[..n], &mut objects)?;
        interrupted |= chunk.interrupted;
        if chunk.done {
            break;
        }
    }
    Ok(if interrupted { None } else { Some(objects) })
}

fn set_recv_timeout(sock: &OwnedFd) -> std::io::Result<()> {
    let tv = libc::timeval { tv_sec: 10, tv_usec: 0 };
    // SAFETY: tv is a valid timeval for SO_RCVTIMEO.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What one received datagram said about the dump as a whole.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    pub done: bool,
    pub interrupted: bool,
}

/// Parses the netlink messages in one datagram, appending tables and chains to `out`.
pub fn parse_dump(buf: &[u8], out: &mut Vec<NftObject>) -> Result<Chunk, NetlinkError> {
    let mut chunk = Chunk::default();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let len = u32_at(buf, off) as usize;
        let kind = u16_at(buf, off + 4);
        let flags = u16_at(buf, off + 6);
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            return Err(NetlinkError::Malformed { offset: off, what: "message length out of bounds" });
        }
        let body = &buf[off + NLMSG_HDRLEN..off + len];
        if flags & NLM_F_DUMP_INTR != 0 {
            chunk.interrupted = true;
        }
        match kind {
            NLMSG_DONE => {
                chunk.done = true;
                return Ok(chunk);
            }
            NLMSG_ERROR => {
                if body.len() < 4 {
                    return Err(NetlinkError::Malformed { offset: off, what: "short error message" });
                }
                let errno = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                if errno != 0 {
                    return Err(NetlinkError::Kernel(std::io::Error::from_raw_os_error(-errno)));
                }
            }
            _ if kind >> 8 == NFNL_SUBSYS_NFTABLES => {
                if body.len() < NFGEN_HDRLEN {
                    return Err(NetlinkError::Malformed { offset: off, what: "short nfgenmsg" });
                }
                let family = body[0];
                let msg = kind & 0xff;
                let mut obj = NftObject { family, table: String::new(), name: String::new(), base: false };
                for (attr, value) in attrs(&body[NFGEN_HDRLEN..], off)? {
                    match (msg, attr) {
                        (0, NFTA_TABLE_NAME) => obj.table = c_string(value),
                        (3, NFTA_CHAIN_TABLE) => obj.table = c_string(value),
                        (3, NFTA_CHAIN_NAME) => obj.name = c_string(value),
                        (3, NFTA_CHAIN_HOOK) => obj.base = true,
                        _ => {}
                    }
                }
                // Replies to GETTABLE are NEWTABLE (0); replies to GETCHAIN are NEWCHAIN (3).
                if msg == 0 || msg == 3 {
                    out.push(obj);
                }
            }
            _ => {}
        }
        off += align4(len);
    }
    Ok(chunk)
}

/// Iterates the netlink attributes (type without flag bits, value) in `buf`.
fn attrs(buf: &[u8], base: usize) -> Result<Vec<(u16, &[u8])>, NetlinkError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= buf.len() {
        let len = usize::from(u16_at(buf, off));
        let kind = u16_at(buf, off + 2) & 0x3fff;
        if len < 4 || off + len > buf.len() {
            return Err(NetlinkError::Malformed { offset: base + off, what: "attribute length out of bounds" });
        }
        out.push((kind, &buf[off + 4..off + len]));
        off += align4(len);
    }
    Ok(out)
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn c_string(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&u16::try_from(4 + value.len()).unwrap().to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn msg(kind: u16, flags: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&u32::try_from(16 + body.len()).unwrap().to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn parses_chains_with_table_family_and_hook() {
        let mut body = vec![2u8, 0, 0, 0];
        body.extend(attr(NFTA_CHAIN_TABLE, b"nat\0"));
        body.extend(attr(NFTA_CHAIN_NAME, b"KUBE-SVC-NPX46M4PTMTKRN6Y\0"));
        let mut buf = msg((10 << 8) | 3, 2, &body);
        let mut base = vec![10u8, 0, 0, 0];
        base.extend(attr(NFTA_CHAIN_TABLE, b"filter\0"));
        base.extend(attr(NFTA_CHAIN_NAME, b"INPUT\0"));
        base.extend(attr(NFTA_CHAIN_HOOK | 0x8000, &[0; 8]));
        buf.extend(msg((10 << 8) | 3, 2, &base));
        buf.extend(msg(NLMSG_DONE, 2, &[0; 4]));
        let mut out = Vec::new();
        let chunk = parse_dump(&buf, &mut out).unwrap();
        assert!(chunk.done && !chunk.interrupted);
        assert_eq!(
            out,
            vec![
                NftObject { family: 2, table: "nat".into(), name: "KUBE-SVC-NPX46M4PTMTKRN6Y".into(), base: false },
                NftObject { family: 10, table: "filter".into(), name: "INPUT".into(), base: true },
            ]
        );
    }

    #[test]
    fn reports_kernel_errors_and_truncation() {
        let buf = msg(NLMSG_ERROR, 0, &(-1i32).to_ne_bytes());
        let err = parse_dump(&buf, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, NetlinkError::Kernel(_)), "{err}");

        let mut bad = msg((10 << 8) | 3, 2, &[2, 0, 0, 0]);
        bad[0] = 200;
        let err = parse_dump(&bad, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("byte 0"), "{err}");
    }

    #[test]
    fn flags_interrupted_dumps() {
        let buf = msg((10 << 8) | 3, NLM_F_DUMP_INTR, &[2, 0, 0, 0]);
        let chunk = parse_dump(&buf, &mut Vec::new()).unwrap();
        assert!(chunk.interrupted && !chunk.done);
    }
}
