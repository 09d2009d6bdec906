//! The node taint (`[kubernetes] taint`): pure decisions on the Node's `spec.taints`. While the node gate is
//! unmet the Node carries `KEY:NoSchedule`; once it holds the taint goes; while it is unknown nothing changes.
//! Only the entry with the configured key and effect is ever added or removed: every other taint is written back
//! as it was read, and the patch carries the `resourceVersion` it was computed from, so a concurrent change
//! makes the API server answer 409 and the exporter reads the Node again instead of overwriting it.

use serde_json::{json, Value};

use crate::model::kubernetes::TaintState;
use crate::rules::gate::NodeGate;

use super::events::{EventKey, EventType};

/// The effect of the taint routewarden manages.
pub const EFFECT: &str = "NoSchedule";

/// The Node's taints as last read or written, with the version they belong to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeTaints {
    pub resource_version: String,
    pub taints: Vec<Value>,
}

fn is_ours(t: &Value, key: &str) -> bool {
    t["key"].as_str() == Some(key) && t["effect"].as_str() == Some(EFFECT)
}

impl NodeTaints {
    pub fn state(&self, key: &str) -> TaintState {
        if self.taints.iter().any(|t| is_ours(t, key)) {
            TaintState::Present
        } else {
            TaintState::Absent
        }
    }
}

/// Whether the gate asks for the taint: `None` when it is unknown (leave it as it is).
pub fn wanted(gate: &NodeGate) -> Option<bool> {
    match gate {
        NodeGate::Met => Some(false),
        NodeGate::Unmet(_) => Some(true),
        NodeGate::Unknown(_) => None,
    }
}

/// The JSON merge patch that makes the taint `present` (or not), or `None` when the Node already is so. The
/// whole list is written (a merge patch replaces lists), every other taint as it was read.
pub fn patch(node: &NodeTaints, key: &str, present: bool) -> Option<Value> {
    if (node.state(key) == TaintState::Present) == present {
        return None;
    }
    let mut taints: Vec<Value> = node.taints.iter().filter(|t| !is_ours(t, key)).cloned().collect();
    if present {
        taints.push(json!({ "key": key, "effect": EFFECT }));
    }
    Some(json!({
        "metadata": { "resourceVersion": node.resource_version },
        "spec": { "taints": taints },
    }))
}

/// The Event for a change the exporter made: Warning when it tainted the node, Normal when it removed the taint.
pub fn event(present: bool, key: &str, gate: &NodeGate) -> EventKey {
    if present {
        let why = match gate {
            NodeGate::Unmet(w) | NodeGate::Unknown(w) => w.join("; "),
            NodeGate::Met => String::new(),
        };
        EventKey {
            kind: EventType::Warning,
            reason: "ServiceRoutingNotReady".into(),
            message: super::conditions::bounded(&format!("tainted {key}:{EFFECT}: {why}")),
        }
    } else {
        EventKey {
            kind: EventType::Normal,
            reason: "ServiceRoutingReady".into(),
            message: format!("removed taint {key}:{EFFECT}: Service routing is programmed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "routewarden.io/service-routing-not-ready";

    fn node(taints: Value) -> NodeTaints {
        NodeTaints { resource_version: "41".into(), taints: taints.as_array().cloned().unwrap_or_default() }
    }

    #[test]
    fn adds_and_removes_only_its_own_taint_keeping_the_others_and_the_version() {
        let other = json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"});
        let same_key_other_effect = json!({"key": KEY, "effect": "NoExecute"});
        let n = node(json!([other, same_key_other_effect]));
        assert_eq!(n.state(KEY), TaintState::Absent);
        let p = patch(&n, KEY, true).unwrap();
        assert_eq!(p["metadata"]["resourceVersion"], "41");
        assert_eq!(p["spec"]["taints"], json!([other, same_key_other_effect, {"key": KEY, "effect": "NoSchedule"}]));
        assert_eq!(patch(&n, KEY, false), None, "nothing to remove");
        let tainted = node(p["spec"]["taints"].clone());
        assert_eq!(tainted.state(KEY), TaintState::Present);
        assert_eq!(patch(&tainted, KEY, true), None, "already there");
        let p = patch(&tainted, KEY, false).unwrap();
        assert_eq!(p["spec"]["taints"], json!([other, same_key_other_effect]), "only its own entry goes");
        // The last taint removed: an empty list, which a merge patch writes as such.
        let alone = node(json!([{"key": KEY, "effect": "NoSchedule", "timeAdded": "2026-01-01T00:00:00Z"}]));
        assert_eq!(patch(&alone, KEY, false).unwrap()["spec"]["taints"], json!([]));
    }

    #[test]
    fn an_unknown_gate_changes_nothing() {
        assert_eq!(wanted(&NodeGate::Met), Some(false));
        assert_eq!(wanted(&NodeGate::Unmet(vec!["no-conflict: x".into()])), Some(true));
        assert_eq!(wanted(&NodeGate::Unknown(vec!["service-proxy: source bpf failed".into()])), None);
    }

    #[test]
    fn events_say_what_was_done_and_why() {
        let e = event(true, KEY, &NodeGate::Unmet(vec!["service-proxy: no Service proxy programs Services".into()]));
        assert_eq!((e.kind, e.reason.as_str()), (EventType::Warning, "ServiceRoutingNotReady"));
        assert!(e.message.contains(KEY) && e.message.contains("no Service proxy"), "{}", e.message);
        let e = event(false, KEY, &NodeGate::Met);
        assert_eq!((e.kind, e.reason.as_str()), (EventType::Normal, "ServiceRoutingReady"));
    }
}
