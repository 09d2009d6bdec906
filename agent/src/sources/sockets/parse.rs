//! Pure parsing of `/proc/net/tcp` and `/proc/net/tcp6` (listening sockets with their owner uid and inode) and
//! of `/proc/PID/fd` socket links.

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub addr: IpAddr,
    pub port: u16,
    pub uid: u32,
    pub inode: u64,
}

impl Listener {
    /// Whether a connection to `to` would reach this socket: same port, and the same address, the unspecified
    /// address, or (for an IPv6 socket) the IPv4-mapped form of `to`.
    pub fn accepts(&self, to: SocketAddr) -> bool {
        if self.port != to.port() {
            return false;
        }
        match (self.addr, to.ip()) {
            (a, b) if a == b || a.is_unspecified() => true,
            (IpAddr::V6(a), IpAddr::V4(b)) => a.to_ipv4_mapped() == Some(b),
            _ => false,
        }
    }
}

/// The LISTEN sockets (state `0A`) in `/proc/net/tcp` text (`v6` for `/proc/net/tcp6`). Lines that do not parse
/// are skipped.
pub fn listeners(text: &str, v6: bool) -> Vec<Listener> {
    listeners_in(text.as_bytes(), v6).collect()
}

/// [`listeners`] over a stream, lazily: a caller that stops at the first match reads no further. Reading ends at
/// the first line that cannot be read (not UTF-8, or an I/O error).
pub fn listeners_in(reader: impl BufRead, v6: bool) -> impl Iterator<Item = Listener> {
    reader.lines().skip(1).map_while(Result::ok).filter_map(move |line| listener(&line, v6))
}

fn listener(line: &str, v6: bool) -> Option<Listener> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.get(3) != Some(&"0A") {
        return None;
    }
    let (addr, port) = f.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let addr = if v6 { IpAddr::V6(ipv6(addr)?) } else { IpAddr::V4(ipv4(addr)?) };
    Some(Listener { addr, port, uid: f.get(7)?.parse().ok()?, inode: f.get(9)?.parse().ok()? })
}

/// The kernel prints each 32-bit word of the address in host byte order.
fn word(hex: &str) -> Option<[u8; 4]> {
    if hex.len() != 8 {
        return None;
    }
    Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
}

fn ipv4(hex: &str) -> Option<Ipv4Addr> {
    word(hex).map(Ipv4Addr::from)
}

fn ipv6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut b = [0u8; 16];
    for i in 0..4 {
        b[i * 4..i * 4 + 4].copy_from_slice(&word(&hex[i * 8..i * 8 + 8])?);
    }
    Some(Ipv6Addr::from(b))
}

/// The inode of a `/proc/PID/fd` link `socket:[12345]`.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on the project's Debian 12 VM (x86_64, little-endian): sshd on 0.0.0.0:2024 and [::]:22, a
    // test server on 127.0.0.1:10249 as uid 1000, and an established connection.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 490 1 000000009c43ba26 100 0 0 10 0
   1: 0100007F:2809 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 77123 1 0000000012345678 100 0 0 10 0
   2: 020200C0:A68A 507100CB:01BB 01 00000000:00000000 00:00000000 00000000     0        0 33796 1 000000000134bed4 20 4 1 93 148
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18977 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:2818 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn listening_sockets_with_uid_and_inode() {
        let l = listeners(TCP, false);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l[1], Listener { addr: "127.0.0.1".parse().unwrap(), port: 10249, uid: 1000, inode: 77123 });
        let l6 = listeners(TCP6, true);
        assert_eq!((l6[0].addr, l6[0].port, l6[0].inode), ("::".parse().unwrap(), 22, 18977));
        assert_eq!(l6[1].addr, "::ffff:127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn which_sockets_take_a_connection() {
        let to: SocketAddr = "127.0.0.1:10249".parse().unwrap();
        assert!(listeners(TCP, false)[1].accepts(to));
        assert!(!listeners(TCP, false)[0].accepts(to), "another port");
        let l6 = listeners(TCP6, true);
        assert!(l6[1].accepts("127.0.0.1:10264".parse().unwrap()), "IPv4-mapped");
        let any = Listener { addr: "0.0.0.0".parse().unwrap(), port: 10249, uid: 0, inode: 1 };
        assert!(any.accepts(to));
    }

    #[test]
    fn bad_lines_are_skipped_and_links_read() {
        assert!(
            listeners("header\n 0: zz:07E8 0 0A\n 1: 00000000:XYZ 00000000:0000 0A a b c d e f\n", false).is_empty()
        );
        assert!(listeners("h\n 0: 0000:0016 0:0 0A 0 0 0 0 0 1\n", true).is_empty());
        assert_eq!(socket_inode("socket:[77123]"), Some(77123));
        assert_eq!(socket_inode("pipe:[1]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn a_streamed_table_is_read_only_up_to_the_first_match() {
        // A connection from 10256 (state 01) is not a listener.
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   1: 0100007F:2810 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000000000000 20 4 30 10 -1
   2: 00000000:2810 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6161 1 0000000000000000 100 0 0 10 0
";
        let endless = std::io::Read::chain(text.as_bytes(), std::io::repeat(b'x'));
        let first = listeners_in(std::io::BufReader::new(endless), false).find(|l| l.port == 10256);
        assert_eq!(first.map(|l| l.inode), Some(6161));
        // A bounded read of a table that never matches ends too.
        let lines = std::io::Read::take(std::io::repeat(b'\n'), 1 << 20);
        assert_eq!(listeners_in(std::io::BufReader::new(lines), false).count(), 0);
    }
}
