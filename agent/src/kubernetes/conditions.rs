//! Node conditions from a report, pure: which findings stand behind each of routewarden's four condition types,
//! what each condition should say, and which conditions a PATCH must carry (a change, a heartbeat, or a
//! condition a previous run left). The kubelet's own conditions are never named, so a strategic merge on
//! `status.conditions` (merge key `type`) leaves them alone.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::model::{SourceId, SourceStatus};
use crate::report::{FindingId, Report, Severity};

/// The longest condition or Event message sent; longer summaries are cut at a character boundary.
pub const MAX_MESSAGE: usize = 1024;

/// routewarden's Node condition types (a closed set: nothing else is ever patched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionType {
    ServiceRoutingConflict,
    ServiceRoutingMissing,
    StaleServiceRules,
    CniApiServerDeadlock,
}

impl ConditionType {
    pub const ALL: [ConditionType; 4] = [
        ConditionType::ServiceRoutingConflict,
        ConditionType::ServiceRoutingMissing,
        ConditionType::StaleServiceRules,
        ConditionType::CniApiServerDeadlock,
    ];

    /// The condition's `type` on the Node.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::ServiceRoutingConflict => "ServiceRoutingConflict",
            ConditionType::ServiceRoutingMissing => "ServiceRoutingMissing",
            ConditionType::StaleServiceRules => "StaleServiceRules",
            ConditionType::CniApiServerDeadlock => "CNIAPIServerDeadlock",
        }
    }

    pub fn from_name(name: &str) -> Option<ConditionType> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The condition a finding id stands behind, if any (README "Node conditions" has the same table).
    pub fn of(id: &FindingId) -> Option<ConditionType> {
        match id {
            FindingId::ServiceRoutingConflict | FindingId::ServiceRoutingChurn => {
                Some(ConditionType::ServiceRoutingConflict)
            }
            FindingId::ServiceRoutingMissing | FindingId::ServiceRoutingPartial => {
                Some(ConditionType::ServiceRoutingMissing)
            }
            FindingId::KubeProxyStaleRules => Some(ConditionType::StaleServiceRules),
            FindingId::Journal(name) if name == "cni-apiserver.deadlock" => Some(ConditionType::CniApiServerDeadlock),
            _ => None,
        }
    }

    /// The reason of the condition while it is `False`.
    fn clear_reason(self) -> String {
        format!("No{}", self.as_str())
    }
}

/// A finding id as a Kubernetes reason: `service-routing.conflict` is `ServiceRoutingConflict` (every run of
/// letters and digits capitalised, everything else dropped).
pub fn camel_case(id: &str) -> String {
    let mut out = String::new();
    for part in id.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() || !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert_str(0, "Finding");
    }
    out
}

/// `text` cut to at most [`MAX_MESSAGE`] bytes at a character boundary.
pub fn bounded(text: &str) -> String {
    if text.len() <= MAX_MESSAGE {
        return text.to_string();
    }
    let mut end = MAX_MESSAGE - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// A condition's `status`: `Unknown` when the sources that decide it were not read, so a failed source never
/// reads as an all-clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    pub fn from_name(name: &str) -> Status {
        match name {
            "True" => Status::True,
            "False" => Status::False,
            _ => Status::Unknown,
        }
    }
}

/// What a condition should say now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub status: Status,
    pub reason: String,
    pub message: String,
}

/// The collected sources the Service-routing conditions rest on (the rules' decisive sources).
const ROUTING_SOURCES: [SourceId; 6] =
    [SourceId::IptablesLegacy, SourceId::Nftables, SourceId::Links, SourceId::Ipvs, SourceId::Bpf, SourceId::Processes];

/// Why the sources behind condition `t` do not allow a `False`, if they do not: a routing source failed (or a
/// warning `coverage.incomplete` stands: one was not read), or, for the deadlock, the journal source is not ok
/// or has not finished replaying what it read before a restart (`journal_settled`).
fn unknown_because(report: &Report, t: ConditionType, journal_settled: bool) -> Option<(&'static str, String)> {
    let status = |id: SourceId| report.sources.get(&id).map(|s| s.status);
    if t == ConditionType::CniApiServerDeadlock {
        return match status(SourceId::Journal) {
            Some(SourceStatus::Ok) if journal_settled => None,
            Some(SourceStatus::Ok) => {
                Some(("JournalReplaying", "the journal is still being replayed after a restart".to_string()))
            }
            _ => Some(("SourcesFailed", "the journal source was not read: whether this stands is unknown".into())),
        };
    }
    let failed: Vec<&str> = ROUTING_SOURCES
        .into_iter()
        .filter(|id| status(*id) == Some(SourceStatus::Failed))
        .map(|id| id.as_str())
        .collect();
    if !failed.is_empty() {
        return Some((
            "SourcesFailed",
            format!("sources failed ({}): whether this stands is unknown", failed.join(", ")),
        ));
    }
    let incomplete =
        report.findings.iter().any(|f| f.id == FindingId::CoverageIncomplete && f.severity >= Severity::Warning);
    incomplete.then(|| {
        ("CoverageIncomplete", "a source the decision rests on was not read: whether this stands is unknown".into())
    })
}

/// Each condition type as the report has it: `True` with the worst standing warning or critical finding behind
/// it (reason its id in CamelCase, message its summary; among equal severities the first, so the choice is
/// stable), else `Unknown` when the sources behind it were not read, else `False`. Info findings (such as "not a
/// Kubernetes node (yet)") never set a condition. `journal_settled`: the journal follower has finished replaying
/// after a restart (until then the deadlock condition is `Unknown`, so a restart neither clears nor re-raises it).
pub fn desired(report: &Report, journal_settled: bool) -> BTreeMap<ConditionType, Desired> {
    let mut out = BTreeMap::new();
    for t in ConditionType::ALL {
        let mut worst: Option<&crate::report::Finding> = None;
        for f in
            report.findings.iter().filter(|f| f.severity >= Severity::Warning && ConditionType::of(&f.id) == Some(t))
        {
            if worst.is_none_or(|w| f.severity > w.severity) {
                worst = Some(f);
            }
        }
        let d = match (worst, unknown_because(report, t, journal_settled)) {
            (Some(f), _) => {
                Desired { status: Status::True, reason: camel_case(f.id.as_str()), message: bounded(&f.summary) }
            }
            (None, Some((reason, message))) => Desired { status: Status::Unknown, reason: reason.into(), message },
            (None, None) => Desired {
                status: Status::False,
                reason: t.clear_reason(),
                message: "routewarden has no finding of this kind on the node".into(),
            },
        };
        out.insert(t, d);
    }
    out
}

/// One condition as sent (and, once the PATCH succeeded, as the Node has it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: ConditionType,
    pub status: Status,
    pub reason: String,
    pub message: String,
    pub last_heartbeat: String,
    pub last_transition: String,
}

impl Condition {
    pub fn to_json(&self) -> Value {
        json!({
            "type": self.kind.as_str(),
            "status": self.status.as_str(),
            "reason": self.reason,
            "message": self.message,
            "lastHeartbeatTime": self.last_heartbeat,
            "lastTransitionTime": self.last_transition,
        })
    }
}

/// The conditions routewarden knows the Node to have: those a previous run left (read at start) and those this
/// run has patched.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    on_node: BTreeMap<ConditionType, Condition>,
}

impl Conditions {
    /// Records the Node's conditions as read from the API server; other types (the kubelet's) are ignored.
    /// `conditions` are `(type, status, reason, message, lastTransitionTime)`.
    pub fn adopt(&mut self, conditions: &[(String, String, String, String, String)]) {
        self.on_node.clear();
        for (kind, status, reason, message, transition) in conditions {
            if let Some(kind) = ConditionType::from_name(kind) {
                self.on_node.insert(
                    kind,
                    Condition {
                        kind,
                        status: Status::from_name(status),
                        reason: reason.clone(),
                        message: message.clone(),
                        last_heartbeat: String::new(),
                        last_transition: transition.clone(),
                    },
                );
            }
        }
    }

    /// The conditions to PATCH so the Node says `desired` at `now` (RFC 3339): every condition whose status or
    /// reason changed (its transition time moves only when the status does), a `True` condition the Node does not
    /// have yet, and with `heartbeat` every condition the Node has. A change of the message alone (a summary's
    /// live counts, such as "N services") waits for the heartbeat, so Service churn never re-patches the Node.
    /// A `False` or `Unknown` condition is never added to a Node that does not have it, so a node that never had
    /// a problem keeps a clean condition list.
    pub fn plan(&self, desired: &BTreeMap<ConditionType, Desired>, now: &str, heartbeat: bool) -> Vec<Condition> {
        let mut out = Vec::new();
        for (kind, d) in desired {
            let current = self.on_node.get(kind);
            let transition = match current {
                None if d.status != Status::True => continue,
                Some(c) if c.status == d.status && !c.last_transition.is_empty() => c.last_transition.clone(),
                _ => now.to_string(),
            };
            let changed = current.is_none_or(|c| c.status != d.status || c.reason != d.reason);
            if changed || heartbeat {
                out.push(Condition {
                    kind: *kind,
                    status: d.status,
                    reason: d.reason.clone(),
                    message: d.message.clone(),
                    last_heartbeat: now.to_string(),
                    last_transition: transition,
                });
            }
        }
        out
    }

    /// Records conditions the API server accepted.
    pub fn applied(&mut self, sent: &[Condition]) {
        for c in sent {
            self.on_node.insert(c.kind, c.clone());
        }
    }

    pub fn get(&self, kind: ConditionType) -> Option<&Condition> {
        self.on_node.get(&kind)
    }
}

/// The strategic-merge patch body for `/api/v1/nodes/NAME/status`.
pub fn patch_body(conditions: &[Condition]) -> Value {
    json!({ "status": { "conditions": conditions.iter().map(Condition::to_json).collect::<Vec<_>>() } })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::report::Finding;

    /// A report with these findings and nothing else (the routing sources and the journal read).
    pub(in crate::kubernetes) fn report(findings: &[(FindingId, Severity, &str)]) -> Report {
        let ok = json!({"status": "ok", "error": null, "duration_ms": 1});
        let mut r: Report = serde_json::from_value(json!({
            "schema_version": 2, "node": "n", "generated_at": "2026-12-02T00:00:00Z",
            "sources": {"iptables-legacy": ok, "nftables": ok, "links": ok, "ipvs": ok, "bpf": ok,
                "processes": ok, "journal": ok},
            "dataplane": {"kube_proxy": {"mode": "none", "backend": null, "services": 0, "running": false,
                "pids": [], "stale": false}, "cilium": {"present": false, "agent_running": false,
                "kube_proxy_replacement": null, "socket_lb": false, "bpf_nodeport": false, "xdp_nodeport": false,
                "services": 0, "external_services": 0}},
            "findings": [], "verdict": "ok", "certificates": []
        }))
        .unwrap();
        r.findings = findings
            .iter()
            .map(|(id, severity, summary)| Finding {
                id: id.clone(),
                severity: *severity,
                summary: summary.to_string(),
                evidence: vec![],
                remedy: String::new(),
            })
            .collect();
        r
    }

    #[test]
    fn finding_ids_become_camel_case_reasons() {
        assert_eq!(camel_case("service-routing.conflict"), "ServiceRoutingConflict");
        assert_eq!(camel_case("cni-apiserver.deadlock"), "CniApiserverDeadlock");
        assert_eq!(camel_case("kube-proxy.stale-rules"), "KubeProxyStaleRules");
        assert_eq!(camel_case("9lives"), "Finding9lives");
        assert_eq!(camel_case(""), "Finding");
    }

    #[test]
    fn each_condition_follows_its_worst_standing_finding() {
        let r = report(&[
            (FindingId::ServiceRoutingChurn, Severity::Warning, "chains flip"),
            (FindingId::ServiceRoutingConflict, Severity::Critical, "kube-proxy and cilium both route"),
            (FindingId::ServiceRoutingMissing, Severity::Info, "not a Kubernetes node (yet)"),
            (FindingId::Journal("cni-apiserver.deadlock".into()), Severity::Critical, "CNI and API server wait"),
            (FindingId::CertificateExpired, Severity::Critical, "expired"),
        ]);
        let d = desired(&r, true);
        let c = &d[&ConditionType::ServiceRoutingConflict];
        assert_eq!(c.status, Status::True);
        assert_eq!(
            (c.reason.as_str(), c.message.as_str()),
            ("ServiceRoutingConflict", "kube-proxy and cilium both route")
        );
        assert_eq!(d[&ConditionType::ServiceRoutingMissing].status, Status::False, "an info finding sets no condition");
        assert_eq!(d[&ConditionType::ServiceRoutingMissing].reason, "NoServiceRoutingMissing");
        assert_eq!(d[&ConditionType::StaleServiceRules].status, Status::False);
        assert_eq!(d[&ConditionType::CniApiServerDeadlock].reason, "CniApiserverDeadlock");
        assert_eq!(d.len(), 4, "only routewarden's four types");
    }

    #[test]
    fn long_summaries_are_cut_at_a_character_boundary() {
        let long = "é".repeat(2000);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_MESSAGE && cut.ends_with("..."), "{}", cut.len());
    }

    #[test]
    fn plan_sets_true_clears_false_keeps_transition_times_and_beats() {
        let conflict = report(&[(FindingId::ServiceRoutingConflict, Severity::Critical, "both")]);
        let clean = report(&[]);
        let mut on = Conditions::default();
        // A node that never had a problem gets no condition at all.
        assert!(on.plan(&desired(&clean, true), "t0", false).is_empty());
        assert!(on.plan(&desired(&clean, true), "t0", true).is_empty(), "a heartbeat adds no False condition");
        // The conflict appears: one True condition, its transition now.
        let p = on.plan(&desired(&conflict, true), "t1", false);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].kind, p[0].status, p[0].last_transition.as_str()),
            (ConditionType::ServiceRoutingConflict, Status::True, "t1")
        );
        let body = patch_body(&p);
        assert_eq!(body["status"]["conditions"][0]["type"], "ServiceRoutingConflict");
        assert_eq!(body["status"]["conditions"][0]["status"], "True");
        assert_eq!(body["status"]["conditions"][0]["reason"], "ServiceRoutingConflict");
        on.applied(&p);
        // Unchanged: nothing to send until the heartbeat, which keeps the transition time.
        assert!(on.plan(&desired(&conflict, true), "t2", false).is_empty());
        let beat = on.plan(&desired(&conflict, true), "t3", true);
        assert_eq!((beat[0].last_heartbeat.as_str(), beat[0].last_transition.as_str()), ("t3", "t1"));
        on.applied(&beat);
        // Resolved: False, with a new transition time.
        let p = on.plan(&desired(&clean, true), "t4", false);
        assert_eq!((p.len(), p[0].status, p[0].last_transition.as_str()), (1, Status::False, "t4"));
        assert_eq!(p[0].reason, "NoServiceRoutingConflict");
    }

    #[test]
    fn conditions_a_previous_run_left_are_cleared_and_the_kubelets_ignored() {
        let mut on = Conditions::default();
        let row =
            |t: &str, s: &str| (t.to_string(), s.to_string(), "R".to_string(), "m".to_string(), "old".to_string());
        on.adopt(&[row("Ready", "True"), row("StaleServiceRules", "True"), row("ServiceRoutingMissing", "False")]);
        let p = on.plan(&desired(&report(&[]), true), "now", false);
        assert_eq!(p.len(), 2, "{p:?}");
        let stale = p.iter().find(|c| c.kind == ConditionType::StaleServiceRules).unwrap();
        assert_eq!((stale.status, stale.last_transition.as_str()), (Status::False, "now"));
        let missing = p.iter().find(|c| c.kind == ConditionType::ServiceRoutingMissing).unwrap();
        assert_eq!(missing.last_transition, "old", "False stays False: no transition");
        assert!(!patch_body(&p).to_string().contains("Ready"), "the kubelet's conditions are never sent");
    }

    #[test]
    fn a_summary_with_new_live_counts_waits_for_the_heartbeat() {
        let at = |n: u32| {
            report(&[(FindingId::ServiceRoutingConflict, Severity::Critical, &format!("both route {n} services"))])
        };
        let mut on = Conditions::default();
        let p = on.plan(&desired(&at(40), true), "t1", false);
        on.applied(&p);
        assert!(on.plan(&desired(&at(41), true), "t2", false).is_empty(), "a Service change re-patched the Node");
        let beat = on.plan(&desired(&at(41), true), "t3", true);
        assert_eq!(
            (beat.len(), beat[0].message.as_str(), beat[0].last_transition.as_str()),
            (1, "both route 41 services", "t1")
        );
        on.applied(&beat);
        // A change of reason (another finding behind the condition) goes at once.
        let churn = report(&[(FindingId::ServiceRoutingChurn, Severity::Warning, "chains flip")]);
        let p = on.plan(&desired(&churn, true), "t4", false);
        assert_eq!((p.len(), p[0].reason.as_str()), (1, "ServiceRoutingChurn"));
    }

    #[test]
    fn failed_sources_make_a_condition_unknown_not_false() {
        let mut on = Conditions::default();
        let conflict = report(&[(FindingId::ServiceRoutingConflict, Severity::Critical, "both")]);
        on.applied(&on.plan(&desired(&conflict, true), "t1", false));
        // The conflict finding is gone because iptables could not be read: Unknown, not an all-clear.
        let mut blind = report(&[]);
        blind.sources.get_mut(&SourceId::IptablesLegacy).unwrap().status = SourceStatus::Failed;
        let d = desired(&blind, true);
        let c = &d[&ConditionType::ServiceRoutingConflict];
        assert_eq!((c.status, c.reason.as_str()), (Status::Unknown, "SourcesFailed"));
        assert!(c.message.contains("iptables-legacy"), "{c:?}");
        let p = on.plan(&d, "t2", false);
        assert_eq!((p.len(), p[0].status, p[0].last_transition.as_str()), (1, Status::Unknown, "t2"));
        assert_eq!(patch_body(&p)["status"]["conditions"][0]["status"], "Unknown");
        // A decisive source not read (a warning coverage.incomplete) is Unknown too.
        let partial = report(&[(FindingId::CoverageIncomplete, Severity::Warning, "not looked at: bpf")]);
        assert_eq!(desired(&partial, true)[&ConditionType::StaleServiceRules].reason, "CoverageIncomplete");
        assert_eq!(desired(&partial, true)[&ConditionType::StaleServiceRules].status, Status::Unknown);
        // A standing finding is still True whatever else failed.
        let mut seen = conflict.clone();
        seen.sources.get_mut(&SourceId::Bpf).unwrap().status = SourceStatus::Failed;
        assert_eq!(desired(&seen, true)[&ConditionType::ServiceRoutingConflict].status, Status::True);
        // Unknown is never added to a Node that does not have the condition.
        assert!(Conditions::default().plan(&d, "t2", true).is_empty());
    }

    #[test]
    fn the_deadlock_stays_unknown_until_the_journal_is_read_and_replayed() {
        let deadlock = FindingId::Journal("cni-apiserver.deadlock".into());
        let mut on = Conditions::default();
        on.adopt(&[(
            "CNIAPIServerDeadlock".into(),
            "True".into(),
            "CniApiserverDeadlock".into(),
            "m".into(),
            "old".into(),
        )]);
        // Just restarted: the journal is being replayed and the finding not rebuilt yet. No all-clear.
        let d = desired(&report(&[]), false);
        assert_eq!(d[&ConditionType::CniApiServerDeadlock].status, Status::Unknown);
        assert_eq!(d[&ConditionType::CniApiServerDeadlock].reason, "JournalReplaying");
        assert_eq!(d[&ConditionType::ServiceRoutingConflict].status, Status::False, "the replay decides only this one");
        let mut down = report(&[]);
        down.sources.get_mut(&SourceId::Journal).unwrap().status = SourceStatus::Failed;
        assert_eq!(desired(&down, true)[&ConditionType::CniApiServerDeadlock].status, Status::Unknown);
        down.sources.remove(&SourceId::Journal);
        assert_eq!(desired(&down, true)[&ConditionType::CniApiServerDeadlock].status, Status::Unknown);
        // Replayed and the finding back: True; replayed and gone: False.
        let back = report(&[(deadlock, Severity::Critical, "CNI and API server wait")]);
        assert_eq!(desired(&back, false)[&ConditionType::CniApiServerDeadlock].status, Status::True);
        let p = on.plan(&desired(&report(&[]), true), "t", false);
        assert_eq!((p.len(), p[0].status), (1, Status::False));
    }
}
