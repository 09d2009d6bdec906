//! routewarden's unprivileged integration tests, one test binary (modules below): they run the real binary
//! (`CARGO_BIN_EXE_routewarden`) and the library on any machine, without root. The privileged system tests
//! (namespaces, BPF, the daemon) are the `routewarden-system-tests` crate in `tests/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

mod certificates;
mod cli;
mod decisions;
mod fixtures;
mod packaging;
mod reference;
mod save_jumps;
mod status;
mod support;
mod xtables;
