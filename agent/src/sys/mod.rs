//! The thin layer between routewarden and the operating system: subprocesses, raw netlink and BPF syscalls.
//!
//! Nothing here interprets what it reads; sources call these and hand bytes or plain records to pure parsers.

pub mod bpf;
pub mod events;
pub mod exec;
pub mod host;
pub mod nfnetlink;
