//! BPF objects: loaded programs (aya), pinned map entries (aya: hash maps and LPM tries), and programs attached to
//! a cgroup (raw BPF_PROG_QUERY), and a program's full function name from its BTF (raw BPF_OBJ_GET_INFO_BY_FD for
//! func_info, BPF_BTF_GET_FD_BY_ID, then a bounded read of the BTF's type and string sections).
//!
//! aya 0.14 cannot list cgroup attachments (its generic query is private), so `cgroup_attached` issues
//! BPF_PROG_QUERY on the cgroup's fd itself, with the `bpf_attr` bindings aya-obj generates from the kernel headers.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use aya::maps::{HashMap, LpmTrie, Map, MapData};
use aya::programs::tc::{SchedClassifier, TcAttachType};
use aya_obj::generated::{
    bpf_attach_type, bpf_attr, bpf_attr__bindgen_ty_10, bpf_attr__bindgen_ty_10__bindgen_ty_1,
    bpf_attr__bindgen_ty_10__bindgen_ty_2, bpf_attr__bindgen_ty_9, bpf_btf_info, bpf_cmd, bpf_func_info, bpf_prog_info,
};

/// A BPF operation that failed, naming what it was applied to.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("listing loaded BPF programs (needs CAP_SYS_ADMIN)")]
    Programs(#[source] aya::programs::ProgramError),
    #[error("opening pinned map {path}")]
    OpenPin { path: PathBuf, source: aya::maps::MapError },
    #[error("reading pinned map {path}")]
    ReadMap { path: PathBuf, source: aya::maps::MapError },
    #[error("pinned map {path} has key size {key} and value size {value}; expected {want_key} and {want_value}")]
    Layout { path: PathBuf, key: u32, value: u32, want_key: u32, want_value: u32 },
    #[error("opening cgroup {path}")]
    OpenCgroup { path: PathBuf, source: std::io::Error },
    #[error("BPF_PROG_QUERY on cgroup {path}")]
    Query { path: PathBuf, source: std::io::Error },
}

/// A loaded program as the kernel lists it (names cut to 15 characters), with its function's full name from BTF.
#[derive(Debug, Clone)]
pub struct Prog {
    pub id: u32,
    pub kind: String,
    pub name: String,
    pub tag: String,
    /// The name of the program's function in its BTF (`func_info[0]`'s type), when the kernel's name may be cut
    /// (15 characters) and the BTF name extends it.
    pub full_name: Option<String>,
}

/// The kernel's program names hold at most this many characters (BPF_OBJ_NAME_LEN 16, with the NUL).
pub const KERNEL_NAME_LEN: usize = 15;
/// The largest program BTF read for a name.
pub const MAX_BTF: u32 = 16 << 20;

/// Lists every loaded BPF program.
pub fn loaded_programs() -> Result<Vec<Prog>, BpfError> {
    let mut out = Vec::new();
    for info in aya::programs::loaded_programs() {
        // A program can be unloaded between GET_NEXT_ID and GET_FD_BY_ID; skip those.
        let info = match info {
            Ok(info) => info,
            Err(aya::programs::ProgramError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                continue
            }
            Err(e) => return Err(BpfError::Programs(e)),
        };
        let name = info.name_as_str().unwrap_or("").to_string();
        // Only a name the kernel may have cut is looked up; a failed lookup keeps the kernel's name.
        let full_name = match (name.len() == KERNEL_NAME_LEN, info.btf_id()) {
            (true, Some(btf_id)) => info
                .fd()
                .ok()
                .and_then(|fd| func_btf(fd.as_fd(), btf_id).ok().flatten())
                .and_then(|(btf, type_id)| btf_func_name(&btf, type_id))
                .filter(|full| full.len() > name.len() && full.starts_with(&name)),
            _ => None,
        };
        out.push(Prog {
            id: info.id(),
            kind: prog_type_name(info.program_type() as u32),
            name,
            tag: format!("{:016x}", info.tag()),
            full_name,
        });
    }
    Ok(out)
}

/// BPF_OBJ_GET_INFO_BY_FD into `info`, a zeroed or partly filled `bpf_*_info` the kernel completes.
fn obj_info<T>(call: &'static str, fd: BorrowedFd<'_>, info: &mut T) -> Result<(), BtfCallError> {
    let mut attr = bpf_attr {
        info: bpf_attr__bindgen_ty_9 {
            bpf_fd: u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX),
            info_len: std::mem::size_of::<T>() as u32,
            info: info as *mut T as u64,
        },
    };
    let size = std::mem::size_of::<bpf_attr__bindgen_ty_9>() as u32;
    // SAFETY: the info member (no padding) is the prefix of union bpf_attr the kernel reads for
    // BPF_OBJ_GET_INFO_BY_FD; it writes at most info_len bytes to `info`, which is a valid, exclusively borrowed T
    // for the whole call, and any pointers the caller put in `info` point at buffers of the sizes it declared.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long, &mut attr as *mut bpf_attr, size)
    };
    if rc < 0 {
        return Err(BtfCallError { call, source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// A syscall of the BTF name lookup that failed.
#[derive(Debug, thiserror::Error)]
#[error("{call}")]
pub struct BtfCallError {
    call: &'static str,
    source: std::io::Error,
}

/// The BTF of the program behind `fd` (object `btf_id`) and the type id of its first function, or `None` when it
/// has no func_info. At most [`MAX_BTF`] bytes.
pub fn func_btf(fd: BorrowedFd<'_>, btf_id: u32) -> Result<Option<(Vec<u8>, u32)>, BtfCallError> {
    let mut first = bpf_func_info { insn_off: 0, type_id: 0 };
    // SAFETY: bpf_prog_info is plain integers (and bitfields of integers): all zeroes is a valid value.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    info.nr_func_info = 1;
    info.func_info_rec_size = std::mem::size_of::<bpf_func_info>() as u32;
    info.func_info = &mut first as *mut bpf_func_info as u64;
    obj_info("BPF_OBJ_GET_INFO_BY_FD (program func_info)", fd, &mut info)?;
    if info.nr_func_info == 0 || first.type_id == 0 {
        return Ok(None);
    }

    // SAFETY: the btf_id member of this union is a u32 like every other; the rest stays zero.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.__bindgen_anon_6.__bindgen_anon_1.btf_id = btf_id;
    let size = std::mem::size_of::<aya_obj::generated::bpf_attr__bindgen_ty_8>() as u32;
    // SAFETY: BPF_BTF_GET_FD_BY_ID reads the btf_id member of a fully initialised (zeroed) attr and returns a new
    // file descriptor, owned here from then on.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, bpf_cmd::BPF_BTF_GET_FD_BY_ID as libc::c_long, &mut attr as *mut bpf_attr, size)
    };
    if rc < 0 {
        return Err(BtfCallError { call: "BPF_BTF_GET_FD_BY_ID", source: std::io::Error::last_os_error() });
    }
    let raw = i32::try_from(rc)
        .map_err(|_| BtfCallError { call: "BPF_BTF_GET_FD_BY_ID", source: std::io::Error::other("bad fd") })?;
    // SAFETY: `raw` is a descriptor the kernel just returned to this process and nobody else owns.
    let btf_fd = unsafe { OwnedFd::from_raw_fd(raw) };

    // SAFETY: bpf_btf_info is plain integers: all zeroes is a valid value.
    let mut bi: bpf_btf_info = unsafe { std::mem::zeroed() };
    obj_info("BPF_OBJ_GET_INFO_BY_FD (BTF size)", btf_fd.as_fd(), &mut bi)?;
    let len = bi.btf_size;
    if len == 0 || len > MAX_BTF {
        return Ok(None);
    }
    let mut buf = vec![0u8; len as usize];
    // SAFETY: as above.
    let mut bi: bpf_btf_info = unsafe { std::mem::zeroed() };
    bi.btf = buf.as_mut_ptr() as u64;
    bi.btf_size = len;
    obj_info("BPF_OBJ_GET_INFO_BY_FD (BTF)", btf_fd.as_fd(), &mut bi)?;
    buf.truncate(bi.btf_size.min(len) as usize);
    Ok(Some((buf, first.type_id)))
}

/// The name of BTF type `type_id` when it is a function (BTF_KIND_FUNC), read from raw little-endian BTF (header,
/// type section, string section; include/uapi/linux/btf.h). Anything malformed or out of bounds is `None`.
pub fn btf_func_name(btf: &[u8], type_id: u32) -> Option<String> {
    let u32_at = |b: &[u8], off: usize| -> Option<u32> {
        b.get(off..off.checked_add(4)?).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes)
    };
    if btf.get(0..2)? != [0x9f, 0xeb] {
        return None;
    }
    let hdr_len = u32_at(btf, 4)? as usize;
    let (type_off, type_len) = (u32_at(btf, 8)? as usize, u32_at(btf, 12)? as usize);
    let (str_off, str_len) = (u32_at(btf, 16)? as usize, u32_at(btf, 20)? as usize);
    let types = btf.get(hdr_len.checked_add(type_off)?..hdr_len.checked_add(type_off)?.checked_add(type_len)?)?;
    let strings = btf.get(hdr_len.checked_add(str_off)?..hdr_len.checked_add(str_off)?.checked_add(str_len)?)?;
    let mut off = 0usize;
    let mut id = 1u32;
    while off < types.len() {
        let name_off = u32_at(types, off)? as usize;
        let info = u32_at(types, off + 4)?;
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        if id == type_id {
            if kind != 12 {
                return None;
            }
            let name = strings.get(name_off..)?;
            let end = name.iter().position(|&b| b == 0)?;
            return std::str::from_utf8(&name[..end]).ok().filter(|n| !n.is_empty()).map(str::to_string);
        }
        // The kind-specific data after the 12-byte common part.
        let extra = match kind {
            1 | 14 | 17 => 4,                         // INT, VAR, DECL_TAG
            3 => 12,                                  // ARRAY
            4 | 5 | 15 | 19 => vlen.checked_mul(12)?, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => vlen.checked_mul(8)?,           // ENUM, FUNC_PROTO
            2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
            _ => return None,
        };
        off = off.checked_add(12)?.checked_add(extra)?;
        id += 1;
    }
    None
}

fn prog_type_name(t: u32) -> String {
    match t {
        1 => "socket_filter".into(),
        2 => "kprobe".into(),
        3 => "sched_cls".into(),
        4 => "sched_act".into(),
        6 => "xdp".into(),
        8 => "cgroup_skb".into(),
        9 => "cgroup_sock".into(),
        18 => "cgroup_sock_addr".into(),
        other => format!("type_{other}"),
    }
}

/// (program id, program name) pairs.
pub type ProgList = Vec<(u32, String)>;

/// Names of programs attached by tcx to `interface` (ingress, egress), for kernels >= 6.6.
/// An interface or kernel without tcx yields empty lists.
pub fn tcx_programs(interface: &str) -> (ProgList, ProgList) {
    let query = |t| match SchedClassifier::query_tcx(interface, t) {
        Ok((_, progs)) => progs.iter().map(|p| (p.id(), p.name_as_str().unwrap_or("").to_string())).collect(),
        Err(_) => Vec::new(),
    };
    (query(TcAttachType::Ingress), query(TcAttachType::Egress))
}

/// Raw (key, value) pairs of a map.
pub type Entries<const K: usize, const V: usize> = Vec<([u8; K], [u8; V])>;

/// Reads every entry of a pinned hash map with fixed key and value sizes.
pub fn pinned_entries<const K: usize, const V: usize>(path: &Path) -> Result<Entries<K, V>, BpfError> {
    let data = MapData::from_pin(path).map_err(|source| BpfError::OpenPin { path: path.into(), source })?;
    let info = data.info().map_err(|source| BpfError::ReadMap { path: path.into(), source })?;
    let (key, value) = (info.key_size(), info.value_size());
    let want = (u32::try_from(K).unwrap_or(0), u32::try_from(V).unwrap_or(0));
    if (key, value) != want {
        return Err(BpfError::Layout { path: path.into(), key, value, want_key: want.0, want_value: want.1 });
    }
    let map = HashMap::<_, [u8; K], [u8; V]>::try_from(Map::HashMap(data))
        .map_err(|source| BpfError::ReadMap { path: path.into(), source })?;
    bounded(map.iter(), info.max_entries(), |kv| kv.0).map_err(|source| BpfError::ReadMap { path: path.into(), source })
}

/// Collects a map's entries, at most `max_entries` iterations and each key once: when a key is deleted while the
/// map is walked, the kernel's get_next_key starts again from the first key, which would repeat entries (and, with
/// a writer deleting steadily, never end). An entry deleted meanwhile is skipped, not an error.
fn bounded<T, K: std::hash::Hash + Eq>(
    items: impl Iterator<Item = Result<T, aya::maps::MapError>>,
    max_entries: u32,
    key: impl Fn(&T) -> K,
) -> Result<Vec<T>, aya::maps::MapError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for item in items.take(usize::try_from(max_entries).unwrap_or(usize::MAX)) {
        match item {
            Ok(kv) => {
                if seen.insert(key(&kv)) {
                    out.push(kv);
                }
            }
            Err(aya::maps::MapError::KeyNotFound) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Raw (prefix length, key data, value) triples of an LPM trie.
pub type LpmEntries<const K: usize, const V: usize> = Vec<(u32, [u8; K], [u8; V])>;

/// Reads every entry of a pinned LPM trie whose key is a `u32` prefix length followed by `K` bytes of data.
pub fn pinned_lpm_entries<const K: usize, const V: usize>(path: &Path) -> Result<LpmEntries<K, V>, BpfError> {
    let data = MapData::from_pin(path).map_err(|source| BpfError::OpenPin { path: path.into(), source })?;
    let info = data.info().map_err(|source| BpfError::ReadMap { path: path.into(), source })?;
    let (key, value) = (info.key_size(), info.value_size());
    let want = (u32::try_from(K + 4).unwrap_or(0), u32::try_from(V).unwrap_or(0));
    if (key, value) != want {
        return Err(BpfError::Layout { path: path.into(), key, value, want_key: want.0, want_value: want.1 });
    }
    let map = LpmTrie::<_, [u8; K], [u8; V]>::try_from(Map::LpmTrie(data))
        .map_err(|source| BpfError::ReadMap { path: path.into(), source })?;
    let items = map.iter().map(|item| item.map(|(k, v)| (k.prefix_len(), k.data(), v)));
    bounded(items, info.max_entries(), |e| (e.0, e.1)).map_err(|source| BpfError::ReadMap { path: path.into(), source })
}

/// The cgroup attach types socket load-balancing uses, with their kernel numbers.
pub const SOCK_ATTACH_TYPES: &[(u32, &str)] = &[
    (bpf_attach_type::BPF_CGROUP_INET4_CONNECT as u32, "connect4"),
    (bpf_attach_type::BPF_CGROUP_INET6_CONNECT as u32, "connect6"),
    (bpf_attach_type::BPF_CGROUP_UDP4_SENDMSG as u32, "sendmsg4"),
    (bpf_attach_type::BPF_CGROUP_UDP6_SENDMSG as u32, "sendmsg6"),
    (bpf_attach_type::BPF_CGROUP_UDP4_RECVMSG as u32, "recvmsg4"),
    (bpf_attach_type::BPF_CGROUP_UDP6_RECVMSG as u32, "recvmsg6"),
    (bpf_attach_type::BPF_CGROUP_INET4_GETPEERNAME as u32, "getpeername4"),
    (bpf_attach_type::BPF_CGROUP_INET6_GETPEERNAME as u32, "getpeername6"),
    (bpf_attach_type::BPF_CGROUP_INET4_POST_BIND as u32, "post_bind4"),
    (bpf_attach_type::BPF_CGROUP_INET6_POST_BIND as u32, "post_bind6"),
    (bpf_attach_type::BPF_CGROUP_INET4_BIND as u32, "bind4"),
    (bpf_attach_type::BPF_CGROUP_INET6_BIND as u32, "bind6"),
];

// The query member is its fields back to back (no padding bytes left uninitialised): 4 x u32, a u64, 2 x u32,
// then 4 x u64.
const _: () = assert!(std::mem::size_of::<bpf_attr__bindgen_ty_10>() == 4 * 4 + 8 + 2 * 4 + 4 * 8);

/// Ids of the programs attached directly to the cgroup at `path` for kernel attach type `attach_type`.
pub fn cgroup_attached(path: &Path, attach_type: u32) -> Result<Vec<u32>, BpfError> {
    let dir = std::fs::File::open(path).map_err(|source| BpfError::OpenCgroup { path: path.into(), source })?;
    let mut capacity = 64usize;
    // The kernel answers ENOSPC with the count it needs; ask again once with that much room.
    for _ in 0..2 {
        match query_once(&dir, path, attach_type, capacity)? {
            Ok(ids) => return Ok(ids),
            Err(needed) => capacity = needed.max(capacity * 2),
        }
    }
    Err(BpfError::Query { path: path.into(), source: std::io::Error::from_raw_os_error(libc::ENOSPC) })
}

/// One BPF_PROG_QUERY with room for `capacity` ids: the ids, or (ENOSPC) the number the kernel has.
fn query_once(
    dir: &std::fs::File,
    path: &Path,
    attach_type: u32,
    capacity: usize,
) -> Result<Result<Vec<u32>, usize>, BpfError> {
    let mut ids = vec![0u32; capacity];
    let query = bpf_attr__bindgen_ty_10 {
        __bindgen_anon_1: bpf_attr__bindgen_ty_10__bindgen_ty_1 {
            target_fd: u32::try_from(dir.as_raw_fd()).unwrap_or(u32::MAX),
        },
        attach_type,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        __bindgen_anon_2: bpf_attr__bindgen_ty_10__bindgen_ty_2 { prog_cnt: u32::try_from(ids.len()).unwrap_or(0) },
        _bitfield_align_1: [],
        _bitfield_1: bpf_attr__bindgen_ty_10::new_bitfield_1(),
        prog_attach_flags: 0,
        link_ids: 0,
        link_attach_flags: 0,
        revision: 0,
    };
    let mut attr = bpf_attr { query };
    // Only the query member is initialised (and it has no padding), so the kernel is given its size: it reads that
    // prefix of union bpf_attr and treats the rest as zero, as it does for any caller built against older headers.
    let size = std::mem::size_of::<bpf_attr__bindgen_ty_10>() as u32;
    // SAFETY: `attr` holds a fully initialised query member of `size` bytes, the prefix of union bpf_attr the
    // kernel reads for BPF_PROG_QUERY and the only part it writes back (attach_flags, prog_cnt, revision). Its
    // prog_ids points at `ids`, which has prog_cnt u32 slots and outlives the call. Reading prog_cnt afterwards is
    // reading an initialised u32 (both members of that union are u32s), before any other call can touch errno.
    let (rc, count, err) = unsafe {
        let rc =
            libc::syscall(libc::SYS_bpf, bpf_cmd::BPF_PROG_QUERY as libc::c_long, &mut attr as *mut bpf_attr, size);
        (rc, attr.query.__bindgen_anon_2.prog_cnt as usize, std::io::Error::last_os_error())
    };
    if rc < 0 {
        return match err.raw_os_error() {
            // EINVAL: the kernel does not know this attach type; nothing can be attached with it.
            Some(libc::EINVAL) => Ok(Ok(Vec::new())),
            Some(libc::ENOSPC) => Ok(Err(count)),
            _ => Err(BpfError::Query { path: path.into(), source: err }),
        };
    }
    ids.truncate(count.min(capacity));
    Ok(Ok(ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_is_named_once_with_the_kernels_error() {
        let io = std::io::Error::from_raw_os_error;
        let e = BpfError::OpenCgroup { path: "/sys/fs/cgroup".into(), source: io(libc::ENOENT) };
        assert_eq!(crate::sys::chain(&e), "opening cgroup /sys/fs/cgroup: No such file or directory (os error 2)");
        let e = BpfError::Query { path: "/sys/fs/cgroup".into(), source: io(libc::EPERM) };
        assert_eq!(
            crate::sys::chain(&e),
            "BPF_PROG_QUERY on cgroup /sys/fs/cgroup: Operation not permitted (os error 1)"
        );
        let e = BtfCallError { call: "BPF_OBJ_GET_INFO_BY_FD (BTF)", source: io(libc::EINVAL) };
        assert_eq!(crate::sys::chain(&e), "BPF_OBJ_GET_INFO_BY_FD (BTF): Invalid argument (os error 22)");
    }

    /// BTF as clang writes it for `int cil_sock4_connect(void)`: INT, FUNC_PROTO, FUNC.
    fn btf() -> Vec<u8> {
        let strings = b"\0int\0cil_sock4_connect\0";
        let mut types = Vec::new();
        for w in [1u32, 1 << 24, 4, 0x20, /* FUNC_PROTO */ 0, 13 << 24, 1, /* FUNC */ 5, 12 << 24, 2] {
            types.extend_from_slice(&w.to_le_bytes());
        }
        let mut out = vec![0x9f, 0xeb, 1, 0];
        for w in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&types);
        out.extend_from_slice(strings);
        out
    }

    #[test]
    fn a_function_name_is_read_from_btf() {
        let b = btf();
        assert_eq!(btf_func_name(&b, 3).as_deref(), Some("cil_sock4_connect"));
        assert_eq!(btf_func_name(&b, 1), None, "an INT is no function");
        assert_eq!(btf_func_name(&b, 4), None, "no such type");
        for cut in 0..b.len() {
            let _ = btf_func_name(&b[..cut], 3);
        }
        let mut bad = b.clone();
        bad[8 + 4..8 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(btf_func_name(&bad, 3), None, "a type section past the end");
    }

    /// A walk that the kernel restarts (a key deleted meanwhile) yields keys again: each is kept once, and a walk
    /// that would restart for ever stops after max_entries steps.
    #[test]
    fn a_restarted_walk_keeps_each_key_once_and_ends() {
        // Keys 1, 2, 3, then (key 2 deleted) from the first key again: 1, 3; a deleted entry read as not found.
        let walk = [Ok(1u8), Ok(2), Ok(3), Err(aya::maps::MapError::KeyNotFound), Ok(1), Ok(3)];
        assert_eq!(bounded(walk.into_iter(), 8, |k| *k).unwrap(), vec![1, 2, 3]);
        let endless = std::iter::repeat_with(|| Ok(7u8));
        assert_eq!(bounded(endless, 1000, |k| *k).unwrap(), vec![7]);
    }
}
