//! Sources: one module per thing routewarden reads on the node, each a tiny `fetch` (I/O) plus a pure `parse`.
//!
//! `collect` runs them all and fills a [`Snapshot`]; a source that fails marks itself failed and the others go on.

pub mod bpf;
pub mod certs;
pub mod cilium_agent;
pub mod cni;
pub mod iptables;
pub mod ipvs;
pub mod kube_proxy_api;
pub mod links;
pub mod mounts;
pub mod nftables;
pub mod procs;

use crate::config::Settings;
use crate::snapshot::{timed, Snapshot, Source, SCHEMA_VERSION};

/// Reads every enabled source once.
pub fn collect(settings: &Settings) -> Snapshot {
    fn run<T, E: std::error::Error>(s: &Settings, name: &str, f: impl FnOnce() -> Result<T, E>) -> Source<T> {
        if s.enabled(name) {
            timed(f)
        } else {
            Source::disabled()
        }
    }
    Snapshot {
        schema_version: SCHEMA_VERSION,
        node: node_name(),
        collected_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        iptables_legacy: run(settings, "iptables-legacy", || iptables::fetch(settings)),
        nftables: run(settings, "nftables", nftables::fetch),
        links: run(settings, "links", links::fetch),
        ipvs: run(settings, "ipvs", || ipvs::fetch(settings)),
        bpf: run(settings, "bpf", || bpf::fetch(settings)),
        processes: run(settings, "processes", || procs::fetch(settings)),
        certificates: run(settings, "certificates", || certs::fetch(settings)),
        mounts: run(settings, "mounts", || mounts::fetch(settings)),
        cni: run(settings, "cni", || cni::fetch(settings)),
        kube_proxy_api: run(settings, "kube-proxy-api", || kube_proxy_api::fetch(settings)),
        cilium_agent: run(settings, "cilium-agent", || cilium_agent::fetch(settings)),
        raw: Default::default(),
    }
}

/// The raw dumps `snapshot --full` adds: every iptables backend and family that has tables, and kube-proxy's
/// nftables tables by name (never the whole ruleset, which takes minutes on a large node).
pub fn raw_dumps(settings: &Settings, snap: &Snapshot) -> std::collections::BTreeMap<String, String> {
    use crate::sys::exec;
    let mut out = std::collections::BTreeMap::new();
    let b = &settings.binaries;
    let mut run = |name: String, program: &std::path::Path, args: &[&str]| {
        let text = match exec::run(program, args, settings.command_timeout()) {
            Ok(o) => String::from_utf8_lossy(&o).into_owned(),
            Err(e) => format!("error: {}", crate::snapshot::error_chain(&e)),
        };
        out.insert(name, text);
    };
    if let Some(l) = snap.iptables_legacy.get() {
        if !l.ipv4.tables.is_empty() {
            run("iptables-legacy-save".into(), &b.iptables_legacy_save, &[]);
        }
        if !l.ipv6.tables.is_empty() {
            run("ip6tables-legacy-save".into(), &b.ip6tables_legacy_save, &[]);
        }
    }
    if let Some(n) = snap.nftables.get() {
        if !n.iptables_nft("ip").tables.is_empty() {
            run("iptables-nft-save".into(), &b.iptables_nft_save, &[]);
        }
        if !n.iptables_nft("ip6").tables.is_empty() {
            run("ip6tables-nft-save".into(), &b.ip6tables_nft_save, &[]);
        }
        for family in ["ip", "ip6"] {
            if n.table(family, "kube-proxy").is_some() {
                run(
                    format!("nft -j list table {family} kube-proxy"),
                    &b.nft,
                    &["-j", "list", "table", family, "kube-proxy"],
                );
            }
        }
    }
    out
}

/// The node's host name (the Kubernetes node name on almost every distribution).
pub fn node_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its whole length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
