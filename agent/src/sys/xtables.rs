//! Legacy iptables tables straight from the kernel: `getsockopt(IPT_SO_GET_INFO / IPT_SO_GET_ENTRIES)` and the
//! IPv6 `IP6T_SO_GET_*`, the calls libiptc (and so `iptables-legacy-save`) makes, as raw bytes.
//!
//! The socket is a UDP socket of the family: the kernel hands any inet socket's unknown IP-level options to
//! netfilter (`ip_getsockopt` / `ipv6_getsockopt` -> `nf_getsockopt`), which checks CAP_NET_ADMIN in the socket's
//! network namespace; unlike libiptc's raw socket this needs no CAP_NET_RAW. The namespace read is the calling
//! thread's. Only tables the kernel already lists should be asked for: asking for another may load and create it.
//!
//! Each call is one system call that copies kernel memory; it cannot block on anything outside the kernel, so it
//! has no timeout. The size the kernel announces is bounded by `max_bytes` before anything is allocated.
//! Nothing here interprets the blob: `sources::iptables::entries` decodes it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `IPT_SO_GET_INFO` and `IP6T_SO_GET_INFO` (`IPT_BASE_CTL`, linux/netfilter_ipv4/ip_tables.h).
const SO_GET_INFO: libc::c_int = 64;
/// `IPT_SO_GET_ENTRIES` and `IP6T_SO_GET_ENTRIES`.
const SO_GET_ENTRIES: libc::c_int = 65;
/// `sizeof(struct ipt_getinfo)` (= `struct ip6t_getinfo`): name[32], valid_hooks, hook_entry[5], underflow[5],
/// num_entries, size.
pub const INFO_LEN: usize = 84;
/// Offset of `size` in `struct ipt_getinfo`.
const INFO_SIZE_AT: usize = 80;
/// `sizeof(struct ipt_get_entries)` (= `struct ip6t_get_entries`): name[32], size, then the 8-aligned entries.
const GET_ENTRIES_HDR: usize = 40;
/// `XT_TABLE_MAXNAMELEN`.
const TABLE_NAME_MAX: usize = 32;
/// How often a table that changed between the two calls (EAGAIN) is asked for again.
const TRIES: u32 = 5;

/// Which x_tables family to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        })
    }
}

/// One table as the kernel gave it: the `ipt_getinfo` bytes and the `ipt_get_entries` buffer.
#[derive(Debug)]
pub struct RawTable {
    pub info: [u8; INFO_LEN],
    buf: Buffer,
}

impl RawTable {
    /// The entries blob (`size` bytes), without the `ipt_get_entries` header.
    pub fn entries(&self) -> &[u8] {
        self.buf.as_slice().get(GET_ENTRIES_HDR..).unwrap_or_default()
    }
}

/// An anonymous mapping populated up front (`MAP_POPULATE`): the kernel then copies a table of hundreds of MB
/// into pages that exist, instead of taking a page fault for every 4 KiB during the copy (measured: a third of
/// the getsockopt time at 10k Services). Unmapped on drop, so the memory goes back to the kernel at once.
///
/// Transparent huge pages were tried and left out (`benches/thp/`, BENCHMARKS.md): `MADV_HUGEPAGE` with
/// `MADV_POPULATE_WRITE` populated a 10k-Service table faster (41-49 ms against 90-141 ms) but a 50k-Service one
/// eight times slower (4.3 s against 0.5 s: the kernel compacts memory to find 2 MiB pages), and the copy itself
/// was no faster within the noise.
#[derive(Debug)]
struct Buffer {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

impl Buffer {
    fn new(len: usize) -> std::io::Result<Buffer> {
        let len = len.max(1);
        // SAFETY: a fresh private anonymous mapping; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        std::ptr::NonNull::new(p.cast()).map(|ptr| Buffer { ptr, len }).ok_or_else(std::io::Error::last_os_error)
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is a live mapping of len readable bytes (zeroed by the kernel), owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice, and &mut self makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new, unmapped once.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

// SAFETY: Buffer owns its mapping exclusively, like a Vec<u8>.
unsafe impl Send for Buffer {}
// SAFETY: shared access is read-only.
unsafe impl Sync for Buffer {}

/// A table that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum XtablesError {
    #[error("opening an {family} socket for iptables getsockopt")]
    Socket { family: Family, source: std::io::Error },
    #[error("table name {0:?} is empty or longer than 31 bytes")]
    Name(String),
    #[error("getsockopt {what} for the {family} table {table:?}")]
    Getsockopt { what: &'static str, family: Family, table: String, source: std::io::Error },
    #[error("the {family} table {table:?} is {size} bytes, over the bound of {max} bytes")]
    TooLarge { family: Family, table: String, size: usize, max: usize },
    #[error("the {family} table {table:?} kept changing while it was read; gave up after {TRIES} tries")]
    Changing { family: Family, table: String },
}

/// Reads one table of `family` in the calling thread's network namespace; `max_bytes` bounds its entries.
pub fn read_table(family: Family, table: &str, max_bytes: usize) -> Result<RawTable, XtablesError> {
    if table.is_empty() || table.len() >= TABLE_NAME_MAX {
        return Err(XtablesError::Name(table.to_string()));
    }
    let (domain, level) = match family {
        Family::Ipv4 => (libc::AF_INET, libc::IPPROTO_IP),
        Family::Ipv6 => (libc::AF_INET6, libc::IPPROTO_IPV6),
    };
    // SAFETY: socket has no memory preconditions; the result is checked before it is owned.
    let fd = unsafe { libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::IPPROTO_UDP) };
    if fd < 0 {
        return Err(XtablesError::Socket { family, source: std::io::Error::last_os_error() });
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let failed = |what: &'static str, source: std::io::Error| XtablesError::Getsockopt {
        what,
        family,
        table: table.to_string(),
        source,
    };
    for _ in 0..TRIES {
        let mut info = [0u8; INFO_LEN];
        info[..table.len()].copy_from_slice(table.as_bytes());
        getsockopt(&sock, level, SO_GET_INFO, &mut info).map_err(|e| failed("SO_GET_INFO", e))?;
        let mut size_bytes = [0u8; 4];
        size_bytes.copy_from_slice(&info[INFO_SIZE_AT..INFO_SIZE_AT + 4]);
        let size = u32::from_ne_bytes(size_bytes) as usize;
        if size > max_bytes {
            return Err(XtablesError::TooLarge { family, table: table.to_string(), size, max: max_bytes });
        }
        let mut buf = Buffer::new(GET_ENTRIES_HDR + size).map_err(|e| failed("allocating the entries buffer", e))?;
        let bytes = buf.as_mut_slice();
        bytes[..table.len()].copy_from_slice(table.as_bytes());
        bytes[TABLE_NAME_MAX..TABLE_NAME_MAX + 4].copy_from_slice(&size_bytes);
        match getsockopt(&sock, level, SO_GET_ENTRIES, bytes) {
            Ok(()) => return Ok(RawTable { info, buf }),
            // The table was replaced between the two calls and has another size now.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            Err(e) => return Err(failed("SO_GET_ENTRIES", e)),
        }
    }
    Err(XtablesError::Changing { family, table: table.to_string() })
}

/// One getsockopt whose in/out buffer is `buf`; the kernel must fill it exactly.
fn getsockopt(sock: &OwnedFd, level: libc::c_int, name: libc::c_int, buf: &mut [u8]) -> std::io::Result<()> {
    let mut len = libc::socklen_t::try_from(buf.len()).map_err(|_| std::io::Error::from_raw_os_error(libc::E2BIG))?;
    // SAFETY: buf is valid for len bytes, which the kernel never exceeds; len is a valid out-pointer.
    let rc = unsafe { libc::getsockopt(sock.as_raw_fd(), level, name, buf.as_mut_ptr().cast(), &mut len) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
