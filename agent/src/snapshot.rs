//! The snapshot: plain data holding the raw inputs of one collection, one slot per source.
//!
//! Sources fill it, rules read it, and `routewarden snapshot` writes it as JSON so that
//! `routewarden check --snapshot FILE` can analyse it anywhere.

use serde::{Deserialize, Serialize};

use crate::sources::{bpf::BpfState, iptables::IptablesState, ipvs::IpvsState, links::LinksState};
use crate::sources::{certs::CertState, cni::CniState, kube_proxy_api::KubeProxyApi, mounts::MountState};
use crate::sources::{nftables::NftablesState, procs::ProcessState};

/// Version of the snapshot and report JSON layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one collection saw on the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema_version: u32,
    pub node: String,
    /// RFC 3339 time at which collection started.
    pub collected_at: String,
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
    pub cilium_agent: Source<crate::sources::cilium_agent::CiliumAgent>,
    /// `snapshot --full` only: the raw rule dumps (command -> output or error), for people, not for the rules.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub raw: std::collections::BTreeMap<String, String>,
}

impl Snapshot {
    /// Each source's name with its outcome, in a fixed order.
    pub fn statuses(&self) -> Vec<(&'static str, SourceStatus, Option<&str>, u64)> {
        fn row<'a, T>(name: &'static str, s: &'a Source<T>) -> (&'static str, SourceStatus, Option<&'a str>, u64) {
            (name, s.status, s.error.as_deref(), s.duration_ms)
        }
        vec![
            row("iptables-legacy", &self.iptables_legacy),
            row("nftables", &self.nftables),
            row("links", &self.links),
            row("ipvs", &self.ipvs),
            row("bpf", &self.bpf),
            row("processes", &self.processes),
            row("certificates", &self.certificates),
            row("mounts", &self.mounts),
            row("cni", &self.cni),
            row("kube-proxy-api", &self.kube_proxy_api),
            row("cilium-agent", &self.cilium_agent),
        ]
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

/// One source's slot: its status, its error when it failed, and its data when it succeeded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source<T> {
    pub status: SourceStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
        Source { status: SourceStatus::Ok, error: None, duration_ms, data: Some(data) }
    }

    pub fn failed(error: String, duration_ms: u64) -> Self {
        Source { status: SourceStatus::Failed, error: Some(error), duration_ms, data: None }
    }

    pub fn disabled() -> Self {
        Source { status: SourceStatus::Disabled, error: None, duration_ms: 0, data: None }
    }

    /// The data, when the source succeeded. `None` means "unknown", never "absent".
    pub fn get(&self) -> Option<&T> {
        self.data.as_ref()
    }
}

/// Runs one fetch, timing it and turning its error (with its whole chain) into a failed slot.
pub fn timed<T, E: std::error::Error>(f: impl FnOnce() -> Result<T, E>) -> Source<T> {
    let start = std::time::Instant::now();
    let result = f();
    let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(data) => Source::ok(data, ms),
        Err(e) => Source::failed(error_chain(&e), ms),
    }
}

/// Formats an error and its sources as `outer: inner: innermost`.
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
