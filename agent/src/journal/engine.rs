//! The rule engine: feeds entries through the rule set, keeps per-rule windows, raises and clears findings by
//! entry time (scan-journal) or wall-clock time (the daemon). Pure.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::entry::Entry;
use super::rules::RuleSet;
use crate::report::{Finding, FindingId};

#[derive(Debug, Default, Clone)]
struct RuleState {
    /// Match times (µs) within the window.
    hits: VecDeque<u64>,
    active_since: Option<u64>,
    last_match: u64,
    subjects: BTreeMap<String, u64>,
    sample: String,
}

/// One matched entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Match {
    pub realtime_usec: u64,
    pub unit: String,
    pub rule: String,
}

pub struct Engine {
    rules: RuleSet,
    state: Vec<RuleState>,
    /// Matches per rule id since start.
    pub counts: BTreeMap<String, u64>,
    /// Entries seen per unit since start.
    pub lines: BTreeMap<String, u64>,
    /// Time of the newest entry seen (µs).
    pub last_usec: u64,
    scratch: Vec<usize>,
}

const USEC: u64 = 1_000_000;

impl Engine {
    pub fn new(rules: RuleSet) -> Engine {
        let state = vec![RuleState::default(); rules.rules.len()];
        let counts = rules.rules.iter().filter(|c| c.rule.matches_lines()).map(|c| (c.rule.id.clone(), 0)).collect();
        Engine { rules, state, counts, lines: BTreeMap::new(), last_usec: 0, scratch: Vec::new() }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Feeds one entry; returns the ids of the rules it matched.
    pub fn feed(&mut self, e: &Entry) -> Vec<&str> {
        let mut ids = Vec::new();
        self.feed_with(e, |id| ids.push(id));
        ids.into_iter().map(|i| self.rules.rules[i].rule.id.as_str()).collect()
    }

    /// Feeds one entry, calling `on_match` with each matched rule's index; no allocation when nothing matches.
    pub fn feed_with(&mut self, e: &Entry, mut on_match: impl FnMut(usize)) {
        match self.lines.get_mut(&e.unit) {
            Some(n) => *n += 1,
            None => {
                self.lines.insert(e.unit.clone(), 1);
            }
        }
        let ts = e.realtime_usec;
        self.last_usec = self.last_usec.max(ts);
        let mut hits = std::mem::take(&mut self.scratch);
        self.rules.matches(&e.unit, &e.message, &mut hits);
        for &i in &hits {
            on_match(i);
            let c = &self.rules.rules[i];
            if let Some(n) = self.counts.get_mut(&c.rule.id) {
                *n += 1;
            }
            let window = c.rule.window_secs * USEC;
            let s = &mut self.state[i];
            s.hits.push_back(ts);
            while s.hits.front().is_some_and(|&t| ts.saturating_sub(t) > window) {
                s.hits.pop_front();
            }
            s.last_match = ts;
            s.sample = e.message.chars().take(300).collect();
            if let Some(m) = c.capture.iter().find_map(|re| re.captures(&e.message).and_then(|cap| cap.name("subject")))
            {
                *s.subjects.entry(m.as_str().to_string()).or_default() += 1;
            }
            if s.active_since.is_none() && s.hits.len() >= c.rule.threshold as usize {
                s.active_since = Some(ts);
            }
        }
        self.scratch = hits;
        for i in self.rules.clears(&e.unit, &e.message) {
            self.state[i] = RuleState::default();
        }
        self.advance(ts);
    }

    /// Moves time forward to `now` (µs): clears rules quiet for long enough, evaluates correlations.
    pub fn advance(&mut self, now: u64) {
        for (i, c) in self.rules.rules.iter().enumerate() {
            if !c.parts.is_empty() {
                continue;
            }
            let s = &mut self.state[i];
            let quiet = c.rule.clear_after_secs.unwrap_or(c.rule.window_secs) * USEC;
            if s.active_since.is_some() && now.saturating_sub(s.last_match) > quiet {
                *s = RuleState::default();
            }
        }
        for (i, c) in self.rules.rules.iter().enumerate() {
            if c.parts.is_empty() {
                continue;
            }
            let starts: Option<Vec<u64>> = c.parts.iter().map(|&p| self.state[p].active_since).collect();
            let s = &mut self.state[i];
            match starts.and_then(|v| v.into_iter().max()) {
                Some(start) if now.saturating_sub(start) >= c.rule.for_secs * USEC => {
                    s.active_since.get_or_insert(start);
                    s.last_match = now;
                }
                _ => *s = RuleState::default(),
            }
        }
    }

    /// Findings for every active rule.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for (i, c) in self.rules.rules.iter().enumerate() {
            let s = &self.state[i];
            let Some(since) = s.active_since else { continue };
            let r = &c.rule;
            let mut evidence = Vec::new();
            if c.parts.is_empty() {
                evidence.push(format!(
                    "{} matching journal lines in the last {} s, active since {}",
                    s.hits.len(),
                    r.window_secs,
                    rfc3339(since)
                ));
                if !s.subjects.is_empty() {
                    evidence.push(format!("about: {}", s.subjects.keys().cloned().collect::<Vec<_>>().join(", ")));
                }
                evidence.push(format!("last: {}", s.sample));
            } else {
                evidence.push(format!("{} all active together since {}", r.all_of.join(" and "), rfc3339(since)));
            }
            out.push(Finding {
                id: FindingId::from_name(&r.id),
                severity: r.severity,
                summary: r.summary.clone(),
                evidence,
                remedy: r.remedy.clone(),
            });
        }
        out
    }
}

fn rfc3339(usec: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(usec);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::rules::RuleSet;

    fn entry(secs: u64, unit: &str, message: &str) -> Entry {
        Entry {
            cursor: String::new(),
            realtime_usec: 1_790_000_000_000_000 + secs * USEC,
            unit: unit.into(),
            pid: 1,
            message: message.into(),
        }
    }

    const CNI: &str = r#"E1121 12:00:00.000000    1234 kubelet.go:2855] "Container runtime network not ready" networkReady="NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized""#;
    const API: &str = r#"E1121 12:00:00.000000    1234 reflector.go:147] k8s.io/client-go/informers/factory.go:159: Failed to watch *v1.Node: failed to list *v1.Node: Get "https://10.0.0.1:6443/api/v1/nodes?limit=500": dial tcp 10.0.0.1:6443: connect: connection refused"#;

    #[test]
    fn thresholds_windows_and_quiet_periods() {
        let mut e = Engine::new(RuleSet::with_defaults(Vec::new()).unwrap());
        assert_eq!(e.feed(&entry(0, "kubelet.service", CNI)), vec!["cni.not-ready"]);
        e.feed(&entry(10, "kubelet.service", CNI));
        assert!(e.findings().is_empty(), "2 of 3");
        e.feed(&entry(400, "kubelet.service", CNI));
        assert!(e.findings().is_empty(), "the first two fell out of the window");
        e.feed(&entry(410, "kubelet.service", CNI));
        e.feed(&entry(420, "kubelet.service", CNI));
        assert_eq!(e.findings().len(), 1);
        e.advance(entry(700, "", "").realtime_usec);
        assert_eq!(e.findings().len(), 1, "within the quiet period");
        e.advance(entry(800, "", "").realtime_usec);
        assert!(e.findings().is_empty(), "cleared after 300 s without a match");
        assert_eq!(e.counts["cni.not-ready"], 5);
    }

    #[test]
    fn other_units_do_not_match_and_clear_patterns_clear() {
        let mut e = Engine::new(RuleSet::with_defaults(Vec::new()).unwrap());
        assert!(e.feed(&entry(0, "sshd.service", CNI)).is_empty());
        e.feed(&entry(0, "kernel", "nfs: server 10.96.0.20 not responding, still trying"));
        let f = e.findings();
        assert_eq!(f[0].id.as_str(), "volume.mount-hang");
        assert!(f[0].evidence.iter().any(|l| l == "about: 10.96.0.20"), "{f:?}");
        e.feed(&entry(5, "kernel", "nfs: server 10.96.0.20 OK"));
        assert!(e.findings().is_empty());
    }

    #[test]
    fn cni_and_apiserver_together_for_minutes_is_a_deadlock() {
        let mut e = Engine::new(RuleSet::with_defaults(Vec::new()).unwrap());
        for t in (0..=180).step_by(10) {
            e.feed(&entry(t, "kubelet.service", CNI));
            e.feed(&entry(t + 1, "kubelet.service", API));
            let ids: Vec<String> = e.findings().into_iter().map(|f| f.id.to_string()).collect();
            let deadlock = ids.iter().any(|i| i == "cni-apiserver.deadlock");
            // CNI is active from t=20, the API rule from t=21 (third matches); the deadlock needs 120 s of both,
            // reached by the API line fed at t=141.
            assert_eq!(deadlock, t >= 140, "t={t}: {ids:?}");
        }
    }
}
