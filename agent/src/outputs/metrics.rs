//! Prometheus metrics: one explicit registry for the daemon's life, updated from each report, rendered once per
//! collection (never per request) as OpenMetrics and as Prometheus text 0.0.4.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
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

/// The daemon's metrics; the HELP texts are registered in `new`. `cilium_lb_services` is 0 when no service map
/// was found (the `source_up{source="bpf"}` series tells unknown from absent).
pub struct Metrics {
    registry: Registry,
    /// 1 when the source was read in the last collection, 0 when it failed; disabled sources are absent.
    source_up: Family<Labels, Gauge>,
    /// Time the last collection spent reading each source.
    source_duration: Family<Labels, FloatGauge>,
    /// Unix time of each source's last successful read.
    source_last_success: Family<Labels, FloatGauge>,
    /// kube-proxy's mode and iptables backend as found in the rules (value always 1).
    kube_proxy_info: Family<Labels, Gauge>,
    /// Service ports kube-proxy has programmed.
    kube_proxy_services: Gauge,
    /// 1 when a kube-proxy process runs.
    kube_proxy_running: Gauge,
    /// Cilium's kube-proxy replacement and socket-LB state (value always 1; labels true, false or unknown).
    cilium_info: Family<Labels, Gauge>,
    /// Service frontends in Cilium's pinned service maps.
    cilium_lb_services: Gauge,
    /// 1 when kube-proxy and Cilium both program Service routing.
    conflict: Gauge,
    /// Findings of the last report by id and severity.
    findings: Family<Labels, Gauge>,
    /// kube-proxy chains added or removed between collections.
    rule_changes: Counter,
    /// Completed collections.
    collections: Counter,
    /// Unix time the last collection finished.
    last_collection: FloatGauge,
    journal_matches: Family<Labels, Counter>,
    journal_lines: Family<Labels, Counter>,
    journal_skipped: Family<Labels, Counter>,
    journal_lag: FloatGauge,
    certificate_not_after: Family<Labels, FloatGauge>,
    /// Every Service proxy found, by proxy and mode (value always 1).
    service_proxy_info: Family<Labels, Gauge>,
    /// Services each proxy holds, where the kernel shows a count.
    service_proxy_services: Family<Labels, Gauge>,
    /// 1 for each pair of proxies in conflict (`proxy_a`, `proxy_b`).
    service_proxy_conflict: Family<Labels, Gauge>,
    /// 1 for the last report's verdict, 0 for the others (one series per verdict: `count by (verdict)`).
    verdict: Family<Labels, Gauge>,
    certificate_read_errors: Gauge,
    /// The Kubernetes exporter (only with `[kubernetes] enabled`): 1 when its last exchange succeeded.
    kubernetes_up: Gauge,
    kubernetes_last_success: FloatGauge,
    /// Requests to the API server by result (`ok`, `error`).
    kubernetes_requests: Family<Labels, Counter>,
    kubernetes_events_dropped: Counter,
    /// With `[kubernetes] taint`: 1 for the taint's state now (present, absent, unknown), 0 for the others.
    kubernetes_taint: Family<Labels, Gauge>,
    kubernetes_taint_transitions: Counter,
    /// The network metrics listener's basic auth (only with users): requests by result, the verifications' peak,
    /// clients refused for failed attempts now.
    metrics_auth_requests: Family<Labels, Counter>,
    metrics_auth_verifications_peak: Gauge,
    metrics_auth_limited_clients: Gauge,
    /// The `process_*` metrics, without the `routewarden_` prefix (as every exporter names them).
    process: Registry,
    process_cpu: Counter<f64, AtomicU64>,
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
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("routewarden");
        registry.register(
            "build",
            "routewarden version (value always 1)",
            Info::new(vec![
                ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
                ("revision".to_string(), env!("ROUTEWARDEN_REVISION").to_string()),
            ]),
        );
        let m = Metrics {
            registry,
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
            process: Registry::default(),
            process_cpu: Counter::default(),
            process_resident: Gauge::default(),
            process_virtual: Gauge::default(),
            process_start: FloatGauge::default(),
            process_open_fds: Gauge::default(),
            process_max_fds: Gauge::default(),
        };
        let mut m = m;
        let r = &mut m.registry;
        r.register(
            "source_up",
            "1 when the source was read in the last collection, 0 when it failed (disabled sources are absent)",
            m.source_up.clone(),
        );
        r.register(
            "source_collect_duration_seconds",
            "Time the last collection spent reading each source",
            m.source_duration.clone(),
        );
        r.register(
            "source_last_success_timestamp_seconds",
            "Unix time of each source's last successful read",
            m.source_last_success.clone(),
        );
        r.register(
            "kube_proxy_info",
            "kube-proxy mode and iptables backend found in the rules (value always 1)",
            m.kube_proxy_info.clone(),
        );
        r.register("kube_proxy_services", "Service ports kube-proxy has programmed", m.kube_proxy_services.clone());
        r.register("kube_proxy_running", "1 when a kube-proxy process runs", m.kube_proxy_running.clone());
        r.register(
            "cilium_info",
            "Cilium kube-proxy replacement and socket-LB state (value always 1)",
            m.cilium_info.clone(),
        );
        r.register(
            "cilium_lb_services",
            "Service frontends in Cilium's pinned service maps",
            m.cilium_lb_services.clone(),
        );
        r.register(
            "service_routing_conflict",
            "1 when two Service proxies (kube-proxy and Cilium, or any other pair) both program Service routing and \
             routewarden rates it critical (a warning-level conflict is 0 here: see routewarden_service_proxy_conflict)",
            m.conflict.clone(),
        );
        r.register("findings", "Findings of the last report by id and severity", m.findings.clone());
        r.register("rule_changes", "kube-proxy chains added or removed between collections", m.rule_changes.clone());
        r.register("collections", "Completed collections", m.collections.clone());
        r.register(
            "last_collection_timestamp_seconds",
            "Unix time the last collection finished",
            m.last_collection.clone(),
        );
        r.register(
            "certificate_not_after_timestamp_seconds",
            "Unix time each watched certificate expires",
            m.certificate_not_after.clone(),
        );
        r.register(
            "service_proxy_info",
            "Each Service proxy found on the node, by proxy and mode (value always 1)",
            m.service_proxy_info.clone(),
        );
        r.register(
            "service_proxy_services",
            "Services each proxy holds, where the kernel shows a count",
            m.service_proxy_services.clone(),
        );
        r.register(
            "service_proxy_conflict",
            "1 for each pair of Service proxies that balance the same traffic (proxy_a, proxy_b), with the severity of \
             that pair's conflict",
            m.service_proxy_conflict.clone(),
        );
        r.register("journal_matches", "Journal entries matched, by rule", m.journal_matches.clone());
        r.register("journal_lines", "Journal entries read, by unit", m.journal_lines.clone());
        r.register(
            "journal_skipped_lines",
            "journalctl lines skipped, by reason: not-an-entry, or too-long (over 1 MiB, skipped unread)",
            m.journal_skipped.clone(),
        );
        r.register(
            "journal_lag_seconds",
            "How far behind the journal the newest entry was when it was read",
            m.journal_lag.clone(),
        );
        r.register(
            "verdict",
            "1 for the last report's verdict (ok, warning, critical), 0 for the others",
            m.verdict.clone(),
        );
        r.register(
            "certificate_read_errors",
            "Certificate files or kubeconfig fields that could not be read or parsed in the last collection",
            m.certificate_read_errors.clone(),
        );
        let p = &mut m.process;
        p.register("process_cpu_seconds", "Total user and system CPU time spent in seconds", m.process_cpu.clone());
        p.register("process_resident_memory_bytes", "Resident memory size in bytes", m.process_resident.clone());
        p.register("process_virtual_memory_bytes", "Virtual memory size in bytes", m.process_virtual.clone());
        p.register(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            m.process_start.clone(),
        );
        p.register("process_open_fds", "Number of open file descriptors", m.process_open_fds.clone());
        p.register("process_max_fds", "Maximum number of open file descriptors", m.process_max_fds.clone());
        m
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
            let l = vec![("source".to_string(), name.to_string())];
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
            .get_or_create(&vec![
                ("mode".to_string(), mode.to_string()),
                ("backend".to_string(), kp.backend.clone().unwrap_or_default()),
            ])
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
            .get_or_create(&vec![
                ("present".to_string(), tri(c.present).to_string()),
                ("kube_proxy_replacement".to_string(), tri(c.kube_proxy_replacement).to_string()),
                ("socket_lb".to_string(), tri(c.socket_lb).to_string()),
            ])
            .set(1);
        self.cilium_lb_services.set(i64::from(c.services.unwrap_or(0)));
        let critical = |f: &&crate::report::Finding| f.severity == crate::report::Severity::Critical;
        self.conflict.set(i64::from(
            r.findings.iter().filter(|f| f.id == FindingId::ServiceRoutingConflict).any(|f| critical(&f)),
        ));
        self.service_proxy_info.clear();
        self.service_proxy_services.clear();
        for p in &r.dataplane.proxies {
            let proxy = ("proxy".to_string(), p.proxy.as_str().to_string());
            self.service_proxy_info.get_or_create(&vec![proxy.clone(), ("mode".into(), p.mode.as_str().into())]).set(1);
            if let Some(n) = p.services {
                self.service_proxy_services.get_or_create(&vec![proxy]).set(i64::from(n));
            }
        }
        self.service_proxy_conflict.clear();
        for c in &r.dataplane.conflicts {
            let l = vec![
                ("proxy_a".to_string(), c.a.as_str().to_string()),
                ("proxy_b".to_string(), c.b.as_str().to_string()),
                ("severity".to_string(), c.severity.as_str().to_string()),
            ];
            self.service_proxy_conflict.get_or_create(&l).set(1);
        }
        self.findings.clear();
        for f in &r.findings {
            let sev = f.severity.as_str().to_string();
            self.findings
                .get_or_create(&vec![("id".to_string(), f.id.to_string()), ("severity".to_string(), sev)])
                .inc();
        }
        self.certificate_not_after.clear();
        for c in &r.certificates {
            // One series per certificate: a CA bundle holds certificates with one subject during a rotation.
            let l = vec![
                ("path".to_string(), c.path.clone()),
                ("subject".to_string(), c.subject.clone()),
                ("issuer".to_string(), c.issuer.clone()),
                ("serial".to_string(), c.serial.clone()),
            ];
            self.certificate_not_after.get_or_create(&l).set(c.not_after as f64);
        }
        self.certificate_read_errors.set(i64::try_from(r.certificate_read_errors).unwrap_or(i64::MAX));
        for v in [Verdict::Ok, Verdict::Warning, Verdict::Critical] {
            let l = vec![("verdict".to_string(), verdict_name(v).to_string())];
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
            let c = self.metrics_auth_requests.get_or_create(&vec![("result".to_string(), result.to_string())]);
            c.inc_by(total.saturating_sub(c.get()));
        }
        self.metrics_auth_verifications_peak.set(i64::try_from(a.verifications_peak).unwrap_or(i64::MAX));
        self.metrics_auth_limited_clients.set(i64::try_from(a.limited_clients).unwrap_or(i64::MAX));
    }

    /// Registers the network metrics listener's basic-auth metrics (only when its web configuration has users).
    pub fn enable_metrics_auth(&mut self) {
        let r = &mut self.registry;
        r.register(
            "metrics_auth_requests",
            "Requests to the network metrics listener by what basic auth did: accepted, refused (wrong or no \
             credentials), busy (the password verifiers were full), rate-limited (the client used up its failed \
             attempts)",
            self.metrics_auth_requests.clone(),
        );
        r.register(
            "metrics_auth_verifications_peak",
            "The most bcrypt password verifications that ran at once since the start (at most 2)",
            self.metrics_auth_verifications_peak.clone(),
        );
        r.register(
            "metrics_auth_limited_clients",
            "Clients (IPv4 addresses, IPv6 /64s) refused now for too many failed attempts",
            self.metrics_auth_limited_clients.clone(),
        );
    }

    /// Brings the journal counters up to the engine's totals.
    fn update_journal(&self, j: &crate::report::JournalCounters) {
        for (rule, total) in &j.matches {
            let c = self.journal_matches.get_or_create(&vec![("rule".to_string(), rule.clone())]);
            c.inc_by(total.saturating_sub(c.get()));
        }
        for (unit, total) in &j.lines {
            let c = self.journal_lines.get_or_create(&vec![("unit".to_string(), unit.clone())]);
            c.inc_by(total.saturating_sub(c.get()));
        }
        for (reason, total) in [("not-an-entry", j.not_entries), ("too-long", j.overlong_lines)] {
            let c = self.journal_skipped.get_or_create(&vec![("reason".to_string(), reason.to_string())]);
            c.inc_by(total.saturating_sub(c.get()));
        }
        self.journal_lag.set(j.lag_seconds);
    }

    /// Registers the Kubernetes exporter's metrics (only with `[kubernetes] enabled`: absent otherwise; the
    /// taint's only with `taint` too).
    pub fn enable_kubernetes(&mut self, taint: bool) {
        let r = &mut self.registry;
        if taint {
            r.register(
                "kubernetes_taint",
                "1 for the state of routewarden's NoSchedule taint on the Node (present, absent, unknown before the \
                 Node was read), 0 for the others",
                self.kubernetes_taint.clone(),
            );
            r.register(
                "kubernetes_taint_transitions",
                "Times routewarden added or removed its taint on the Node",
                self.kubernetes_taint_transitions.clone(),
            );
        }
        r.register(
            "kubernetes_up",
            "1 when the last exchange with the Kubernetes API server succeeded (only with [kubernetes] enabled)",
            self.kubernetes_up.clone(),
        );
        r.register(
            "kubernetes_last_success_timestamp_seconds",
            "Unix time of the last successful exchange with the Kubernetes API server",
            self.kubernetes_last_success.clone(),
        );
        r.register(
            "kubernetes_requests",
            "Requests to the Kubernetes API server (Node status, Events), by result",
            self.kubernetes_requests.clone(),
        );
        r.register(
            "kubernetes_events_dropped",
            "Events not sent: over the rate limit, or dropped from the full queue while the API server was away",
            self.kubernetes_events_dropped.clone(),
        );
    }

    /// Sets the Kubernetes exporter's metrics from its status.
    fn update_kubernetes(&self, k: &crate::model::kubernetes::ExporterStatus) {
        self.kubernetes_up.set(i64::from(k.up == Some(true)));
        if let Some(t) = k.last_success_unix {
            self.kubernetes_last_success.set(t);
        }
        for (result, total) in [("ok", k.requests_ok), ("error", k.requests_failed)] {
            let c = self.kubernetes_requests.get_or_create(&vec![("result".to_string(), result.to_string())]);
            c.inc_by(total.saturating_sub(c.get()));
        }
        let dropped = &self.kubernetes_events_dropped;
        dropped.inc_by(k.events_dropped.saturating_sub(dropped.get()));
        if let Some(now) = k.taint {
            for state in crate::model::kubernetes::TaintState::ALL {
                let g = self.kubernetes_taint.get_or_create(&vec![("state".to_string(), state.as_str().to_string())]);
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

    /// The metrics are a contract (alerts, dashboards, recording rules): their names and label sets are pinned
    /// in tests/data/metrics/series.txt (rewrite it with UPDATE_EXPECT=1 when a change is meant).
    #[test]
    fn the_metric_names_and_labels_are_pinned() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/metrics/series.txt");
        let snap = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/snapshots/conflict_when_kube_proxy_runs_next_to_cilium_socket_lb.json"
        );
        let snap: crate::model::Snapshot = serde_json::from_str(&std::fs::read_to_string(snap).unwrap()).unwrap();
        let mut r = crate::rules::analyse(&snap, "t".into());
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
        let now = series(&m);
        if std::env::var("UPDATE_EXPECT").as_deref() == Ok("1") {
            std::fs::write(path, &now).unwrap();
        }
        let pinned = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(now, pinned, "the series changed; if meant, rewrite {path} with UPDATE_EXPECT=1");
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
        let mut r = crate::rules::analyse(&snap, "t".into());
        let proxy = |proxy, mode, services| ServiceProxy {
            proxy,
            mode,
            balances: Traffic::ALL.to_vec(),
            services,
            agent_running: Some(true),
            evidence: Vec::new(),
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
