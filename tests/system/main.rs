//! routewarden's system tests, one test binary: the real binary (from `ROUTEWARDEN_BIN`) in real worlds built by
//! the harness (`routewarden_system_tests`). They need root; without it they skip with a reason, and under
//! CI=true a skip fails. Run them with `cargo xtask test`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod activation;
mod daemon;
mod deploy;
mod detector;
mod fixtures;
mod fleet;
mod gate;
mod image;
mod journal;
mod kubernetes;
mod legacy;
mod neighbours;
mod nftables;
mod real_kube_proxy;
mod status;
mod taint;
