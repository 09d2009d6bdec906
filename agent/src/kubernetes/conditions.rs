//! Node conditions from a report, pure: which findings stand behind each of routewarden's four condition types,
//! what each condition should say, and which conditions a PATCH must carry (a change, a heartbeat, or a
//! condition a previous run left). The kubelet's own conditions are never named, so a strategic merge on
//! `status.conditions` (merge key `type`) leaves them alone.

use std::collections::BTreeMap;

use serde_json::{json, Value};

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

/// What a condition should say now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// Each condition type as the report has it: `True` with the worst standing warning or critical finding behind
/// it (reason its id in CamelCase, message its summary), else `False`. Info findings (such as "not a Kubernetes
/// node (yet)") never set a condition.
pub fn desired(report: &Report) -> BTreeMap<ConditionType, Desired> {
    let mut out = BTreeMap::new();
    for t in ConditionType::ALL {
        let worst = report
            .findings
            .iter()
            .filter(|f| f.severity >= Severity::Warning && ConditionType::of(&f.id) == Some(t))
            .max_by_key(|f| f.severity);
        let d = match worst {
            Some(f) => Desired { status: true, reason: camel_case(f.id.as_str()), message: bounded(&f.summary) },
            None => Desired {
                status: false,
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
    pub status: bool,
    pub reason: String,
    pub message: String,
    pub last_heartbeat: String,
    pub last_transition: String,
}

impl Condition {
    pub fn to_json(&self) -> Value {
        json!({
            "type": self.kind.as_str(),
            "status": if self.status { "True" } else { "False" },
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
                        status: status == "True",
                        reason: reason.clone(),
                        message: message.clone(),
                        last_heartbeat: String::new(),
                        last_transition: transition.clone(),
                    },
                );
            }
        }
    }

    /// The conditions to PATCH so the Node says `desired` at `now` (RFC 3339): every condition whose status,
    /// reason or message changed (its transition time moves only when the status does), a `True` condition the
    /// Node does not have yet, and with `heartbeat` every condition the Node has. A `False` condition is never
    /// added to a Node that does not have it, so a node that never had a problem keeps a clean condition list.
    pub fn plan(&self, desired: &BTreeMap<ConditionType, Desired>, now: &str, heartbeat: bool) -> Vec<Condition> {
        let mut out = Vec::new();
        for (kind, d) in desired {
            let current = self.on_node.get(kind);
            let transition = match current {
                None if !d.status => continue,
                Some(c) if c.status == d.status && !c.last_transition.is_empty() => c.last_transition.clone(),
                _ => now.to_string(),
            };
            let changed =
                current.is_none_or(|c| c.status != d.status || c.reason != d.reason || c.message != d.message);
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

    /// A report with these findings and nothing else.
    pub(in crate::kubernetes) fn report(findings: &[(FindingId, Severity, &str)]) -> Report {
        let mut r: Report = serde_json::from_value(json!({
            "schema_version": 2, "node": "n", "generated_at": "2026-12-02T00:00:00Z", "sources": {},
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
        let d = desired(&r);
        let c = &d[&ConditionType::ServiceRoutingConflict];
        assert!(c.status);
        assert_eq!(
            (c.reason.as_str(), c.message.as_str()),
            ("ServiceRoutingConflict", "kube-proxy and cilium both route")
        );
        assert!(!d[&ConditionType::ServiceRoutingMissing].status, "an info finding sets no condition");
        assert_eq!(d[&ConditionType::ServiceRoutingMissing].reason, "NoServiceRoutingMissing");
        assert!(!d[&ConditionType::StaleServiceRules].status);
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
        assert!(on.plan(&desired(&clean), "t0", false).is_empty());
        assert!(on.plan(&desired(&clean), "t0", true).is_empty(), "a heartbeat adds no False condition");
        // The conflict appears: one True condition, its transition now.
        let p = on.plan(&desired(&conflict), "t1", false);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].kind, p[0].status, p[0].last_transition.as_str()),
            (ConditionType::ServiceRoutingConflict, true, "t1")
        );
        let body = patch_body(&p);
        assert_eq!(body["status"]["conditions"][0]["type"], "ServiceRoutingConflict");
        assert_eq!(body["status"]["conditions"][0]["status"], "True");
        assert_eq!(body["status"]["conditions"][0]["reason"], "ServiceRoutingConflict");
        on.applied(&p);
        // Unchanged: nothing to send until the heartbeat, which keeps the transition time.
        assert!(on.plan(&desired(&conflict), "t2", false).is_empty());
        let beat = on.plan(&desired(&conflict), "t3", true);
        assert_eq!((beat[0].last_heartbeat.as_str(), beat[0].last_transition.as_str()), ("t3", "t1"));
        on.applied(&beat);
        // Resolved: False, with a new transition time.
        let p = on.plan(&desired(&clean), "t4", false);
        assert_eq!((p.len(), p[0].status, p[0].last_transition.as_str()), (1, false, "t4"));
        assert_eq!(p[0].reason, "NoServiceRoutingConflict");
    }

    #[test]
    fn conditions_a_previous_run_left_are_cleared_and_the_kubelets_ignored() {
        let mut on = Conditions::default();
        let row =
            |t: &str, s: &str| (t.to_string(), s.to_string(), "R".to_string(), "m".to_string(), "old".to_string());
        on.adopt(&[row("Ready", "True"), row("StaleServiceRules", "True"), row("ServiceRoutingMissing", "False")]);
        let p = on.plan(&desired(&report(&[])), "now", false);
        assert_eq!(p.len(), 2, "{p:?}");
        let stale = p.iter().find(|c| c.kind == ConditionType::StaleServiceRules).unwrap();
        assert_eq!((stale.status, stale.last_transition.as_str()), (false, "now"));
        let missing = p.iter().find(|c| c.kind == ConditionType::ServiceRoutingMissing).unwrap();
        assert_eq!(missing.last_transition, "old", "False stays False: no transition");
        assert!(!patch_body(&p).to_string().contains("Ready"), "the kubelet's conditions are never sent");
    }
}
