//! The thin layer between routewarden and the operating system; the only place with `unsafe` (each block with a
//! SAFETY comment) and subprocesses.
//!
//! `exec` runs every tool (deadline, size bound, process group); `xtables` reads legacy iptables with getsockopt;
//! `nfnetlink` dumps nftables names and generations; `events` subscribes to link and nftables changes; `bpf` queries
//! programs, pinned maps and attachments (aya plus raw `BPF_PROG_QUERY` and a bounded BTF reader for full names);
//! `host` reads host facts and bounded files; `process` this process's own stats; `activation` the descriptors
//! socket activation passes. Nothing here interprets what it reads; sources call these and hand bytes or plain
//! records to pure parsers.

pub mod activation;
pub mod bpf;
pub mod events;
pub mod exec;
pub mod host;
pub mod nfnetlink;
pub mod process;
pub mod xtables;

/// Wall-clock time as Unix seconds (0.0 if the clock is before 1970).
pub fn now_unix() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Wall-clock time as whole Unix seconds (0 if the clock is before 1970).
pub fn now_unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Hands freed memory back to the kernel: glibc keeps it in per-thread arenas otherwise, and the daemon's RSS
/// would sit at the peak of the largest collection.
pub fn release_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// An error and every source below it, `outer: inner: innermost`, with no repeat skipped (`model::error_chain`
/// is a layer up): the tests of this layer's errors read their whole chain with it.
#[cfg(test)]
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
