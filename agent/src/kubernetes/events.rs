//! Events from finding transitions, pure: a `Warning` when a critical or warning finding is raised (or changes
//! severity), a `Normal` when it clears; de-duplicated and rate-limited the way the kubelet's event recorder does
//! (the same source, object, type and reason within the cache is one Event whose `count`, `lastTimestamp` and
//! `message` a PATCH moves, so a summary's live counts never make a new Event; a token bucket per node bounds
//! the rate).

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Value};

use super::conditions::{bounded, camel_case};
use crate::report::{FindingId, Report, Severity};

/// Distinct Events remembered for de-duplication (the kubelet keeps 4096 across all objects; one node needs few).
pub const CACHE_SIZE: usize = 256;
/// Events sent in a burst before the rate limit applies (the kubelet's spam filter: 25).
pub const BURST: f64 = 25.0;
/// Seconds per token after the burst (the kubelet's: one per 5 minutes).
pub const REFILL_SECS: f64 = 300.0;

/// `type` of a core/v1 Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    Warning,
    Normal,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Warning => "Warning",
            EventType::Normal => "Normal",
        }
    }
}

/// An Event to send: its type, reason and message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey {
    pub kind: EventType,
    pub reason: String,
    pub message: String,
}

/// What makes two Events the same: type and reason (the node, its uid and the source component are the
/// exporter's own). The message is not part of it: it carries live counts.
type Same = (EventType, String);

impl EventKey {
    fn same(&self) -> Same {
        (self.kind, self.reason.clone())
    }
}

/// The warning and critical findings of a report, by id, with severity and summary.
pub type Standing = BTreeMap<FindingId, (Severity, String)>;

pub fn standing(report: &Report) -> Standing {
    report
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .map(|f| (f.id.clone(), (f.severity, f.summary.clone())))
        .collect()
}

/// The Events for going from `before` to `now`: raised (new, or a different severity) and cleared findings.
pub fn transitions(before: &Standing, now: &Standing) -> Vec<EventKey> {
    let mut out = Vec::new();
    for (id, (severity, summary)) in now {
        if before.get(id).map(|(s, _)| s) != Some(severity) {
            out.push(EventKey {
                kind: EventType::Warning,
                reason: camel_case(id.as_str()),
                message: bounded(&format!("{} ({}): {summary}", id, severity.as_str())),
            });
        }
    }
    for (id, (_, summary)) in before {
        if !now.contains_key(id) {
            out.push(EventKey {
                kind: EventType::Normal,
                reason: format!("{}Cleared", camel_case(id.as_str())),
                message: bounded(&format!("{id} cleared (was: {summary})")),
            });
        }
    }
    out
}

/// A token bucket: `BURST` tokens, one more every `REFILL_SECS`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    tokens: f64,
    at: f64,
}

impl RateLimit {
    pub fn new(now: f64) -> RateLimit {
        RateLimit { tokens: BURST, at: now }
    }

    /// Takes a token at `now` (Unix seconds), if one is left.
    pub fn admit(&mut self, now: f64) -> bool {
        let elapsed = (now - self.at).max(0.0);
        self.tokens = (self.tokens + elapsed / REFILL_SECS).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An Event already on the API server.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub name: String,
    pub count: u32,
    pub first_timestamp: String,
}

/// What to send for an Event.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// POST a new Event with this body.
    Create { name: String, body: Value },
    /// PATCH (strategic merge) the existing Event `name`.
    Bump { name: String, count: u32, body: Value },
}

/// The involved Node and the exporter's identity.
#[derive(Debug, Clone)]
pub struct Origin {
    pub node: String,
    pub uid: Option<String>,
}

/// The de-duplication cache: Event keys to the Event that carries them, oldest evicted first.
#[derive(Debug, Default)]
pub struct Dedup {
    recorded: BTreeMap<Same, Recorded>,
    order: VecDeque<Same>,
}

impl Dedup {
    /// The request for `key` at `now` (RFC 3339); `seq` makes new Event names unique (`<node>.<hex>`, as the
    /// kubelet names its Events).
    pub fn action(&self, origin: &Origin, key: &EventKey, now: &str, seq: u64) -> Action {
        match self.recorded.get(&key.same()) {
            Some(r) => {
                let count = r.count.saturating_add(1);
                let body = json!({ "count": count, "lastTimestamp": now, "message": key.message });
                Action::Bump { name: r.name.clone(), count, body }
            }
            None => {
                let name = format!("{}.{seq:x}", origin.node);
                let body = event_body(origin, key, &name, now);
                Action::Create { name, body }
            }
        }
    }

    /// Records that the API server accepted `action` for `key`.
    pub fn sent(&mut self, key: &EventKey, action: &Action, now: &str) {
        let rec = match action {
            Action::Create { name, .. } => Recorded { name: name.clone(), count: 1, first_timestamp: now.to_string() },
            Action::Bump { name, count, .. } => {
                let first = self.recorded.get(&key.same()).map(|r| r.first_timestamp.clone()).unwrap_or_default();
                Recorded { name: name.clone(), count: *count, first_timestamp: first }
            }
        };
        if self.recorded.insert(key.same(), rec).is_none() {
            self.order.push_back(key.same());
        }
        while self.order.len() > CACHE_SIZE {
            if let Some(old) = self.order.pop_front() {
                self.recorded.remove(&old);
            }
        }
    }

    /// Forgets `key` (its Event is gone from the API server, e.g. expired after the Event TTL).
    pub fn forget(&mut self, key: &EventKey) {
        let same = key.same();
        self.recorded.remove(&same);
        self.order.retain(|k| *k != same);
    }

    pub fn len(&self) -> usize {
        self.recorded.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recorded.is_empty()
    }
}

/// A core/v1 Event about the Node.
pub fn event_body(origin: &Origin, key: &EventKey, name: &str, now: &str) -> Value {
    let mut involved = json!({ "apiVersion": "v1", "kind": "Node", "name": origin.node });
    if let Some(uid) = &origin.uid {
        involved["uid"] = json!(uid);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": { "name": name, "namespace": "default" },
        "involvedObject": involved,
        "reason": key.reason,
        "message": key.message,
        "type": key.kind.as_str(),
        "source": { "component": "routewarden", "host": origin.node },
        "reportingComponent": "routewarden",
        "reportingInstance": origin.node,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(rows: &[(FindingId, Severity, &str)]) -> Standing {
        rows.iter().map(|(id, s, m)| (id.clone(), (*s, m.to_string()))).collect()
    }

    #[test]
    fn raised_changed_and_cleared_findings_are_events() {
        let none = st(&[]);
        let warn = st(&[(FindingId::KubeProxyStaleRules, Severity::Warning, "stale")]);
        let crit = st(&[(FindingId::KubeProxyStaleRules, Severity::Critical, "stale")]);
        let raised = transitions(&none, &warn);
        assert_eq!(raised.len(), 1);
        assert_eq!((raised[0].kind, raised[0].reason.as_str()), (EventType::Warning, "KubeProxyStaleRules"));
        assert!(raised[0].message.contains("stale"), "{raised:?}");
        assert!(transitions(&warn, &warn).is_empty(), "no transition, no event");
        assert_eq!(transitions(&warn, &crit)[0].kind, EventType::Warning, "a severity change is a transition");
        let cleared = transitions(&warn, &none);
        assert_eq!((cleared[0].kind, cleared[0].reason.as_str()), (EventType::Normal, "KubeProxyStaleRulesCleared"));
    }

    #[test]
    fn the_same_key_bumps_count_and_last_timestamp_instead_of_a_new_event() {
        let origin = Origin { node: "node-a".into(), uid: Some("u-1".into()) };
        let key = EventKey { kind: EventType::Warning, reason: "ServiceRoutingConflict".into(), message: "m".into() };
        let mut d = Dedup::default();
        let a = d.action(&origin, &key, "t1", 7);
        let Action::Create { name, body } = &a else { panic!("{a:?}") };
        assert_eq!(name, "node-a.7");
        assert_eq!(body["involvedObject"], json!({"apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": "u-1"}));
        assert_eq!(body["metadata"]["namespace"], "default");
        assert_eq!(body["source"], json!({"component": "routewarden", "host": "node-a"}));
        assert_eq!((body["type"].as_str(), body["count"].as_u64()), (Some("Warning"), Some(1)));
        d.sent(&key, &a, "t1");
        let b = d.action(&origin, &key, "t2", 8);
        assert_eq!(
            b,
            Action::Bump {
                name: "node-a.7".into(),
                count: 2,
                body: json!({"count": 2, "lastTimestamp": "t2", "message": "m"})
            }
        );
        d.sent(&key, &b, "t2");
        let Action::Bump { count, .. } = d.action(&origin, &key, "t3", 9) else { panic!() };
        assert_eq!(count, 3);
        // The same finding with new live counts in its summary is the same Event: the bump carries the message.
        let recount = EventKey { message: "kube-proxy and cilium both route 41 services".into(), ..key.clone() };
        let Action::Bump { count, body, .. } = d.action(&origin, &recount, "t3", 9) else {
            panic!("a new message alone made a new Event")
        };
        assert_eq!((count, body["message"].as_str()), (3, Some("kube-proxy and cilium both route 41 services")));
        let other = EventKey { reason: "ServiceRoutingChurn".into(), ..key.clone() };
        assert!(matches!(d.action(&origin, &other, "t3", 9), Action::Create { .. }), "another reason, another Event");
        d.forget(&key);
        assert!(matches!(d.action(&origin, &key, "t4", 10), Action::Create { .. }));
    }

    #[test]
    fn the_cache_is_bounded() {
        let origin = Origin { node: "n".into(), uid: None };
        let mut d = Dedup::default();
        for i in 0..(CACHE_SIZE + 50) {
            let key = EventKey { kind: EventType::Normal, reason: format!("R{i}"), message: format!("{i}") };
            let a = d.action(&origin, &key, "t", i as u64);
            d.sent(&key, &a, "t");
        }
        assert_eq!(d.len(), CACHE_SIZE);
        assert!(
            d.action(&origin, &EventKey { kind: EventType::Normal, reason: "R0".into(), message: "0".into() }, "t", 1)
                .eq(&Action::Create {
                    name: "n.1".into(),
                    body: event_body(
                        &origin,
                        &EventKey { kind: EventType::Normal, reason: "R0".into(), message: "0".into() },
                        "n.1",
                        "t"
                    )
                }),
            "the oldest was evicted"
        );
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_one_per_refill() {
        let mut r = RateLimit::new(1000.0);
        let admitted = (0..40).filter(|_| r.admit(1000.0)).count();
        assert_eq!(admitted, BURST as usize);
        assert!(!r.admit(1000.0 + REFILL_SECS / 2.0));
        assert!(r.admit(1000.0 + REFILL_SECS + 1.0));
        assert!(!r.admit(1000.0 + REFILL_SECS + 2.0));
    }
}
