//! Sources: one module per thing routewarden reads on the node, each a tiny `fetch` (I/O) plus a pure `parse`.
//!
//! `collect` runs them all and fills a [`Snapshot`]; a source that fails marks itself failed and the others go on,
//! and `failure` turns its typed error chain into the closed `Failure` kind the snapshot carries. `host_view`
//! checks that a source sees the host, not a container; `procs::origin` judges whether a process named like an
//! agent came from where that agent runs. `kubelet_api` is no snapshot source: it reads the kubelet's kubeconfig
//! for the API server the journal rules' `{apiserver}` stands for.

pub mod bpf;
pub mod certs;
pub mod cilium_agent;
pub mod cni;
pub mod failure;
pub mod host_view;
pub mod iptables;
pub mod ipvs;
pub mod kube_proxy_api;
pub mod kubelet_api;
pub mod links;
pub mod mounts;
pub mod nftables;
pub mod procs;
pub mod routes;
pub mod sockets;

use crate::config::Config;
use crate::model::{error_chain, Snapshot, Source, SourceId, SCHEMA_VERSION};

/// Reads every enabled source once.
pub fn collect(config: &Config) -> Snapshot {
    collect_with(config, None)
}

/// Like [`collect`], but answers nftables from `nft`'s last read while the ruleset's generation has not moved
/// (the daemon's resyncs and `wait`'s polls; `check` always reads).
pub fn collect_reusing(config: &Config, nft: &mut nftables::Reuse) -> Snapshot {
    collect_with(config, Some(nft))
}

fn collect_with(config: &Config, nft: Option<&mut nftables::Reuse>) -> Snapshot {
    use host_view::{guarded, network, root};
    fn run<T, E: std::error::Error + 'static>(
        s: &Config,
        id: SourceId,
        f: impl FnOnce() -> Result<T, host_view::Guarded<E>>,
    ) -> Source<T> {
        if s.enabled(id) {
            timed(f)
        } else {
            Source::disabled()
        }
    }
    Snapshot {
        schema_version: SCHEMA_VERSION,
        node: crate::sys::host::hostname(),
        collected_at: crate::model::Timestamp::from_unix(crate::sys::now_unix_secs()),
        iptables_legacy: run(config, SourceId::IptablesLegacy, || guarded(network(config), || iptables::fetch(config))),
        nftables: run(config, SourceId::Nftables, || {
            guarded(network(config), || match nft {
                Some(reuse) => reuse.fetch(),
                None => nftables::fetch(),
            })
        }),
        links: run(config, SourceId::Links, || guarded(network(config), links::fetch)),
        ipvs: run(config, SourceId::Ipvs, || guarded(network(config), || ipvs::fetch(config))),
        bpf: run(config, SourceId::Bpf, || guarded(host_view::bpffs(config), || bpf::fetch(config))),
        // Processes also read their listening sockets from /proc/net, which answers for the reader's netns.
        processes: run(config, SourceId::Processes, || guarded(network(config), || procs::fetch(config))),
        certificates: run(config, SourceId::Certificates, || guarded(root(config), || certs::fetch(config))),
        mounts: run(config, SourceId::Mounts, || guarded(root(config), || mounts::fetch(config))),
        cni: run(config, SourceId::Cni, || guarded(root(config), || cni::fetch(config))),
        kube_proxy_api: run(config, SourceId::KubeProxyApi, || {
            guarded(network(config), || kube_proxy_api::fetch(config))
        }),
        cilium_agent: run(config, SourceId::CiliumAgent, || guarded(root(config), || cilium_agent::fetch(config))),
        routes: run(config, SourceId::Routes, || guarded(network(config), || routes::fetch(config))),
        raw: Default::default(),
    }
}

/// The raw dumps `snapshot --full` adds: every iptables backend and family that has tables, and kube-proxy's
/// nftables tables by name (never the whole ruleset, which takes minutes on a large node).
pub fn raw_dumps(config: &Config, snap: &Snapshot) -> std::collections::BTreeMap<String, String> {
    use crate::sys::exec;
    let mut out = std::collections::BTreeMap::new();
    let b = &config.binaries;
    let mut run = |name: String, program: &std::path::Path, args: &[&str]| {
        let text = match exec::run(program, args, config.command_timeout()) {
            Ok(o) => String::from_utf8_lossy(&o).into_owned(),
            Err(e) => format!("error: {}", error_chain(&e)),
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
        if !crate::model::nftables::Chains::Nft(n, "ip").is_empty() {
            run("iptables-nft-save".into(), &b.iptables_nft_save, &[]);
        }
        if !crate::model::nftables::Chains::Nft(n, "ip6").is_empty() {
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

/// Runs one fetch, timing it and turning its error (with its whole chain and its [`failure::classify`] kind) into a
/// failed slot.
pub fn timed<T, E: std::error::Error + 'static>(f: impl FnOnce() -> Result<T, host_view::Guarded<E>>) -> Source<T> {
    let start = std::time::Instant::now();
    let result = f();
    let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(data) => Source::ok(data, ms),
        Err(e) => Source::failed(error_chain(e.error()), failure::classify(e.error()), ms),
    }
}
