//! The daemon's report, assembled in one place: a collection's report (from [`super::analyse`]) with what the
//! daemon adds besides the snapshot, all passed in as plain data (the rule churn between collections, the journal
//! follower's state and findings, the Kubernetes exporter's state, the node gate, the daemon's counters). Pure:
//! the daemon gathers the inputs, calls [`assemble`], and publishes what it returns; the verdict is computed here,
//! once, over every finding.

use crate::model::kubernetes::ExporterStatus;
use crate::model::{SourceId, SourceStatus, Timestamp};
use crate::report::{verdict, AuthCounters, DaemonState, Finding, JournalCounters, Report, SourceReport};

use super::gate::NodeGate;

/// The journal follower as the daemon sees it at this render.
#[derive(Debug, Clone, PartialEq)]
pub enum Journal {
    /// `[journal] enabled = false`.
    Disabled,
    /// It could not start (the reason).
    Failed(String),
    /// It runs: its error while it is down (journalctl gone, the cursor not saved), what it says while it is up (a
    /// saved cursor it could not use), its findings as of now, its counters.
    Running { error: Option<String>, note: Option<String>, findings: Vec<Finding>, counters: JournalCounters },
}

/// Everything the daemon adds to a collection's report.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// kube-proxy chains (or IPVS services) deleted and re-created between recent collections.
    pub churn_flips: &'a [String],
    pub journal: Journal,
    /// The Kubernetes exporter's state; `None` without `[kubernetes] enabled`.
    pub exporter: Option<ExporterStatus>,
    /// The node gate of the collection.
    pub node_gate: &'a NodeGate,
    /// Collections and kube-proxy chain changes since the start, and when the last collection was.
    pub collections: u64,
    pub rule_changes: u64,
    pub last_collection_unix: f64,
    /// The network metrics listener's basic auth counters; `None` without users.
    pub metrics_auth: Option<AuthCounters>,
    /// Now (passed in so the function stays pure).
    pub now_unix: f64,
}

/// The report the daemon publishes: `base` (a collection's report) with the churn finding, the journal's source
/// and findings, the exporter's source, the node gate and the daemon's counters, and the verdict over all of it.
pub fn assemble(base: &Report, inputs: Inputs<'_>) -> Report {
    let mut report = base.clone();
    let flips: Vec<&str> = inputs.churn_flips.iter().map(String::as_str).collect();
    super::churn::apply(&mut report, &flips);

    let (status, error, note, counters) = match inputs.journal {
        Journal::Disabled => (SourceStatus::Disabled, None, None, None),
        Journal::Failed(e) => (SourceStatus::Failed, Some(e), None, None),
        Journal::Running { error, note, findings, counters } => {
            report.findings.extend(findings);
            let status = if error.is_some() { SourceStatus::Failed } else { SourceStatus::Ok };
            (status, error, note, Some(counters))
        }
    };
    if status == SourceStatus::Failed {
        report.findings.push(super::remedy::source_failed(
            SourceId::Journal,
            error.as_deref().unwrap_or(""),
            crate::catalogue::source_failed::JOURNAL_REMEDY,
        ));
    }
    report.sources.insert(
        SourceId::Journal,
        SourceReport { status, error, failure: None, duration_ms: 0, last_success: None, note },
    );

    // The exporter's failure is no `source.failed` finding: no conclusion rests on it.
    let kubernetes = match &inputs.exporter {
        None => SourceReport {
            status: SourceStatus::Disabled,
            error: None,
            failure: None,
            duration_ms: 0,
            last_success: None,
            note: None,
        },
        Some(s) => {
            // Whole seconds, as RFC 3339 (a negative or not-a-number time is none).
            let last = s
                .last_success_unix
                .and_then(|t| std::time::Duration::try_from_secs_f64(t).ok())
                .map(|d| Timestamp::from_unix(d.as_secs()).to_string());
            let (status, error) = match s.up {
                Some(true) => (SourceStatus::Ok, None),
                Some(false) => (SourceStatus::Failed, s.last_error.clone()),
                None => (SourceStatus::Failed, Some("no exchange with the API server yet".to_string())),
            };
            SourceReport { status, error, failure: None, duration_ms: 0, last_success: last, note: None }
        }
    };
    report.sources.insert(SourceId::Kubernetes, kubernetes);

    let taint = inputs.exporter.as_ref().and_then(|e| e.taint).map(|t| t.as_str());
    report.node_gate = Some(inputs.node_gate.report(taint));
    report.daemon = Some(DaemonState {
        collections: inputs.collections,
        rule_changes: inputs.rule_changes,
        last_collection_unix: inputs.last_collection_unix,
        rendered_unix: inputs.now_unix,
        journal: counters,
        kubernetes: inputs.exporter,
        metrics_auth: inputs.metrics_auth,
    });
    report.verdict = verdict(&report.findings);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{FindingId, Severity, Verdict};

    fn base() -> Report {
        let snap = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/snapshots/kube_router_alone_is_healthy.json");
        let snap: crate::model::Snapshot = serde_json::from_str(&std::fs::read_to_string(snap).unwrap()).unwrap();
        super::super::analyse(&snap, crate::model::Timestamp::from_unix(0))
    }

    fn inputs<'a>(journal: Journal, exporter: Option<ExporterStatus>, gate: &'a NodeGate) -> Inputs<'a> {
        Inputs {
            churn_flips: &[],
            journal,
            exporter,
            node_gate: gate,
            collections: 3,
            rule_changes: 1,
            last_collection_unix: 10.0,
            metrics_auth: None,
            now_unix: 12.0,
        }
    }

    fn warning(id: FindingId) -> Finding {
        Finding { id, severity: Severity::Warning, summary: "s".into(), evidence: Vec::new(), remedy: String::new() }
    }

    #[test]
    fn the_verdict_is_taken_over_every_part() {
        let b = base();
        assert_eq!(b.verdict, Verdict::Ok, "{:?}", b.findings);
        let gate = NodeGate::Met;
        let quiet = assemble(&b, inputs(Journal::Disabled, None, &gate));
        assert_eq!(quiet.verdict, Verdict::Ok);
        assert_eq!(quiet.sources[&SourceId::Journal].status, SourceStatus::Disabled);
        assert_eq!(quiet.sources[&SourceId::Kubernetes].status, SourceStatus::Disabled);
        let d = quiet.daemon.as_ref().unwrap();
        assert_eq!((d.collections, d.rule_changes, d.rendered_unix), (3, 1, 12.0));
        assert!(d.journal.is_none() && d.kubernetes.is_none());

        // A journal finding raises it; a failed journal is a failed source and its finding; churn is a finding.
        let running = Journal::Running {
            error: None,
            note: None,
            findings: vec![warning(FindingId::Journal("cni.not-ready".into()))],
            counters: JournalCounters::default(),
        };
        assert_eq!(assemble(&b, inputs(running, None, &gate)).verdict, Verdict::Warning);
        let failed = assemble(&b, inputs(Journal::Failed("journalctl: not found".into()), None, &gate));
        assert_eq!(failed.sources[&SourceId::Journal].status, SourceStatus::Failed);
        assert!(failed.findings.iter().any(|f| f.id == FindingId::SourceFailed && f.remedy.contains("journalctl")));
        assert_ne!(failed.verdict, Verdict::Ok);
        let flips = ["nft ipv4 nat KUBE-SERVICES".to_string()];
        let churned = assemble(&b, Inputs { churn_flips: &flips, ..inputs(Journal::Disabled, None, &gate) });
        assert!(churned.finding(&FindingId::ServiceRoutingChurn).is_some());
        assert_eq!(churned.verdict, Verdict::Warning);
        // The base is left as it was: a re-render starts again from the collection.
        assert!(b.finding(&FindingId::ServiceRoutingChurn).is_none());
    }

    #[test]
    fn the_exporter_is_a_source_whose_failure_is_no_finding() {
        let b = base();
        let gate = NodeGate::Unmet(vec!["service-proxy: none".into()]);
        let down = ExporterStatus {
            up: Some(false),
            last_error: Some("401".into()),
            last_success_unix: Some(0.0),
            taint: Some(crate::model::kubernetes::TaintState::Present),
            ..ExporterStatus::default()
        };
        let r = assemble(&b, inputs(Journal::Disabled, Some(down), &gate));
        let k = &r.sources[&SourceId::Kubernetes];
        assert_eq!((k.status, k.error.as_deref()), (SourceStatus::Failed, Some("401")));
        assert_eq!(k.last_success.as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(r.verdict, Verdict::Ok, "no conclusion rests on the exporter");
        let g = r.node_gate.unwrap();
        assert_eq!((g.state, g.taint.as_deref()), (crate::report::GateState::Unmet, Some("present")));
        let before = ExporterStatus::default();
        let r = assemble(&b, inputs(Journal::Disabled, Some(before), &NodeGate::Met));
        assert_eq!(r.sources[&SourceId::Kubernetes].error.as_deref(), Some("no exchange with the API server yet"));
        // The last success in whole seconds; a time the clock cannot have given is none.
        for (t, text) in [(1_767_225_600.9, Some("2026-01-01T00:00:00Z")), (-1.0, None), (f64::NAN, None)] {
            let s = ExporterStatus { up: Some(true), last_success_unix: Some(t), ..ExporterStatus::default() };
            let r = assemble(&b, inputs(Journal::Disabled, Some(s), &NodeGate::Met));
            assert_eq!(r.sources[&SourceId::Kubernetes].last_success.as_deref(), text, "{t}");
        }
    }
}
