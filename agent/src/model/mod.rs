//! The model: plain data that one collection holds (the snapshot, one slot per source, and every source's
//! state types), plus the small closed vocabularies every layer shares (source ids, severities).
//!
//! Sources fill it, rules read it, and `routewarden snapshot` writes it as JSON so that
//! `routewarden check --snapshot FILE` can analyse it anywhere. Nothing here does I/O or imports another module
//! of the crate.

pub mod bpf;
pub mod certs;
pub mod cilium_agent;
pub mod cni;
pub mod iptables;
pub mod ipvs;
pub mod journal;
pub mod kube_proxy_api;
pub mod kubernetes;
pub mod links;
pub mod mounts;
pub mod nftables;
pub mod procs;
pub mod routes;
pub mod timestamp;

use serde::{Deserialize, Serialize};

use bpf::BpfState;
use certs::CertState;
use cilium_agent::CiliumAgent;
use cni::CniState;
use iptables::IptablesState;
use ipvs::IpvsState;
use kube_proxy_api::KubeProxyApi;
use links::LinksState;
use mounts::MountState;
use nftables::NftablesState;
use procs::ProcessState;
use routes::RoutesState;
pub use timestamp::Timestamp;

/// Version of the snapshot and report JSON layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 2;

/// Everything one collection saw on the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema_version: u32,
    pub node: String,
    /// The time collection started (RFC 3339 text in JSON; a snapshot with another text fails to load).
    pub collected_at: Timestamp,
    pub iptables_legacy: Source<IptablesState>,
    pub nftables: Source<NftablesState>,
    pub links: Source<LinksState>,
    pub ipvs: Source<IpvsState>,
    pub bpf: Source<BpfState>,
    pub processes: Source<ProcessState>,
    #[serde(default)]
    pub certificates: Source<CertState>,
    #[serde(default)]
    pub mounts: Source<MountState>,
    #[serde(default)]
    pub cni: Source<CniState>,
    #[serde(default)]
    pub kube_proxy_api: Source<KubeProxyApi>,
    #[serde(default)]
    pub cilium_agent: Source<CiliumAgent>,
    /// Routes and permanent neighbours (schema 2).
    #[serde(default)]
    pub routes: Source<RoutesState>,
    /// `snapshot --full` only: the raw rule dumps (command -> output or error), for people, not for the rules.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub raw: std::collections::BTreeMap<String, String>,
}

impl Snapshot {
    /// The chains of every iptables backend and family the snapshot read, borrowed, legacy first.
    pub fn iptables_backends(&self) -> Vec<(Backend, Family, nftables::Chains<'_>)> {
        use nftables::Chains;
        let mut out = Vec::new();
        if let Some(ipt) = self.iptables_legacy.get() {
            out.push((Backend::Legacy, Family::Ipv4, Chains::Ruleset(&ipt.ipv4)));
            out.push((Backend::Legacy, Family::Ipv6, Chains::Ruleset(&ipt.ipv6)));
        }
        if let Some(nft) = self.nftables.get() {
            out.push((Backend::Nft, Family::Ipv4, Chains::Nft(nft, Family::Ipv4.nft_family())));
            out.push((Backend::Nft, Family::Ipv6, Chains::Nft(nft, Family::Ipv6.nft_family())));
        }
        out
    }

    /// Each collected source with its outcome, in a fixed order.
    pub fn statuses(&self) -> Vec<SourceRow<'_>> {
        fn row<T>(id: SourceId, s: &Source<T>) -> SourceRow<'_> {
            SourceRow {
                id,
                status: s.status,
                error: s.error.as_deref(),
                failure: s.failure.as_ref(),
                duration_ms: s.duration_ms,
            }
        }
        vec![
            row(SourceId::IptablesLegacy, &self.iptables_legacy),
            row(SourceId::Nftables, &self.nftables),
            row(SourceId::Links, &self.links),
            row(SourceId::Ipvs, &self.ipvs),
            row(SourceId::Bpf, &self.bpf),
            row(SourceId::Processes, &self.processes),
            row(SourceId::Certificates, &self.certificates),
            row(SourceId::Mounts, &self.mounts),
            row(SourceId::Cni, &self.cni),
            row(SourceId::KubeProxyApi, &self.kube_proxy_api),
            row(SourceId::CiliumAgent, &self.cilium_agent),
            row(SourceId::Routes, &self.routes),
        ]
    }
}

/// One source's outcome in a snapshot, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SourceRow<'a> {
    pub id: SourceId,
    pub status: SourceStatus,
    pub error: Option<&'a str>,
    pub failure: Option<&'a Failure>,
    pub duration_ms: u64,
}

/// Every source routewarden reads, by the name used in JSON, metrics labels, `disabled_sources` and text.
/// Declared in the alphabetical order of the names, so maps keyed by it list sources as they always did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceId {
    Bpf,
    Certificates,
    CiliumAgent,
    Cni,
    IptablesLegacy,
    Ipvs,
    /// The daemon's journal follower (not part of a snapshot).
    Journal,
    KubeProxyApi,
    /// The daemon's Kubernetes exporter (`[kubernetes]`; not part of a snapshot).
    Kubernetes,
    Links,
    Mounts,
    Nftables,
    Processes,
    Routes,
}

impl SourceId {
    /// The sources one collection reads (every id but the daemon's journal).
    pub const COLLECTED: [SourceId; 12] = [
        SourceId::IptablesLegacy,
        SourceId::Nftables,
        SourceId::Links,
        SourceId::Ipvs,
        SourceId::Bpf,
        SourceId::Processes,
        SourceId::Certificates,
        SourceId::Mounts,
        SourceId::Cni,
        SourceId::KubeProxyApi,
        SourceId::CiliumAgent,
        SourceId::Routes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceId::IptablesLegacy => "iptables-legacy",
            SourceId::Nftables => "nftables",
            SourceId::Links => "links",
            SourceId::Ipvs => "ipvs",
            SourceId::Bpf => "bpf",
            SourceId::Processes => "processes",
            SourceId::Certificates => "certificates",
            SourceId::Mounts => "mounts",
            SourceId::Cni => "cni",
            SourceId::KubeProxyApi => "kube-proxy-api",
            SourceId::CiliumAgent => "cilium-agent",
            SourceId::Routes => "routes",
            SourceId::Journal => "journal",
            SourceId::Kubernetes => "kubernetes",
        }
    }

    /// The id named `name`, if any.
    pub fn from_name(name: &str) -> Option<SourceId> {
        Self::COLLECTED.into_iter().chain([SourceId::Journal, SourceId::Kubernetes]).find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for SourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// The name used in JSON and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Outcome of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceStatus {
    Ok,
    Failed,
    Disabled,
}

/// Why a source failed, decided where the error happened (`sources::failure` reads the typed error chain), so the
/// remedy can follow the actual error. Serialised as `{"kind": "missing-tool", "binary": "/usr/sbin/nft"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Failure {
    /// The kernel or a file refused routewarden (EPERM/EACCES): it lacks root or a capability.
    PermissionDenied,
    /// A program routewarden runs is not installed at its configured path.
    MissingTool { binary: String },
    /// What was read is larger than its bound; `key` is the configuration key that raises it, when one does.
    OverSizeBound {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// The read did not finish before its deadline; `key` is the configuration key that sets it, when one does.
    TimedOut {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// A file or socket the source reads does not exist.
    NotFound,
    /// What was read could not be decoded (a bug in routewarden, or a format it does not know yet).
    Parse,
    /// In a container: the host's root, network namespace or bpffs is not visible (a mount or setting is missing).
    HostViewMissing,
    /// Anything else; the error text says what.
    Other,
}

/// One source's slot: its status, its error when it failed, and its data when it succeeded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source<T> {
    pub status: SourceStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it failed (absent in snapshots older than the field: read as `other`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

/// A slot missing from an older snapshot file reads as disabled.
impl<T> Default for Source<T> {
    fn default() -> Self {
        Source::disabled()
    }
}

impl<T> Source<T> {
    pub fn ok(data: T, duration_ms: u64) -> Self {
        Source { status: SourceStatus::Ok, error: None, failure: None, duration_ms, data: Some(data) }
    }

    pub fn failed(error: String, failure: Failure, duration_ms: u64) -> Self {
        Source { status: SourceStatus::Failed, error: Some(error), failure: Some(failure), duration_ms, data: None }
    }

    pub fn disabled() -> Self {
        Source { status: SourceStatus::Disabled, error: None, failure: None, duration_ms: 0, data: None }
    }

    /// The data, when the source succeeded. `None` means "unknown", never "absent".
    pub fn get(&self) -> Option<&T> {
        self.data.as_ref()
    }
}

/// An iptables backend: the kernel's x_tables (`iptables-legacy`) or nf_tables through `iptables-nft`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    Legacy,
    Nft,
}

impl Backend {
    /// The name in evidence, the report (`dataplane.kube_proxy.backend`) and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Nft => "nft",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An address family of iptables (`iptables` and `ip6tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    /// The nftables family iptables-nft keeps this family's tables in.
    pub fn nft_family(self) -> &'static str {
        match self {
            Family::Ipv4 => "ip",
            Family::Ipv6 => "ip6",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Formats an error and its sources as `outer: inner: innermost`.
///
/// Each message says only its own context and leaves its cause to `source()` (aya's style; the tidy test
/// `sources_are_not_interpolated_in_error_messages` holds it). A cause the text so far already ends with is not
/// repeated: ours never need this, but foreign errors do (kube's `ServiceError: {0}` prints its source and also
/// returns it).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// [`error_chain`] for tests of errors in the style it expects: every source once, so the chain with no repeat
/// skipped is the same text; panics when a message repeats its source.
#[cfg(test)]
pub(crate) fn strict_chain(e: &dyn std::error::Error) -> String {
    let mut plain = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        plain.push_str(": ");
        plain.push_str(&s.to_string());
        cur = s.source();
    }
    assert_eq!(plain, error_chain(e), "a message repeats its source");
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}")]
    struct Outer {
        path: &'static str,
        source: Middle,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("decoding entry 3")]
    struct Middle(#[source] std::io::Error);

    /// The old style: the message prints the cause that `source()` also returns.
    #[derive(Debug, thiserror::Error)]
    #[error("opening {path}: {source}")]
    struct Repeating {
        path: &'static str,
        source: std::io::Error,
    }

    #[test]
    fn the_chain_prints_each_cause_once() {
        let e = Outer { path: "/x", source: Middle(std::io::Error::from_raw_os_error(libc::EIO)) };
        assert_eq!(strict_chain(&e), "reading /x: decoding entry 3: Input/output error (os error 5)");
        let old = Repeating { path: "/y", source: std::io::Error::from_raw_os_error(libc::EACCES) };
        assert_eq!(error_chain(&old), "opening /y: Permission denied (os error 13)");
    }

    #[test]
    fn source_ids_serialise_as_their_names() {
        for id in SourceId::COLLECTED.into_iter().chain([SourceId::Journal, SourceId::Kubernetes]) {
            assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{}\"", id.as_str()));
            assert_eq!(SourceId::from_name(id.as_str()), Some(id));
        }
        assert_eq!(SourceId::from_name("ebpf"), None);
        let mut names: Vec<&str> = SourceId::COLLECTED
            .into_iter()
            .chain([SourceId::Journal, SourceId::Kubernetes])
            .map(SourceId::as_str)
            .collect();
        let mut sorted_ids: Vec<SourceId> =
            SourceId::COLLECTED.into_iter().chain([SourceId::Journal, SourceId::Kubernetes]).collect();
        sorted_ids.sort();
        names.sort();
        assert_eq!(sorted_ids.into_iter().map(SourceId::as_str).collect::<Vec<_>>(), names, "declaration order");
    }

    /// A snapshot with every source disabled, collected at `at` (JSON text).
    fn snapshot_at(at: &str) -> String {
        format!(
            r#"{{"schema_version":2,"node":"n","collected_at":{at},"iptables_legacy":{{"status":"disabled"}},
            "nftables":{{"status":"disabled"}},"links":{{"status":"disabled"}},"ipvs":{{"status":"disabled"}},
            "bpf":{{"status":"disabled"}},"processes":{{"status":"disabled"}}}}"#
        )
    }

    #[test]
    fn every_recorded_snapshot_loads_and_writes_its_collection_time_back_unchanged() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/snapshots");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
            let snap: Snapshot = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let again = serde_json::to_value(&snap).unwrap();
            assert_eq!(again["collected_at"], raw["collected_at"], "{}", path.display());
            seen += 1;
        }
        assert!(seen > 10, "{seen} snapshots in {dir}");
    }

    #[test]
    fn a_snapshot_with_a_malformed_collection_time_fails_to_load_naming_it() {
        let ok: Snapshot = serde_json::from_str(&snapshot_at(r#""2026-01-01T00:00:00Z""#)).unwrap();
        assert_eq!(ok.collected_at.unix(), 1_767_225_600);
        for bad in [r#""t""#, r#""2026-01-01 00:00:00""#, "1767225600", "null"] {
            let e = serde_json::from_str::<Snapshot>(&snapshot_at(bad)).map(|s| s.collected_at).unwrap_err();
            let e = e.to_string();
            assert!(e.contains(bad.trim_matches('"')) || e.contains("expected a string"), "{bad}: {e}");
        }
        let e = serde_json::from_str::<Snapshot>(&snapshot_at(r#""t""#)).unwrap_err().to_string();
        assert!(
            e.starts_with(r#""t" is not an RFC 3339 time in UTC (ending in Z) such as 2026-01-01T00:00:00Z"#),
            "{e}"
        );
    }
}
