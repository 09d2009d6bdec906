//! The report: what routewarden concluded about one snapshot. Its JSON form is the contract described in
//! docs/report.md (with its schema history).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::model::Severity;
use crate::model::{SourceId, SourceStatus, Timestamp};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub node: String,
    /// When the report was made (RFC 3339 text in JSON, as it always was).
    pub generated_at: Timestamp,
    pub sources: BTreeMap<SourceId, SourceReport>,
    pub dataplane: Dataplane,
    pub findings: Vec<Finding>,
    pub verdict: Verdict,
    /// Certificates found, soonest expiry first.
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    /// Certificate files (or kubeconfig fields) that could not be read or parsed.
    #[serde(default)]
    pub certificate_read_errors: u64,
    /// The node gate and the taint that follows it (the daemon's reports only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_gate: Option<NodeGateReport>,
    /// What only the running daemon knows: its counters and the state of its parts (absent from `check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonState>,
}

/// The daemon's counters since it started, and those of its journal follower and Kubernetes exporter: what
/// `/metrics` shows beside the dataplane.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonState {
    /// Collections since the start.
    pub collections: u64,
    /// kube-proxy chains added or removed between collections since the start.
    pub rule_changes: u64,
    /// Unix time of the last collection.
    pub last_collection_unix: f64,
    /// Unix time this report was assembled (a journal match re-renders without collecting): when the sources up
    /// were last seen up.
    pub rendered_unix: f64,
    /// The journal follower's counters (absent while it does not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalCounters>,
    /// The Kubernetes exporter's state (absent without `[kubernetes] enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<crate::model::kubernetes::ExporterStatus>,
    /// The network metrics listener's basic auth (absent without `basic_auth_users`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_auth: Option<AuthCounters>,
}

/// What the network metrics listener's basic auth did with requests since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCounters {
    /// Requests let through (remembered credentials and verified ones).
    pub accepted: u64,
    /// Requests refused: no, malformed or wrong credentials.
    pub refused: u64,
    /// Requests refused at once (429) because the password verifiers and their queue were full.
    pub busy: u64,
    /// Requests refused at once (429) because their client had used up its failed attempts.
    pub rate_limited: u64,
    /// The most bcrypt verifications that ran at once.
    pub verifications_peak: u64,
    /// Clients (addresses; IPv6 by /64) refused for failed attempts now.
    pub limited_clients: u64,
}

/// The journal follower's totals since the start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalCounters {
    /// Matches per rule.
    pub matches: BTreeMap<String, u64>,
    /// Entries read per unit.
    pub lines: BTreeMap<String, u64>,
    /// Seconds between the newest entry read and the clock.
    pub lag_seconds: f64,
    /// Lines skipped: not journal entries, and longer than the line bound.
    pub not_entries: u64,
    pub overlong_lines: u64,
}

/// What `scan-journal` found in a saved journal (its JSON output).
#[derive(Debug, Serialize)]
pub struct JournalScan {
    /// The API server endpoint the rules' `{apiserver}` stood for, and where it came from.
    pub api_server: String,
    pub entries: u64,
    /// Lines that were not journal entries (reported, not fatal).
    pub bad_lines: u64,
    /// Lines longer than [`MAX_LINE`](crate::model::journal::MAX_LINE), skipped unread (reported, not fatal).
    #[serde(skip_serializing_if = "is_zero")]
    pub overlong_lines: u64,
    pub matches: Vec<crate::model::journal::Match>,
    pub counts: BTreeMap<String, u64>,
    /// Findings active at the newest entry's time.
    pub findings: Vec<Finding>,
    /// Every episode of every finding over the journal's span, in time order.
    pub episodes: Vec<crate::model::journal::Episode>,
    /// Episodes beyond the engine's bound, left out (oldest first).
    #[serde(skip_serializing_if = "is_zero")]
    pub episodes_dropped: u64,
    /// Journal files journalctl said it ignores, and why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ignored_files: crate::model::journal::IgnoredFiles,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The node gate (`[gate] requirements`, else `no-conflict` and `service-proxy`) as the daemon last checked it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeGateReport {
    pub state: GateState,
    /// The requirements that do not hold (unmet) or cannot be told (unknown), each with what was seen.
    #[serde(default)]
    pub why: Vec<String>,
    /// With `[kubernetes] taint`: "present", "absent" or "unknown" (the Node not read yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateState {
    Met,
    Unmet,
    Unknown,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Certificate {
    pub path: String,
    pub location: String,
    pub subject: String,
    pub issuer: String,
    /// Colon-separated hex; two certificates with one subject (a CA bundle during rotation) differ here.
    #[serde(default)]
    pub serial: String,
    /// Unix seconds.
    pub not_after: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceReport {
    pub status: SourceStatus,
    pub error: Option<String>,
    /// Why a collected source failed (`permission-denied`, `missing-tool`, ...), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<crate::model::Failure>,
    pub duration_ms: u64,
    /// When the source last succeeded (RFC 3339), for sources that run beside the collections (`kubernetes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<String>,
    /// Something the source did differently and the reader should know (the journal's saved cursor could not be
    /// used, so reading started from the look-back window); the source is still ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Dataplane {
    pub kube_proxy: KubeProxy,
    pub cilium: Cilium,
    /// The CNI configuration the runtime uses; null when none was found or it could not be read.
    pub cni: Option<Cni>,
    /// Every Service proxy found on the node (schema 2), in [`ProxyKind`] order.
    #[serde(default)]
    pub proxies: Vec<ServiceProxy>,
    /// Pairs of proxies that balance the same traffic (each a `service-routing.conflict`), schema 2.
    #[serde(default)]
    pub conflicts: Vec<ProxyPair>,
}

/// A Service proxy routewarden knows, by the name used in JSON, metrics labels and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyKind {
    KubeProxy,
    Cilium,
    CalicoEbpf,
    KubeRouter,
    Antrea,
    OvnKubernetes,
    /// LoxiLB's eBPF datapath (docs/DATAPLANE-FACTS.md section 11.1).
    Loxilb,
}

impl ProxyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyKind::KubeProxy => "kube-proxy",
            ProxyKind::Cilium => "cilium",
            ProxyKind::CalicoEbpf => "calico-ebpf",
            ProxyKind::KubeRouter => "kube-router",
            ProxyKind::Antrea => "antrea",
            ProxyKind::OvnKubernetes => "ovn-kubernetes",
            ProxyKind::Loxilb => "loxilb",
        }
    }
}

/// How a proxy balances Services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceProxyMode {
    /// kube-proxy's modes.
    Iptables,
    Nftables,
    Ipvs,
    /// The mode could not be told: a source it needs failed (kube-proxy's rules, Antrea's routes).
    Unknown,
    /// Cilium with kube-proxy replacement (socket-LB, BPF NodePort or XDP).
    KubeProxyReplacement,
    /// Cilium without kube-proxy replacement: ClusterIP from pods only.
    PodClusterIp,
    /// Calico's eBPF dataplane, LoxiLB's.
    Ebpf,
    /// Antrea with `proxyAll`.
    ProxyAll,
    /// AntreaProxy without `proxyAll`: ClusterIP from pods only, in OVS.
    AntreaProxy,
    /// OVN-Kubernetes' load balancers in OVN.
    Ovn,
    /// kube-proxy runs, and every rules source was read, but its rules are not (or no longer) there.
    NoRules,
}

impl ServiceProxyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceProxyMode::Iptables => "iptables",
            ServiceProxyMode::Nftables => "nftables",
            ServiceProxyMode::Ipvs => "ipvs",
            ServiceProxyMode::Unknown => "unknown",
            ServiceProxyMode::KubeProxyReplacement => "kube-proxy-replacement",
            ServiceProxyMode::PodClusterIp => "pod-cluster-ip",
            ServiceProxyMode::Ebpf => "ebpf",
            ServiceProxyMode::ProxyAll => "proxy-all",
            ServiceProxyMode::AntreaProxy => "antrea-proxy",
            ServiceProxyMode::Ovn => "ovn",
            ServiceProxyMode::NoRules => "no-rules",
        }
    }
}

/// Which Service traffic a proxy balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Traffic {
    /// ClusterIP traffic from pods.
    ClusterIpFromPods,
    /// ClusterIP traffic from the host's own processes (host-network pods included).
    ClusterIpFromHost,
    /// NodePort, ExternalIP and LoadBalancer traffic arriving at the node.
    External,
}

impl Traffic {
    pub const ALL: [Traffic; 3] = [Traffic::ClusterIpFromPods, Traffic::ClusterIpFromHost, Traffic::External];

    pub fn as_str(self) -> &'static str {
        match self {
            Traffic::ClusterIpFromPods => "cluster-ip-from-pods",
            Traffic::ClusterIpFromHost => "cluster-ip-from-host",
            Traffic::External => "external",
        }
    }
}

/// One Service proxy found on the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceProxy {
    pub proxy: ProxyKind,
    pub mode: ServiceProxyMode,
    /// The traffic it balances, as far as the kernel shows.
    pub balances: Vec<Traffic>,
    /// Services (frontends or Service ports) it holds, where the kernel shows a count.
    pub services: Option<u32>,
    /// Whether its agent process runs; null when processes could not be read.
    pub agent_running: Option<bool>,
    pub evidence: Vec<String>,
    /// Another process holding this proxy's health port (kube-proxy's), also one line of `evidence`. Not in the
    /// JSON: the rule churn reads it from the report the daemon has just analysed.
    #[serde(skip)]
    pub health_port_held_by: Option<HealthPortHolder>,
}

/// A process other than kube-proxy listening on kube-proxy's health port (Calico and Cilium bind it too,
/// calico#10748).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPortHolder {
    pub port: u16,
    pub comm: String,
    pub pid: u32,
}

impl std::fmt::Display for HealthPortHolder {
    /// The evidence line, in kube-proxy's evidence and again in the churn finding's.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, ":{} (kube-proxy's health port) is held by {} (pid {})", self.port, self.comm, self.pid)
    }
}

/// Two proxies in conflict, in [`ProxyKind`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyPair {
    pub a: ProxyKind,
    pub b: ProxyKind,
    /// The severity of the pair's `service-routing.conflict`.
    pub severity: Severity,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cni {
    /// `cilium`, `calico`, `flannel`, ... (from the plugin types).
    pub owner: String,
    pub file: String,
}

/// Which mode kube-proxy's Service rules are in. `Unknown` when nothing was found but a source that could have
/// shown them failed or is disabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    #[default]
    None,
    Iptables,
    Nftables,
    Ipvs,
    Unknown,
}

impl ProxyMode {
    /// The name used in JSON, metrics labels and text.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::None => "none",
            ProxyMode::Iptables => "iptables",
            ProxyMode::Nftables => "nftables",
            ProxyMode::Ipvs => "ipvs",
            ProxyMode::Unknown => "unknown",
        }
    }

    /// Whether kube-proxy rules of some mode were found.
    pub fn is_present(self) -> bool {
        matches!(self, ProxyMode::Iptables | ProxyMode::Nftables | ProxyMode::Ipvs)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KubeProxy {
    pub mode: ProxyMode,
    /// iptables backend(s) holding kube-proxy chains: `legacy`, `nft` or `legacy+nft`; null in nftables mode.
    pub backend: Option<String>,
    /// Service ports programmed (KUBE-SVC-* chains, nftables service chains, or IPVS virtual servers).
    pub services: u32,
    /// Whether a kube-proxy process runs; null when processes could not be read.
    pub running: Option<bool>,
    pub pids: Vec<u32>,
    /// Rules present while kube-proxy does not run.
    pub stale: bool,
    /// What kube-proxy's `/proxyMode` answered, when it answered.
    pub reported_mode: Option<String>,
    /// HTTP status of kube-proxy's `/healthz`, when it answered.
    pub healthz_status: Option<u16>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cilium {
    /// Whether Cilium is on this node (links, chains, agent process or pinned maps); null when unknown.
    pub present: Option<bool>,
    pub agent_running: Option<bool>,
    /// Whether Cilium load-balances Services beyond pod ClusterIP traffic (socket-LB, BPF NodePort or XDP).
    pub kube_proxy_replacement: Option<bool>,
    pub socket_lb: Option<bool>,
    /// kube-proxy replacement mode as the Cilium agent reports its configuration; null when it did not answer.
    pub configured_kpr: Option<String>,
    pub bpf_nodeport: Option<bool>,
    pub xdp_nodeport: Option<bool>,
    /// Service frontends in Cilium's pinned service maps; null when no map was found.
    pub services: Option<u32>,
    /// Frontends for NodePort, ExternalIP, LoadBalancer and HostPort traffic.
    pub external_services: Option<u32>,
    /// How Cilium's programs sit on the node's devices (its `cil_*` programs on links): `tc` (clsact filters),
    /// `tcx` (bpf_link, Cilium's `bpf.enableTCX`), or `tc+tcx`; absent when none is attached to a link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_mode: Option<AttachMode>,
    /// The kind of Cilium's pod devices (`lxc*`): `veth`, `netkit` (`bpf.datapathMode=netkit`), or `veth+netkit`
    /// while pods move over; absent without pod devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_mode: Option<DeviceMode>,
}

/// How a proxy's programs are attached to devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttachMode {
    #[serde(rename = "tc")]
    Tc,
    #[serde(rename = "tcx")]
    Tcx,
    #[serde(rename = "tc+tcx")]
    Both,
}

impl AttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Tc => "tc",
            AttachMode::Tcx => "tcx",
            AttachMode::Both => "tc+tcx",
        }
    }
}

/// The kind of a CNI's pod devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceMode {
    #[serde(rename = "veth")]
    Veth,
    #[serde(rename = "netkit")]
    Netkit,
    #[serde(rename = "veth+netkit")]
    Both,
}

impl DeviceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceMode::Veth => "veth",
            DeviceMode::Netkit => "netkit",
            DeviceMode::Both => "veth+netkit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: FindingId,
    pub severity: Severity,
    pub summary: String,
    pub evidence: Vec<String>,
    pub remedy: String,
}

impl Report {
    /// Exit code of `check`: 2 critical, 3 could not inspect, 1 warnings, 0 healthy.
    pub fn exit_code(&self) -> i32 {
        if self.verdict == Verdict::Critical {
            2
        } else if self.sources.values().any(|s| s.status == SourceStatus::Failed) {
            3
        } else if self.verdict == Verdict::Warning {
            1
        } else {
            0
        }
    }

    pub fn finding(&self, id: &FindingId) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == *id)
    }
}

/// The verdict for a set of findings: the worst severity, with info counting as ok.
pub fn verdict(findings: &[Finding]) -> Verdict {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Critical) => Verdict::Critical,
        Some(Severity::Warning) => Verdict::Warning,
        _ => Verdict::Ok,
    }
}

/// What a finding is about. Serialised as its dotted name (`service-routing.conflict`). Build ids from names with
/// [`FindingId::from_name`]: a name that is a built-in id (a journal rule may use `certificate.expired`) becomes
/// that variant, any other name a `Journal` id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingId {
    SourceFailed,
    ServiceRoutingConflict,
    ServiceRoutingOverlap,
    ServiceRoutingPartial,
    ServiceRoutingMissing,
    ServiceRoutingChurn,
    KubeProxyStaleRules,
    KubeProxyModeMismatch,
    KubeProxyUnhealthy,
    IptablesMixedBackends,
    CertificateExpired,
    CertificateExpiring,
    CertificateUnreadable,
    NfsClusteripSocketLb,
    CniConfigMissing,
    KubeProxyUntrustedAnswer,
    CoverageIncomplete,
    /// A Service proxy's programs or links are there but its agent does not run (other than kube-proxy).
    ServiceProxyAgentDown,
    /// kube-proxy runs in IPVS mode, deprecated since Kubernetes 1.35 (KEP-5495): migrate to nftables.
    KubeProxyIpvsDeprecated,
    /// A journal rule's configured id (`cni.not-ready`, `cni-apiserver.deadlock`, a user's own rule).
    Journal(String),
}

impl FindingId {
    /// Every id the rules themselves raise.
    pub const BUILT_IN: [FindingId; 19] = [
        FindingId::SourceFailed,
        FindingId::ServiceRoutingConflict,
        FindingId::ServiceRoutingOverlap,
        FindingId::ServiceRoutingPartial,
        FindingId::ServiceRoutingMissing,
        FindingId::ServiceRoutingChurn,
        FindingId::KubeProxyStaleRules,
        FindingId::KubeProxyModeMismatch,
        FindingId::KubeProxyUnhealthy,
        FindingId::IptablesMixedBackends,
        FindingId::CertificateExpired,
        FindingId::CertificateExpiring,
        FindingId::CertificateUnreadable,
        FindingId::NfsClusteripSocketLb,
        FindingId::CniConfigMissing,
        FindingId::KubeProxyUntrustedAnswer,
        FindingId::CoverageIncomplete,
        FindingId::ServiceProxyAgentDown,
        FindingId::KubeProxyIpvsDeprecated,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            FindingId::SourceFailed => "source.failed",
            FindingId::ServiceRoutingConflict => "service-routing.conflict",
            FindingId::ServiceRoutingOverlap => "service-routing.overlap",
            FindingId::ServiceRoutingPartial => "service-routing.partial",
            FindingId::ServiceRoutingMissing => "service-routing.missing",
            FindingId::ServiceRoutingChurn => "service-routing.churn",
            FindingId::KubeProxyStaleRules => "kube-proxy.stale-rules",
            FindingId::KubeProxyModeMismatch => "kube-proxy.mode-mismatch",
            FindingId::KubeProxyUnhealthy => "kube-proxy.unhealthy",
            FindingId::IptablesMixedBackends => "iptables.mixed-backends",
            FindingId::CertificateExpired => "certificate.expired",
            FindingId::CertificateExpiring => "certificate.expiring",
            FindingId::CertificateUnreadable => "certificate.unreadable",
            FindingId::NfsClusteripSocketLb => "nfs.clusterip-socket-lb",
            FindingId::CniConfigMissing => "cni.config-missing",
            FindingId::KubeProxyUntrustedAnswer => "kube-proxy.untrusted-answer",
            FindingId::CoverageIncomplete => "coverage.incomplete",
            FindingId::ServiceProxyAgentDown => "service-proxy.agent-down",
            FindingId::KubeProxyIpvsDeprecated => "kube-proxy.ipvs-deprecated",
            FindingId::Journal(id) => id,
        }
    }

    /// The id named `name`: a built-in one, else a journal rule's.
    pub fn from_name(name: &str) -> FindingId {
        Self::BUILT_IN.into_iter().find(|f| f.as_str() == name).unwrap_or_else(|| FindingId::Journal(name.into()))
    }
}

impl std::fmt::Display for FindingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FindingId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FindingId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(FindingId::from_name(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_ids_round_trip_through_their_names() {
        for id in FindingId::BUILT_IN {
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{}\"", id.as_str()));
            assert_eq!(serde_json::from_str::<FindingId>(&json).unwrap(), id);
        }
        assert_eq!(FindingId::from_name("cni.not-ready"), FindingId::Journal("cni.not-ready".into()));
    }
}
