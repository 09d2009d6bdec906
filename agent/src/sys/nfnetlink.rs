//! nftables over netlink: dumps of table and chain names (NFT_MSG_GETTABLE / NFT_MSG_GETCHAIN), without rules, and
//! the ruleset's generation (NFT_MSG_GETGEN).
//!
//! Listing names this way costs milliseconds where `nft list tables` builds its whole cache (100 s at 10k Services).
//! The socket half is tiny; `parse_dump` is pure and tested on bytes.
//!
//! The socket is netlink-sys's and the request is netlink-packet-netfilter's `NfTablesMessage::GetTable` /
//! `GetChain` inside a netlink-packet-core `NetlinkMessage`. Replies are read by `parse_dump` through
//! netlink-packet-core's bounds-checked `NetlinkBuffer`, `ErrorBuffer` and `NlasIterator`, not decoded into
//! netlink-packet-netfilter's typed `TableMessage` / `ChainMessage`: that decoder turns every attribute of every
//! chain (hook, policy, counters, user data, ...) into owned values and fails a whole datagram on one attribute it
//! cannot read (a hook whose nested attributes it does not know, a name that is not UTF-8), where routewarden
//! needs two names and whether a hook is present, at 60k chains per dump.

use std::borrow::Cow;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    ErrorBuffer, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, NLMSG_DONE, NLMSG_ERROR,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_netfilter::nftables::{
    ChainMessage, GenMessage, NfTablesMessage, NfTablesMessageType, TableMessage,
};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily, NetfilterSubsystem};
use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket, SocketAddr};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_GEN_ID: u16 = 1;
/// struct nlmsghdr; netlink-packet-core keeps its own constant private.
const NLMSG_HDRLEN: usize = 16;
/// struct nfgenmsg.
const NFGEN_HDRLEN: usize = 4;
/// NFNETLINK_V0.
const NFNETLINK_V0: u8 = 0;
/// Room for one datagram: the kernel fills dump datagrams up to 32 KiB.
const RECV_BUFFER: usize = 1 << 20;
/// How long one dump may take, from the request to NLMSG_DONE, before it is given up.
const DUMP_DEADLINE: Duration = Duration::from_secs(10);

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
    #[error("opening a NETLINK_NETFILTER socket")]
    Socket(#[source] std::io::Error),
    #[error("sending the nftables dump request")]
    Send(#[source] std::io::Error),
    #[error("receiving the nftables dump")]
    Recv(#[source] std::io::Error),
    #[error("the kernel refused the nftables dump")]
    Kernel(#[source] std::io::Error),
    #[error("malformed netlink message at byte {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error("the nftables ruleset kept changing during the dump; gave up after {0} tries")]
    Interrupted(u32),
}

/// Where the objects of a dump go as each datagram is parsed, so a dump of 300,000 chains is never held twice.
pub trait NftSink {
    /// One table (`name` empty) or chain, its strings borrowed from the datagram.
    fn object(&mut self, family: u8, table: &str, name: &str, base: bool);
    /// Forgets everything received: the dump was interrupted and starts again.
    fn clear(&mut self);
}

impl NftSink for Vec<NftObject> {
    fn object(&mut self, family: u8, table: &str, name: &str, base: bool) {
        self.push(NftObject { family, table: table.into(), name: name.into(), base });
    }
    fn clear(&mut self) {
        Vec::clear(self)
    }
}

/// Dumps every nftables table (as objects with an empty `name`) and every chain, in all families.
pub fn dump_tables_and_chains() -> Result<Vec<NftObject>, NetlinkError> {
    let mut out = Vec::new();
    dump_tables_and_chains_into(&mut out)?;
    Ok(out)
}

/// Like [`dump_tables_and_chains`], handing each object to `sink` as it arrives; a dump interrupted by a
/// concurrent change clears the sink and starts again (both dumps, so tables and chains stay consistent).
pub fn dump_tables_and_chains_into(sink: &mut impl NftSink) -> Result<(), NetlinkError> {
    const TRIES: u32 = 5;
    let tables = request(&NfTablesMessage::GetTable(TableMessage { attributes: Vec::new() }));
    let chains = request(&NfTablesMessage::GetChain(ChainMessage { attributes: Vec::new() }));
    for _ in 0..TRIES {
        sink.clear();
        if dump_once(&tables, sink)? && dump_once(&chains, sink)? {
            return Ok(());
        }
    }
    Err(NetlinkError::Interrupted(TRIES))
}

/// Dumps only the tables (objects with an empty `name`): a few datagrams, whatever the number of chains.
pub fn dump_tables_into(sink: &mut impl NftSink) -> Result<(), NetlinkError> {
    const TRIES: u32 = 5;
    let tables = request(&NfTablesMessage::GetTable(TableMessage { attributes: Vec::new() }));
    for _ in 0..TRIES {
        sink.clear();
        if dump_once(&tables, sink)? {
            return Ok(());
        }
    }
    Err(NetlinkError::Interrupted(TRIES))
}

/// The network namespace's nftables ruleset generation (`NFTA_GEN_ID`, the kernel's `base_seq`): bumped by
/// `nf_tables_commit` on every committed transaction, from `nft` and iptables-nft alike, so an unchanged generation
/// means an unchanged ruleset (nft validates its own cache this way).
pub fn generation() -> Result<u32, NetlinkError> {
    let deadline = Instant::now() + DUMP_DEADLINE;
    let sock = Socket::new(NETLINK_NETFILTER).map_err(NetlinkError::Socket)?;
    let mut req = request(&NfTablesMessage::GetGen(GenMessage { attributes: Vec::new() }));
    // Not a dump: one NEWGEN message answers (NLM_F_REQUEST only, as libnftnl asks).
    let flags = NLM_F_REQUEST.to_ne_bytes();
    req[6..8].copy_from_slice(&flags);
    sock.send_to(&req, &SocketAddr::new(0, 0), 0).map_err(NetlinkError::Send)?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = recv_before(&sock, &mut buf, deadline)?;
        if let Some(id) = parse_gen(&buf[..n])? {
            return Ok(id);
        }
    }
}

/// The generation id in one received datagram; `None` when it holds no NEWGEN message.
pub fn parse_gen(buf: &[u8]) -> Result<Option<u32>, NetlinkError> {
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let msg = NetlinkBuffer::new_checked(&buf[off..])
            .map_err(|_| NetlinkError::Malformed { offset: off, what: "message length out of bounds" })?;
        let len = msg.length() as usize;
        let kind = msg.message_type();
        let body = msg.payload();
        if kind == NLMSG_ERROR {
            let err = ErrorBuffer::new_checked(body)
                .map_err(|_| NetlinkError::Malformed { offset: off, what: "short error message" })?;
            if let Some(code) = err.code() {
                return Err(NetlinkError::Kernel(std::io::Error::from_raw_os_error(code.get().saturating_neg())));
            }
        } else if NetfilterSubsystem::from((kind >> 8) as u8) == NetfilterSubsystem::NfTables
            && NfTablesMessageType::from(kind as u8) == NfTablesMessageType::NewGen
        {
            let attrs =
                body.get(NFGEN_HDRLEN..).ok_or(NetlinkError::Malformed { offset: off, what: "short nfgenmsg" })?;
            for attr in NlasIterator::new(attrs) {
                let attr = attr.map_err(|_| NetlinkError::Malformed {
                    offset: off + NLMSG_HDRLEN + NFGEN_HDRLEN,
                    what: "attribute length out of bounds",
                })?;
                if attr.kind() == NFTA_GEN_ID {
                    let v: [u8; 4] = attr.value().try_into().map_err(|_| NetlinkError::Malformed {
                        offset: off + NLMSG_HDRLEN + NFGEN_HDRLEN,
                        what: "NFTA_GEN_ID is not 4 bytes",
                    })?;
                    return Ok(Some(u32::from_be_bytes(v)));
                }
            }
            return Err(NetlinkError::Malformed { offset: off, what: "NEWGEN without NFTA_GEN_ID" });
        }
        off += align4(len);
    }
    Ok(None)
}

/// The bytes of a dump request for `what` in every family (nfgenmsg AF_UNSPEC, NFNETLINK_V0, res_id 0).
fn request(what: &NfTablesMessage) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    // Port id 0: the kernel assigns ours when the request is sent.
    let nfgen = NetfilterHeader::new(NetfilterProtoFamily::Unspec, NFNETLINK_V0, 0);
    let inner = NetfilterMessage::new(nfgen, what.clone());
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// One dump into `sink`; false when the kernel flagged it as interrupted by a concurrent change.
fn dump_once(req: &[u8], sink: &mut impl NftSink) -> Result<bool, NetlinkError> {
    let deadline = Instant::now() + DUMP_DEADLINE;
    let sock = Socket::new(NETLINK_NETFILTER).map_err(NetlinkError::Socket)?;
    sock.send_to(req, &SocketAddr::new(0, 0), 0).map_err(NetlinkError::Send)?;

    let mut buf = vec![0u8; RECV_BUFFER];
    let mut interrupted = false;
    loop {
        let n = recv_before(&sock, &mut buf, deadline)?;
        let chunk = parse_dump(&buf[..n], sink)?;
        interrupted |= chunk.interrupted;
        if chunk.done {
            break;
        }
    }
    Ok(!interrupted)
}

/// Receives one datagram into `buf`, waiting no later than `deadline`; its length.
///
/// The kernel queues the next part of a dump as the previous one is read, so the non-blocking receive usually
/// succeeds at once and `poll` only runs when the kernel is slow.
fn recv_before(sock: &Socket, buf: &mut [u8], deadline: Instant) -> Result<usize, NetlinkError> {
    loop {
        // MSG_TRUNC: the datagram's real length, so one that did not fit is noticed rather than parsed cut.
        match sock.recv(&mut &mut buf[..], libc::MSG_DONTWAIT | libc::MSG_TRUNC) {
            Ok(n) if n > buf.len() => {
                return Err(NetlinkError::Malformed {
                    offset: buf.len(),
                    what: "datagram larger than the receive buffer",
                })
            }
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(NetlinkError::Recv(e)),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NetlinkError::Recv(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no complete answer from the kernel within {} s", DUMP_DEADLINE.as_secs()),
            )));
        }
        // Rounded up to the next millisecond, so the last wait does not turn into a busy loop.
        let timeout = PollTimeout::try_from(left.as_millis() + 1).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(NetlinkError::Recv(e.into())),
        }
    }
}

/// What one received datagram said about the dump as a whole.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    pub done: bool,
    pub interrupted: bool,
}

/// Parses the netlink messages in one datagram, handing tables and chains to `out`.
pub fn parse_dump(buf: &[u8], out: &mut impl NftSink) -> Result<Chunk, NetlinkError> {
    let mut chunk = Chunk::default();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        // Checks that the length field covers a header and stays inside the datagram.
        let msg = NetlinkBuffer::new_checked(&buf[off..])
            .map_err(|_| NetlinkError::Malformed { offset: off, what: "message length out of bounds" })?;
        let len = msg.length() as usize;
        let kind = msg.message_type();
        let body = msg.payload();
        if msg.flags() & NLM_F_DUMP_INTR != 0 {
            chunk.interrupted = true;
        }
        match kind {
            NLMSG_DONE => {
                chunk.done = true;
                return Ok(chunk);
            }
            NLMSG_ERROR => {
                let err = ErrorBuffer::new_checked(body)
                    .map_err(|_| NetlinkError::Malformed { offset: off, what: "short error message" })?;
                // None is an acknowledgement, not an error.
                if let Some(code) = err.code() {
                    return Err(NetlinkError::Kernel(std::io::Error::from_raw_os_error(code.get().saturating_neg())));
                }
            }
            _ if NetfilterSubsystem::from((kind >> 8) as u8) == NetfilterSubsystem::NfTables => {
                let nfgen = NetfilterHeader::parse(body)
                    .map_err(|_| NetlinkError::Malformed { offset: off, what: "short nfgenmsg" })?;
                let family = u8::from(nfgen.family);
                // Replies to GETTABLE are NEWTABLE; replies to GETCHAIN are NEWCHAIN.
                let msg = NfTablesMessageType::from(kind as u8);
                let (is_table, is_chain) = (msg == NfTablesMessageType::NewTable, msg == NfTablesMessageType::NewChain);
                let (mut table, mut name, mut base) = (Cow::Borrowed(""), Cow::Borrowed(""), false);
                let attrs_at = off + NLMSG_HDRLEN + NFGEN_HDRLEN;
                let mut at = 0;
                for attr in NlasIterator::new(&body[NFGEN_HDRLEN..]) {
                    let attr = attr.map_err(|_| NetlinkError::Malformed {
                        offset: attrs_at + at,
                        what: "attribute length out of bounds",
                    })?;
                    let len = usize::from(attr.length());
                    at += align4(len);
                    let kind = attr.kind();
                    // The value borrowed from the datagram itself, not from the attribute wrapper.
                    let value = attr.into_inner().get(4..len).unwrap_or_default();
                    match kind {
                        NFTA_TABLE_NAME if is_table => table = c_string(value),
                        NFTA_CHAIN_TABLE if is_chain => table = c_string(value),
                        NFTA_CHAIN_NAME if is_chain => name = c_string(value),
                        NFTA_CHAIN_HOOK if is_chain => base = true,
                        _ => {}
                    }
                }
                if is_table || is_chain {
                    out.object(family, &table, &name, base);
                }
            }
            _ => {}
        }
        off += align4(len);
    }
    Ok(chunk)
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn c_string(v: &[u8]) -> Cow<'_, str> {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_is_named_once_with_the_kernels_error() {
        let io = std::io::Error::from_raw_os_error;
        let chain = |e: NetlinkError| crate::sys::chain(&e);
        assert_eq!(
            chain(NetlinkError::Socket(io(libc::EPERM))),
            "opening a NETLINK_NETFILTER socket: Operation not permitted (os error 1)"
        );
        assert_eq!(
            chain(NetlinkError::Send(io(libc::ENOBUFS))),
            "sending the nftables dump request: No buffer space available (os error 105)"
        );
        assert_eq!(
            chain(NetlinkError::Recv(io(libc::EAGAIN))),
            "receiving the nftables dump: Resource temporarily unavailable (os error 11)"
        );
        assert_eq!(
            chain(NetlinkError::Kernel(io(libc::EACCES))),
            "the kernel refused the nftables dump: Permission denied (os error 13)"
        );
    }

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
        let mut out: Vec<NftObject> = Vec::new();
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
    fn an_error_code_of_i32_min_is_an_error_not_an_overflow() {
        // Found by the fuzzer (fuzz/findings/nft_dump-error-code-i32-min.bin): negating i32::MIN overflowed.
        for code in [i32::MIN, -1, 1, i32::MAX] {
            let mut body = code.to_ne_bytes().to_vec();
            body.extend_from_slice(&[0; 16]);
            let buf = msg(NLMSG_ERROR, 0, &body);
            let mut out: Vec<NftObject> = Vec::new();
            assert!(matches!(parse_dump(&buf, &mut out), Err(NetlinkError::Kernel(_))), "code {code}");
        }
    }

    #[test]
    fn reports_kernel_errors_and_truncation() {
        let buf = msg(NLMSG_ERROR, 0, &(-1i32).to_ne_bytes());
        let err = parse_dump(&buf, &mut Vec::<NftObject>::new()).unwrap_err();
        assert!(matches!(err, NetlinkError::Kernel(_)), "{err}");

        let mut bad = msg((10 << 8) | 3, 2, &[2, 0, 0, 0]);
        bad[0] = 200;
        let err = parse_dump(&bad, &mut Vec::<NftObject>::new()).unwrap_err();
        assert!(err.to_string().contains("byte 0"), "{err}");
    }

    #[test]
    fn requests_a_dump_in_every_family() {
        let req = request(&NfTablesMessage::GetChain(ChainMessage { attributes: Vec::new() }));
        // The bytes the hand-built request had: nlmsghdr (length, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETCHAIN,
        // NLM_F_REQUEST | NLM_F_DUMP, sequence 1, port 0), then nfgenmsg (AF_UNSPEC, NFNETLINK_V0, res_id 0).
        let mut want = Vec::new();
        want.extend_from_slice(&20u32.to_ne_bytes());
        want.extend_from_slice(&((10u16 << 8) | 4).to_ne_bytes());
        want.extend_from_slice(&0x301u16.to_ne_bytes());
        want.extend_from_slice(&1u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(req, want);
        let tables = request(&NfTablesMessage::GetTable(TableMessage { attributes: Vec::new() }));
        assert_eq!(u16::from_ne_bytes([tables[4], tables[5]]), (10 << 8) | 1);
    }

    #[test]
    fn gives_up_waiting_at_the_deadline() {
        // A socket nobody sends to (NETLINK_ROUTE: needs no module and no privilege).
        let sock = Socket::new(netlink_sys::protocols::NETLINK_ROUTE).unwrap();
        let start = Instant::now();
        let err = recv_before(&sock, &mut [0u8; 64], start + Duration::from_millis(50)).unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(matches!(&err, NetlinkError::Recv(e) if e.kind() == std::io::ErrorKind::TimedOut), "{err}");
    }

    #[test]
    fn reads_the_generation_id_big_endian_and_reports_errors() {
        // NEWGEN as nf_tables_fill_gen_info writes it: NFTA_GEN_ID, NFTA_GEN_PROC_PID, NFTA_GEN_PROC_NAME.
        let mut body = vec![0u8, 0, 0, 7];
        body.extend(attr(NFTA_GEN_ID, &0x0102_0304u32.to_be_bytes()));
        body.extend(attr(2, &42u32.to_be_bytes()));
        body.extend(attr(3, b"nft\0"));
        let buf = msg((10 << 8) | 15, 0, &body);
        assert_eq!(parse_gen(&buf).unwrap(), Some(0x0102_0304));
        // A chain message is no answer; an error is an error; a NEWGEN without the id is malformed.
        assert_eq!(parse_gen(&msg((10 << 8) | 3, 2, &[2, 0, 0, 0])).unwrap(), None);
        let err = parse_gen(&msg(NLMSG_ERROR, 0, &(-1i32).to_ne_bytes())).unwrap_err();
        assert!(matches!(err, NetlinkError::Kernel(_)), "{err}");
        let err = parse_gen(&msg((10 << 8) | 15, 0, &[0, 0, 0, 0])).unwrap_err();
        assert!(err.to_string().contains("NFTA_GEN_ID"), "{err}");
        let mut short = vec![0u8, 0, 0, 0];
        short.extend(attr(NFTA_GEN_ID, &[1, 2]));
        assert!(parse_gen(&msg((10 << 8) | 15, 0, &short)).is_err());
    }

    #[test]
    fn flags_interrupted_dumps() {
        let buf = msg((10 << 8) | 3, NLM_F_DUMP_INTR, &[2, 0, 0, 0]);
        let chunk = parse_dump(&buf, &mut Vec::<NftObject>::new()).unwrap();
        assert!(chunk.interrupted && !chunk.done);
    }
}
