//! Prometheus metrics: one explicit registry for the daemon's life, updated from each report, rendered once per
//! collection (never per request) as OpenMetrics and as Prometheus text 0.0.4.
//!
//! Every family is described once, as data, in [`FAMILIES`] (name, type, help, labels, and the part of the daemon
//! it belongs to): registration reads the table, the label names of every sample come from it, and
//! `docs/metrics.md` is generated from it (`outputs::reference`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::model::SourceStatus;
use crate::report::{FindingId, Report, Verdict};

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Warning => "warning",
        Verdict::Critical => "critical",
    }
}

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// A family's OpenMetrics type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    /// A constant set of labels (value always 1), sampled as `<name>_info`.
    Info,
}

impl Kind {
    /// The type's name in the exposition (`# TYPE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Info => "info",
        }
    }
}

/// Which part of the daemon a family belongs to, and so when it is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Always, from the report; named `routewarden_<name>`.
    Report,
    /// The process's own `process_*` metrics, without the `routewarden_` prefix (as every exporter names them).
    Process,
    /// With `[kubernetes] enabled` and `taint`.
    KubernetesTaint,
    /// With `[kubernetes] enabled` (absent otherwise).
    Kubernetes,
    /// With users in the network metrics listener's web configuration.
    MetricsAuth,
}

/// Every metric family the daemon can serve; [`FAMILIES`] describes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    Build,
    SourceUp,
    SourceDuration,
    SourceLastSuccess,
    KubeProxyInfo,
    KubeProxyServices,
    KubeProxyRunning,
    CiliumInfo,
    CiliumLbServices,
    Conflict,
    Findings,
    RuleChanges,
    Collections,
    LastCollection,
    CertificateNotAfter,
    ServiceProxyInfo,
    ServiceProxyServices,
    ServiceProxyConflict,
    JournalMatches,
    JournalLines,
    JournalSkipped,
    JournalLag,
    Verdict,
    CertificateReadErrors,
    ProcessCpu,
    ProcessResident,
    ProcessVirtual,
    ProcessStart,
    ProcessOpenFds,
    ProcessMaxFds,
    KubernetesTaint,
    KubernetesTaintTransitions,
    KubernetesUp,
    KubernetesLastSuccess,
    KubernetesRequests,
    KubernetesEventsDropped,
    MetricsAuthRequests,
    MetricsAuthVerificationsPeak,
    MetricsAuthLimitedClients,
}

/// One metric family: its name (the registry adds `routewarden_` except to [`Part::Process`]), type, HELP text
/// (the encoder adds the final period), the names of its labels in the order the samples carry them, and the
/// part of the daemon it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Desc {
    pub id: Id,
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    pub part: Part,
}

impl Desc {
    /// The family's name as served (`routewarden_x`, or `process_x`).
    pub fn full_name(&self) -> String {
        match self.part {
            Part::Process => self.name.to_string(),
            _ => format!("{PREFIX}_{}", self.name),
        }
    }
}

/// The prefix of every family but the process's.
const PREFIX: &str = "routewarden";

const fn family(
    id: Id,
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    part: Part,
    help: &'static str,
) -> Desc {
    Desc { id, name, kind, help, labels, part }
}

/// Every family, in the order it is registered (and served). `cilium_lb_services` is 0 when no service map was
/// found (the `source_up{source="bpf"}` series tells unknown from absent).
pub const FAMILIES: &[Desc] = &[
    family(
        Id::Build,
        "build",
        Kind::Info,
        &["version", "revision"],
        Part::Report,
        "routewarden version (value always 1)",
    ),
    family(
        Id::SourceUp,
        "source_up",
        Kind::Gauge,
        &["source"],
        Part::Report,
        "1 when the source was read in the last collection, 0 when it failed (disabled sources are absent)",
    ),
    family(
        Id::SourceDuration,
        "source_collect_duration_seconds",
        Kind::Gauge,
        &["source"],
        Part::Report,
        "Time the last collection spent reading each source",
    ),
    family(
        Id::SourceLastSuccess,
        "source_last_success_timestamp_seconds",
        Kind::Gauge,
        &["source"],
        Part::Report,
        "Unix time of each source's last successful read",
    ),
    family(
        Id::KubeProxyInfo,
        "kube_proxy_info",
        Kind::Gauge,
        &["mode", "backend"],
        Part::Report,
        "kube-proxy mode and iptables backend found in the rules (value always 1)",
    ),
    family(
        Id::KubeProxyServices,
        "kube_proxy_services",
        Kind::Gauge,
        &[],
        Part::Report,
        "Service ports kube-proxy has programmed",
    ),
    family(
        Id::KubeProxyRunning,
        "kube_proxy_running",
        Kind::Gauge,
        &[],
        Part::Report,
        "1 when a kube-proxy process runs",
    ),
    family(
        Id::CiliumInfo,
        "cilium_info",
        Kind::Gauge,
        &["present", "kube_proxy_replacement", "socket_lb"],
        Part::Report,
        "Cilium kube-proxy replacement and socket-LB state (value always 1)",
    ),
    family(
        Id::CiliumLbServices,
        "cilium_lb_services",
        Kind::Gauge,
        &[],
        Part::Report,
        "Service frontends in Cilium's pinned service maps",
    ),
    family(
        Id::Conflict,
        "service_routing_conflict",
        Kind::Gauge,
        &[],
        Part::Report,
        "1 when two Service proxies (kube-proxy and Cilium, or any other pair) both program Service routing and \
         routewarden rates it critical (a warning-level conflict is 0 here: see routewarden_service_proxy_conflict)",
    ),
    family(
        Id::Findings,
        "findings",
        Kind::Gauge,
        &["id", "severity"],
        Part::Report,
        "Findings of the last report by id and severity",
    ),
    family(
        Id::RuleChanges,
        "rule_changes",
        Kind::Counter,
        &[],
        Part::Report,
        "kube-proxy chains added or removed between collections",
    ),
    family(Id::Collections, "collections", Kind::Counter, &[], Part::Report, "Completed collections"),
    family(
        Id::LastCollection,
        "last_collection_timestamp_seconds",
        Kind::Gauge,
        &[],
        Part::Report,
        "Unix time the last collection finished",
    ),
    // One series per certificate: a CA bundle holds certificates with one subject during a rotation.
    family(
        Id::CertificateNotAfter,
        "certificate_not_after_timestamp_seconds",
        Kind::Gauge,
        &["path", "subject", "issuer", "serial"],
        Part::Report,
        "Unix time each watched certificate expires",
    ),
    family(
        Id::ServiceProxyInfo,
        "service_proxy_info",
        Kind::Gauge,
        &["proxy", "mode"],
        Part::Report,
        "Each Service proxy found on the node, by proxy and mode (value always 1)",
    ),
    family(
        Id::ServiceProxyServices,
        "service_proxy_services",
        Kind::Gauge,
        &["proxy"],
        Part::Report,
        "Services each proxy holds, where the kernel shows a count",
    ),
    family(
        Id::ServiceProxyConflict,
        "service_proxy_conflict",
        Kind::Gauge,
        &["proxy_a", "proxy_b", "severity"],
        Part::Report,
        "1 for each pair of Service proxies that balance the same traffic (proxy_a, proxy_b), with the severity of \
         that pair's conflict",
    ),
    family(
        Id::JournalMatches,
        "journal_matches",
        Kind::Counter,
        &["rule"],
        Part::Report,
        "Journal entries matched, by rule",
    ),
    family(Id::JournalLines, "journal_lines", Kind::Counter, &["unit"], Part::Report, "Journal entries read, by unit"),
    family(
        Id::JournalSkipped,
        "journal_skipped_lines",
        Kind::Counter,
        &["reason"],
        Part::Report,
        "journalctl lines skipped, by reason: not-an-entry, or too-long (over 1 MiB, skipped unread)",
    ),
    family(
        Id::JournalLag,
        "journal_lag_seconds",
        Kind::Gauge,
        &[],
        Part::Report,
        "How far behind the journal the newest entry was when it was read",
    ),
    family(
        Id::Verdict,
        "verdict",
        Kind::Gauge,
        &["verdict"],
        Part::Report,
        "1 for the last report's verdict (ok, warning, critical), 0 for the others",
    ),
    family(
        Id::CertificateReadErrors,
        "certificate_read_errors",
        Kind::Gauge,
        &[],
        Part::Report,
        "Certificate files or kubeconfig fields that could not be read or parsed in the last collection",
    ),
    family(
        Id::ProcessCpu,
        "process_cpu_seconds",
        Kind::Counter,
        &[],
        Part::Process,
        "Total user and system CPU time spent in seconds",
    ),
    family(
        Id::ProcessResident,
        "process_resident_memory_bytes",
        Kind::Gauge,
        &[],
        Part::Process,
        "Resident memory size in bytes",
    ),
    family(
        Id::ProcessVirtual,
        "process_virtual_memory_bytes",
        Kind::Gauge,
        &[],
        Part::Process,
        "Virtual memory size in bytes",
    ),
    family(
        Id::ProcessStart,
        "process_start_time_seconds",
        Kind::Gauge,
        &[],
        Part::Process,
        "Start time of the process since unix epoch in seconds",
    ),
    family(Id::ProcessOpenFds, "process_open_fds", Kind::Gauge, &[], Part::Process, "Number of open file descriptors"),
    family(
        Id::ProcessMaxFds,
        "process_max_fds",
        Kind::Gauge,
        &[],
        Part::Process,
        "Maximum number of open file descriptors",
    ),
    family(
        Id::KubernetesTaint,
        "kubernetes_taint",
        Kind::Gauge,
        &["state"],
        Part::KubernetesTaint,
        "1 for the state of routewarden's NoSchedule taint on the Node (present, absent, unknown before the Node \
         was read), 0 for the others",
    ),
    family(
        Id::KubernetesTaintTransitions,
        "kubernetes_taint_transitions",
        Kind::Counter,
        &[],
        Part::KubernetesTaint,
        "Times routewarden added or removed its taint on the Node",
    ),
    family(
        Id::KubernetesUp,
        "kubernetes_up",
        Kind::Gauge,
        &[],
        Part::Kubernetes,
        "1 when the last exchange with the Kubernetes API server succeeded (only with [kubernetes] enabled)",
    ),
    family(
        Id::KubernetesLastSuccess,
        "kubernetes_last_success_timestamp_seconds",
        Kind::Gauge,
        &[],
        Part::Kubernetes,
        "Unix time of the last successful exchange with the Kubernetes API server",
    ),
    family(
        Id::KubernetesRequests,
        "kubernetes_requests",
        Kind::Counter,
        &["result"],
        Part::Kubernetes,
        "Requests to the Kubernetes API server (Node status, Events), by result",
    ),
    family(
        Id::KubernetesEventsDropped,
        "kubernetes_events_dropped",
        Kind::Counter,
        &[],
        Part::Kubernetes,
        "Events not sent: over the rate limit, or dropped from the full queue while the API server was away",
    ),
    family(
        Id::MetricsAuthRequests,
        "metrics_auth_requests",
        Kind::Counter,
        &["result"],
        Part::MetricsAuth,
        "Requests to the network metrics listener by what basic auth did: accepted, refused (wrong or no \
         credentials), busy (the password verifiers were full), rate-limited (the client used up its failed \
         attempts)",
    ),
    family(
        Id::MetricsAuthVerificationsPeak,
        "metrics_auth_verifications_peak",
        Kind::Gauge,
        &[],
        Part::MetricsAuth,
        "The most bcrypt password verifications that ran at once since the start (at most 2)",
    ),
    family(
        Id::MetricsAuthLimitedClients,
        "metrics_auth_limited_clients",
        Kind::Gauge,
        &[],
        Part::MetricsAuth,
        "Clients (IPv4 addresses, IPv6 /64s) refused now for too many failed attempts",
    ),
];

/// The label set of one sample of `id`: the table's label names with these values, in order.
fn labels<const N: usize>(id: Id, values: [&str; N]) -> Labels {
    let names = FAMILIES.iter().find(|d| d.id == id).map_or(&[][..], |d| d.labels);
    names.iter().zip(values).map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

/// One registered metric, whichever its value type: the registry encodes it through this.
#[derive(Debug)]
enum Handle {
    Info(Info<Labels>),
    Gauge(Gauge),
    FloatGauge(FloatGauge),
    Counter(Counter),
    FloatCounter(FloatCounter),
    Gauges(Family<Labels, Gauge>),
    FloatGauges(Family<Labels, FloatGauge>),
    Counters(Family<Labels, Counter>),
}

impl EncodeMetric for Handle {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        match self {
            Handle::Info(m) => m.encode(encoder),
            Handle::Gauge(m) => m.encode(encoder),
            Handle::FloatGauge(m) => m.encode(encoder),
            Handle::Counter(m) => m.encode(encoder),
            Handle::FloatCounter(m) => m.encode(encoder),
            Handle::Gauges(m) => m.encode(encoder),
            Handle::FloatGauges(m) => m.encode(encoder),
            Handle::Counters(m) => m.encode(encoder),
        }
    }

    fn metric_type(&self) -> MetricType {
        match self {
            Handle::Info(m) => m.metric_type(),
            Handle::Gauge(m) => m.metric_type(),
            Handle::FloatGauge(m) => m.metric_type(),
            Handle::Counter(m) => m.metric_type(),
            Handle::FloatCounter(m) => m.metric_type(),
            Handle::Gauges(m) => m.metric_type(),
            Handle::FloatGauges(m) => m.metric_type(),
            Handle::Counters(m) => m.metric_type(),
        }
    }
}

/// The daemon's metrics: one value per family of [`FAMILIES`].
pub struct Metrics {
    registry: Registry,
    /// The `process_*` metrics, without the `routewarden_` prefix.
    process: Registry,
    source_up: Family<Labels, Gauge>,
    source_duration: Family<Labels, FloatGauge>,
    source_last_success: Family<Labels, FloatGauge>,
    kube_proxy_info: Family<Labels, Gauge>,
    kube_proxy_services: Gauge,
    kube_proxy_running: Gauge,
    cilium_info: Family<Labels, Gauge>,
    cilium_lb_services: Gauge,
    conflict: Gauge,
    findings: Family<Labels, Gauge>,
    rule_changes: Counter,
    collections: Counter,
    last_collection: FloatGauge,
    journal_matches: Family<Labels, Counter>,
    journal_lines: Family<Labels, Counter>,
    journal_skipped: Family<Labels, Counter>,
    journal_lag: FloatGauge,
    certificate_not_after: Family<Labels, FloatGauge>,
    service_proxy_info: Family<Labels, Gauge>,
    service_proxy_services: Family<Labels, Gauge>,
    service_proxy_conflict: Family<Labels, Gauge>,
    verdict: Family<Labels, Gauge>,
    certificate_read_errors: Gauge,
    kubernetes_up: Gauge,
    kubernetes_last_success: FloatGauge,
    kubernetes_requests: Family<Labels, Counter>,
    kubernetes_events_dropped: Counter,
    kubernetes_taint: Family<Labels, Gauge>,
    kubernetes_taint_transitions: Counter,
    metrics_auth_requests: Family<Labels, Counter>,
    metrics_auth_verifications_peak: Gauge,
    metrics_auth_limited_clients: Gauge,
    process_cpu: FloatCounter,
    process_resident: Gauge,
    process_virtual: Gauge,
    process_start: FloatGauge,
    process_open_fds: Gauge,
    process_max_fds: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The registry with the report's and the process's families; the optional parts are registered by
    /// `enable_kubernetes` and `enable_metrics_auth`.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix(PREFIX),
            process: Registry::default(),
            source_up: Family::default(),
            source_duration: Family::default(),
            source_last_success: Family::default(),
            kube_proxy_info: Family::default(),
            kube_proxy_services: Gauge::default(),
            kube_proxy_running: Gauge::default(),
            cilium_info: Family::default(),
            cilium_lb_services: Gauge::default(),
            conflict: Gauge::default(),
            findings: Family::default(),
            rule_changes: Counter::default(),
            collections: Counter::default(),
            last_collection: FloatGauge::default(),
            journal_matches: Family::default(),
            journal_lines: Family::default(),
            journal_skipped: Family::default(),
            journal_lag: FloatGauge::default(),
            certificate_not_after: Family::default(),
            service_proxy_info: Family::default(),
            service_proxy_services: Family::default(),
            service_proxy_conflict: Family::default(),
            verdict: Family::default(),
            certificate_read_errors: Gauge::default(),
            kubernetes_up: Gauge::default(),
            kubernetes_last_success: FloatGauge::default(),
            kubernetes_requests: Family::default(),
            kubernetes_events_dropped: Counter::default(),
            kubernetes_taint: Family::default(),
            kubernetes_taint_transitions: Counter::default(),
            metrics_auth_requests: Family::default(),
            metrics_auth_verifications_peak: Gauge::default(),
            metrics_auth_limited_clients: Gauge::default(),
            process_cpu: FloatCounter::default(),
            process_resident: Gauge::default(),
            process_virtual: Gauge::default(),
            process_start: FloatGauge::default(),
            process_open_fds: Gauge::default(),
            process_max_fds: Gauge::default(),
        };
        m.register(Part::Report);
        m.register(Part::Process);
        m
    }

    /// Registers every family of one part, in the table's order.
    fn register(&mut self, part: Part) {
        for d in FAMILIES.iter().filter(|d| d.part == part) {
            let handle = self.handle(d.id);
            let registry = if part == Part::Process { &mut self.process } else { &mut self.registry };
            registry.register(d.name, d.help, handle);
        }
    }

    /// The value that serves a family.
    fn handle(&self, id: Id) -> Handle {
        use Handle as H;
        match id {
            Id::Build => {
                H::Info(Info::new(labels(Id::Build, [env!("CARGO_PKG_VERSION"), env!("ROUTEWARDEN_REVISION")])))
            }
            Id::SourceUp => H::Gauges(self.source_up.clone()),
            Id::SourceDuration => H::FloatGauges(self.source_duration.clone()),
            Id::SourceLastSuccess => H::FloatGauges(self.source_last_success.clone()),
            Id::KubeProxyInfo => H::Gauges(self.kube_proxy_info.clone()),
            Id::KubeProxyServices => H::Gauge(self.kube_proxy_services.clone()),
            Id::KubeProxyRunning => H::Gauge(self.kube_proxy_running.clone()),
            Id::CiliumInfo => H::Gauges(self.cilium_info.clone()),
            Id::CiliumLbServices => H::Gauge(self.cilium_lb_services.clone()),
            Id::Conflict => H::Gauge(self.conflict.clone()),
            Id::Findings => H::Gauges(self.findings.clone()),
            Id::RuleChanges => H::Counter(self.rule_changes.clone()),
            Id::Collections => H::Counter(self.collections.clone()),
            Id::LastCollection => H::FloatGauge(self.last_collection.clone()),
            Id::CertificateNotAfter => H::FloatGauges(self.certificate_not_after.clone()),
            Id::ServiceProxyInfo => H::Gauges(self.service_proxy_info.clone()),
            Id::ServiceProxyServices => H::Gauges(self.service_proxy_services.clone()),
            Id::ServiceProxyConflict => H::Gauges(self.service_proxy_conflict.clone()),
            Id::JournalMatches => H::Counters(self.journal_matches.clone()),
            Id::JournalLines => H::Counters(self.journal_lines.clone()),
            Id::JournalSkipped => H::Counters(self.journal_skipped.clone()),
            Id::JournalLag => H::FloatGauge(self.journal_lag.clone()),
            Id::Verdict => H::Gauges(self.verdict.clone()),
            Id::CertificateReadErrors => H::Gauge(self.certificate_read_errors.clone()),
            Id::ProcessCpu => H::FloatCounter(self.process_cpu.clone()),
            Id::ProcessResident => H::Gauge(self.process_resident.clone()),
            Id::ProcessVirtual => H::Gauge(self.process_virtual.clone()),
            Id::ProcessStart => H::FloatGauge(self.process_start.clone()),
            Id::ProcessOpenFds => H::Gauge(self.process_open_fds.clone()),
            Id::ProcessMaxFds => H::Gauge(self.process_max_fds.clone()),
            Id::KubernetesTaint => H::Gauges(self.kubernetes_taint.clone()),
            Id::KubernetesTaintTransitions => H::Counter(self.kubernetes_taint_transitions.clone()),
            Id::KubernetesUp => H::Gauge(self.kubernetes_up.clone()),
            Id::KubernetesLastSuccess => H::FloatGauge(self.kubernetes_last_success.clone()),
            Id::KubernetesRequests => H::Counters(self.kubernetes_requests.clone()),
            Id::KubernetesEventsDropped => H::Counter(self.kubernetes_events_dropped.clone()),
            Id::MetricsAuthRequests => H::Counters(self.metrics_auth_requests.clone()),
            Id::MetricsAuthVerificationsPeak => H::Gauge(self.metrics_auth_verifications_peak.clone()),
            Id::MetricsAuthLimitedClients => H::Gauge(self.metrics_auth_limited_clients.clone()),
        }
    }

    /// Sets the `process_*` metrics from a reading of procfs.
    pub fn update_process(&self, s: &crate::sys::process::ProcessStats) {
        if let Some(cpu) = s.cpu_seconds {
            self.process_cpu.inc_by((cpu - self.process_cpu.get()).max(0.0));
        }
        let set = |g: &Gauge, v: Option<u64>| {
            if let Some(v) = v {
                g.set(i64::try_from(v).unwrap_or(i64::MAX));
            }
        };
        set(&self.process_resident, s.resident_bytes);
        set(&self.process_virtual, s.virtual_bytes);
        set(&self.process_open_fds, s.open_fds);
        set(&self.process_max_fds, s.max_fds);
        if let Some(t) = s.start_time_seconds {
            self.process_start.set(t);
        }
    }

    /// Sets every metric from a report (the daemon's counters, journal and exporter from its `daemon` part).
    pub fn update(&self, r: &Report) {
        let now_unix = r.daemon.as_ref().map_or(0.0, |d| d.rendered_unix);
        self.source_up.clear();
        self.source_duration.clear();
        for (name, s) in &r.sources {
            // Disabled sources are not exported: an alert on source_up == 0 means "failed".
            if s.status == SourceStatus::Disabled {
                continue;
            }
            let l = labels(Id::SourceUp, [name.as_str()]);
            let up = s.status == SourceStatus::Ok;
            self.source_up.get_or_create(&l).set(i64::from(up));
            self.source_duration.get_or_create(&l).set(s.duration_ms as f64 / 1000.0);
            if up {
                self.source_last_success.get_or_create(&l).set(now_unix);
            }
        }
        let kp = &r.dataplane.kube_proxy;
        self.kube_proxy_info.clear();
        let mode = kp.mode.as_str();
        self.kube_proxy_info
            .get_or_create(&labels(Id::KubeProxyInfo, [mode, kp.backend.as_deref().unwrap_or_default()]))
            .set(1);
        self.kube_proxy_services.set(i64::from(kp.services));
        self.kube_proxy_running.set(i64::from(kp.running == Some(true)));
        let c = &r.dataplane.cilium;
        let tri = |b: Option<bool>| match b {
            Some(true) => "true",
            Some(false) => "false",
            None => "unknown",
        };
        self.cilium_info.clear();
        self.cilium_info
            .get_or_create(&labels(Id::CiliumInfo, [tri(c.present), tri(c.kube_proxy_replacement), tri(c.socket_lb)]))
            .set(1);
        self.cilium_lb_services.set(i64::from(c.services.unwrap_or(0)));
        let critical = |f: &&crate::report::Finding| f.severity == crate::report::Severity::Critical;
        self.conflict.set(i64::from(
            r.findings.iter().filter(|f| f.id == FindingId::ServiceRoutingConflict).any(|f| critical(&f)),
        ));
        self.service_proxy_info.clear();
        self.service_proxy_services.clear();
        for p in &r.dataplane.proxies {
            let proxy = p.proxy.as_str();
            self.service_proxy_info.get_or_create(&labels(Id::ServiceProxyInfo, [proxy, p.mode.as_str()])).set(1);
            if let Some(n) = p.services {
                self.service_proxy_services.get_or_create(&labels(Id::ServiceProxyServices, [proxy])).set(i64::from(n));
            }
        }
        self.service_proxy_conflict.clear();
        for c in &r.dataplane.conflicts {
            let l = labels(Id::ServiceProxyConflict, [c.a.as_str(), c.b.as_str(), c.severity.as_str()]);
            self.service_proxy_conflict.get_or_create(&l).set(1);
        }
        self.findings.clear();
        for f in &r.findings {
            self.findings.get_or_create(&labels(Id::Findings, [&f.id.to_string(), f.severity.as_str()])).inc();
        }
        self.certificate_not_after.clear();
        for c in &r.certificates {
            let l = labels(Id::CertificateNotAfter, [&c.path, &c.subject, &c.issuer, &c.serial]);
            self.certificate_not_after.get_or_create(&l).set(c.not_after as f64);
        }
        self.certificate_read_errors.set(i64::try_from(r.certificate_read_errors).unwrap_or(i64::MAX));
        for v in [Verdict::Ok, Verdict::Warning, Verdict::Critical] {
            let l = labels(Id::Verdict, [verdict_name(v)]);
            self.verdict.get_or_create(&l).set(i64::from(r.verdict == v));
        }
        if let Some(d) = &r.daemon {
            self.rule_changes.inc_by(d.rule_changes.saturating_sub(self.rule_changes.get()));
            self.collections.inc_by(d.collections.saturating_sub(self.collections.get()));
            self.last_collection.set(d.last_collection_unix);
            if let Some(j) = &d.journal {
                self.update_journal(j);
            }
            if let Some(k) = &d.kubernetes {
                self.update_kubernetes(k);
            }
            if let Some(a) = &d.metrics_auth {
                self.update_metrics_auth(a);
            }
        }
    }

    /// Brings the basic-auth counters up to the listener's totals.
    fn update_metrics_auth(&self, a: &crate::report::AuthCounters) {
        for (result, total) in
            [("accepted", a.accepted), ("refused", a.refused), ("busy", a.busy), ("rate-limited", a.rate_limited)]
        {
            let c = self.metrics_auth_requests.get_or_create(&labels(Id::MetricsAuthRequests, [result]));
            c.inc_by(total.saturating_sub(c.get()));
        }
        self.metrics_auth_verifications_peak.set(i64::try_from(a.verifications_peak).unwrap_or(i64::MAX));
        self.metrics_auth_limited_clients.set(i64::try_from(a.limited_clients).unwrap_or(i64::MAX));
    }

    /// Registers the network metrics listener's basic-auth metrics (only when its web configuration has users).
    pub fn enable_metrics_auth(&mut self) {
        self.register(Part::MetricsAuth);
    }

    /// Brings the journal counters up to the engine's totals.
    fn update_journal(&self, j: &crate::report::JournalCounters) {
        for (rule, total) in &j.matches {
            let c = self.journal_matches.get_or_create(&labels(Id::JournalMatches, [rule.as_str()]));
            c.inc_by(total.saturating_sub(c.get()));
        }
        for (unit, total) in &j.lines {
            let c = self.journal_lines.get_or_create(&labels(Id::JournalLines, [unit.as_str()]));
            c.inc_by(total.saturating_sub(c.get()));
        }
        for (reason, total) in [("not-an-entry", j.not_entries), ("too-long", j.overlong_lines)] {
            let c = self.journal_skipped.get_or_create(&labels(Id::JournalSkipped, [reason]));
            c.inc_by(total.saturating_sub(c.get()));
        }
        self.journal_lag.set(j.lag_seconds);
    }

    /// Registers the Kubernetes exporter's metrics (only with `[kubernetes] enabled`: absent otherwise; the
    /// taint's only with `taint` too).
    pub fn enable_kubernetes(&mut self, taint: bool) {
        if taint {
            self.register(Part::KubernetesTaint);
        }
        self.register(Part::Kubernetes);
    }

    /// Sets the Kubernetes exporter's metrics from its status.
    fn update_kubernetes(&self, k: &crate::model::kubernetes::ExporterStatus) {
        self.kubernetes_up.set(i64::from(k.up == Some(true)));
        if let Some(t) = k.last_success_unix {
            self.kubernetes_last_success.set(t);
        }
        for (result, total) in [("ok", k.requests_ok), ("error", k.requests_failed)] {
            let c = self.kubernetes_requests.get_or_create(&labels(Id::KubernetesRequests, [result]));
            c.inc_by(total.saturating_sub(c.get()));
        }
        let dropped = &self.kubernetes_events_dropped;
        dropped.inc_by(k.events_dropped.saturating_sub(dropped.get()));
        if let Some(now) = k.taint {
            for state in crate::model::kubernetes::TaintState::ALL {
                let g = self.kubernetes_taint.get_or_create(&labels(Id::KubernetesTaint, [state.as_str()]));
                g.set(i64::from(state == now));
            }
            let t = &self.kubernetes_taint_transitions;
            t.inc_by(k.taint_transitions.saturating_sub(t.get()));
        }
    }

    /// (OpenMetrics text, Prometheus text format 0.0.4).
    pub fn render(&self) -> (String, String) {
        let mut om = String::new();
        let encoded = encode_registry(&mut om, &self.registry)
            .and_then(|()| encode_registry(&mut om, &self.process))
            .and_then(|()| encode_eof(&mut om));
        if let Err(e) = encoded {
            om = format!("# encoding metrics failed: {e}\n# EOF\n");
        }
        if !om.ends_with('\n') {
            om.push('\n');
        }
        let text = to_prometheus_text(&om);
        (om, text)
    }
}

/// Converts OpenMetrics text to the Prometheus text format 0.0.4: no `# EOF` or `# UNIT`, counters and info
/// metrics described under their sample names (`x_total` counter, `x_info` gauge).
pub fn to_prometheus_text(om: &str) -> String {
    let mut kinds: Vec<(String, &str)> = Vec::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                kinds.push((name.to_string(), kind));
            }
        }
    }
    let rename = |name: &str| -> (String, Option<&'static str>) {
        match kinds.iter().find(|(n, _)| n == name).map(|(_, k)| *k) {
            Some("counter") => (format!("{name}_total"), None),
            Some("info") => (format!("{name}_info"), Some("gauge")),
            _ => (name.to_string(), None),
        }
    };
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let (new, kind_override) = rename(name);
            out.push_str(&format!("# TYPE {new} {}\n", kind_override.unwrap_or(kind)));
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!("# HELP {} {help}\n", rename(name).0));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every series `/metrics` can show, as `name{label,...}` (values left out), with every optional part on.
    fn series(m: &Metrics) -> String {
        let (_, text) = m.render();
        let mut out: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let name = l.split(['{', ' ']).next().unwrap_or("");
                let labels: Vec<&str> = match (l.find('{'), l.find('}')) {
                    (Some(a), Some(b)) if a < b => {
                        l[a + 1..b].split("\",").filter_map(|kv| kv.split('=').next()).collect()
                    }
                    _ => Vec::new(),
                };
                format!("{name}{{{}}}", labels.join(","))
            })
            .collect();
        out.sort();
        out.dedup();
        out.join("\n") + "\n"
    }

    /// A registry with every optional part on, fed a recorded snapshot's report with the daemon's parts (journal,
    /// exporter with its taint, basic auth), a certificate and the process: every family has a sample.
    fn fed() -> Metrics {
        let snap = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/snapshots/conflict_when_kube_proxy_runs_next_to_cilium_socket_lb.json"
        );
        let snap: crate::model::Snapshot = serde_json::from_str(&std::fs::read_to_string(snap).unwrap()).unwrap();
        let mut r = crate::rules::analyse(&snap, crate::model::Timestamp::from_unix(0));
        r.certificates.push(crate::report::Certificate {
            path: "/etc/kubernetes/pki/ca.crt".into(),
            location: String::new(),
            subject: "CN=kubernetes".into(),
            issuer: "CN=kubernetes".into(),
            serial: "01".into(),
            not_after: 0,
        });
        let journal = crate::rules::assemble::Journal::Running {
            error: None,
            note: None,
            findings: Vec::new(),
            counters: crate::report::JournalCounters {
                matches: [("cni.not-ready".to_string(), 3)].into(),
                lines: [("kubelet.service".to_string(), 9)].into(),
                lag_seconds: 0.5,
                not_entries: 1,
                overlong_lines: 1,
            },
        };
        let exporter = crate::model::kubernetes::ExporterStatus {
            node: "n".into(),
            up: Some(true),
            last_success_unix: Some(1.0),
            last_error: None,
            requests_ok: 1,
            requests_failed: 1,
            events_dropped: 1,
            taint: Some(crate::model::kubernetes::TaintState::Present),
            taint_transitions: 1,
        };
        let gate = crate::rules::gate::NodeGate::Met;
        let r = crate::rules::assemble::assemble(
            &r,
            crate::rules::assemble::Inputs {
                churn_flips: &["nft ipv4 nat KUBE-SERVICES".to_string()],
                journal,
                exporter: Some(exporter),
                node_gate: &gate,
                collections: 1,
                rule_changes: 2,
                last_collection_unix: 1.0,
                metrics_auth: Some(crate::report::AuthCounters {
                    accepted: 5,
                    refused: 4,
                    busy: 3,
                    rate_limited: 2,
                    verifications_peak: 2,
                    limited_clients: 1,
                }),
                now_unix: 1.0,
            },
        );
        let mut m = Metrics::new();
        m.enable_kubernetes(true);
        m.enable_metrics_auth();
        m.update(&r);
        m.update_process(&crate::sys::process::self_stats());
        m
    }

    /// The metrics are a contract (alerts, dashboards, recording rules): their names and label sets are pinned
    /// in tests/data/metrics/series.txt (rewrite it with UPDATE_EXPECT=1 when a change is meant).
    #[test]
    fn the_metric_names_and_labels_are_pinned() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/metrics/series.txt");
        let m = fed();
        let now = series(&m);
        if std::env::var("UPDATE_EXPECT").as_deref() == Ok("1") {
            std::fs::write(path, &now).unwrap();
        }
        let pinned = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(now, pinned, "the series changed; if meant, rewrite {path} with UPDATE_EXPECT=1");
    }

    /// The label names of one sample line, in order (values may hold escaped quotes and commas).
    fn label_names(line: &str) -> Vec<String> {
        let mut names = Vec::new();
        let Some((_, mut rest)) = line.split_once('{') else { return names };
        while let Some((name, after)) = rest.split_once("=\"") {
            names.push(name.trim_start_matches(',').to_string());
            let mut escaped = false;
            let end = after.char_indices().find_map(|(i, c)| match c {
                '\\' if !escaped => {
                    escaped = true;
                    None
                }
                '"' if !escaped => Some(i),
                _ => {
                    escaped = false;
                    None
                }
            });
            match end {
                Some(i) => rest = &after[i + 1..],
                None => break,
            }
        }
        names
    }

    #[test]
    fn label_names_are_split_past_quoted_commas() {
        assert_eq!(label_names(r#"x{path="a,b=\"c\"",subject="CN=x"} 1"#), vec!["path", "subject"]);
    }

    /// The table is what the registry serves: each family once, with its type and help, and every sample with
    /// exactly the table's labels in the table's order; nothing served that the table does not describe.
    #[test]
    fn the_registry_serves_what_the_table_describes() {
        let (om, _) = fed().render();
        let types = om.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(types, FAMILIES.len(), "{om}");
        for d in FAMILIES {
            assert_eq!(FAMILIES.iter().filter(|e| e.id == d.id).count(), 1, "{:?} described more than once", d.id);
            let name = d.full_name();
            assert!(om.lines().any(|l| l == format!("# TYPE {name} {}", d.kind.as_str())), "{name}: type\n{om}");
            assert!(om.lines().any(|l| l == format!("# HELP {name} {}.", d.help)), "{name}: help\n{om}");
            let sample = match d.kind {
                Kind::Counter => format!("{name}_total"),
                Kind::Info => format!("{name}_info"),
                Kind::Gauge => name.clone(),
            };
            let samples: Vec<&str> =
                om.lines().filter(|l| l.split(['{', ' ']).next() == Some(sample.as_str())).collect();
            assert!(!samples.is_empty(), "{name}: no sample\n{om}");
            for l in samples {
                assert_eq!(label_names(l), d.labels, "{l}");
            }
        }
    }

    #[test]
    fn prometheus_text_names_counters_and_info_by_their_samples() {
        let om = "# HELP rw_build routewarden version.\n# TYPE rw_build info\nrw_build_info{version=\"0.1.0\"} 1\n\
# HELP rw_rule_changes changes.\n# TYPE rw_rule_changes counter\nrw_rule_changes_total 3\n# EOF\n";
        let text = to_prometheus_text(om);
        assert_eq!(
            text,
            "# HELP rw_build_info routewarden version.\n# TYPE rw_build_info gauge\nrw_build_info{version=\"0.1.0\"} 1\n\
# HELP rw_rule_changes_total changes.\n# TYPE rw_rule_changes_total counter\nrw_rule_changes_total 3\n"
        );
    }

    #[test]
    fn every_proxy_its_services_and_each_conflicting_pair_are_series() {
        use crate::report::{ProxyKind, ProxyPair, ServiceProxy, ServiceProxyMode, Severity, Traffic};
        let snap: crate::model::Snapshot = serde_json::from_str(
            r#"{"schema_version":2,"node":"n","collected_at":"2026-01-01T00:00:00Z","iptables_legacy":{"status":"disabled"},
            "nftables":{"status":"disabled"},"links":{"status":"disabled"},"ipvs":{"status":"disabled"},
            "bpf":{"status":"disabled"},"processes":{"status":"disabled"}}"#,
        )
        .unwrap();
        let mut r = crate::rules::analyse(&snap, crate::model::Timestamp::from_unix(0));
        let proxy = |proxy, mode, services| ServiceProxy {
            proxy,
            mode,
            balances: Traffic::ALL.to_vec(),
            services,
            agent_running: Some(true),
            evidence: Vec::new(),
            health_port_held_by: None,
        };
        r.dataplane.proxies = vec![
            proxy(ProxyKind::KubeProxy, ServiceProxyMode::Ipvs, Some(3)),
            proxy(ProxyKind::KubeRouter, ServiceProxyMode::Ipvs, Some(2)),
            proxy(ProxyKind::OvnKubernetes, ServiceProxyMode::Ovn, None),
        ];
        r.dataplane.conflicts = vec![
            ProxyPair { a: ProxyKind::KubeProxy, b: ProxyKind::KubeRouter, severity: Severity::Critical },
            ProxyPair { a: ProxyKind::KubeProxy, b: ProxyKind::OvnKubernetes, severity: Severity::Warning },
        ];
        let conflict = |severity| crate::report::Finding {
            id: FindingId::ServiceRoutingConflict,
            severity,
            summary: String::new(),
            evidence: Vec::new(),
            remedy: String::new(),
        };
        r.findings = vec![conflict(Severity::Critical), conflict(Severity::Warning)];
        let m = Metrics::new();
        m.update(&r);
        let (_, text) = m.render();
        for line in [
            "routewarden_service_proxy_info{proxy=\"kube-proxy\",mode=\"ipvs\"} 1",
            "routewarden_service_proxy_info{proxy=\"ovn-kubernetes\",mode=\"ovn\"} 1",
            "routewarden_service_proxy_services{proxy=\"kube-router\"} 2",
            "routewarden_service_proxy_conflict{proxy_a=\"kube-proxy\",proxy_b=\"kube-router\",severity=\"critical\"} 1",
            "routewarden_service_proxy_conflict{proxy_a=\"kube-proxy\",proxy_b=\"ovn-kubernetes\",severity=\"warning\"} 1",
            "routewarden_service_routing_conflict 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
        assert!(!text.contains("routewarden_service_proxy_services{proxy=\"ovn-kubernetes\"}"), "no count, no series");
        // A warning-level conflict alone: the old gauge, which consumers page on, stays 0.
        r.findings = vec![conflict(Severity::Warning)];
        m.update(&r);
        assert!(m.render().1.lines().any(|l| l == "routewarden_service_routing_conflict 0"), "{}", m.render().1);

        // The next report without them clears them.
        r.dataplane.proxies.clear();
        r.dataplane.conflicts.clear();
        m.update(&r);
        assert!(!m.render().1.contains("routewarden_service_proxy_conflict{"));
    }
}
