//! The rule engine: feeds entries through the rule set, keeps per-rule windows, raises and clears findings by
//! entry time (scan-journal) or wall-clock time (the daemon), and keeps every episode (a finding's span from its
//! start to its last match) for `scan-journal`'s history. A rule with `for_secs`, and each part of a correlation,
//! counts only while it keeps recurring: silence longer than `recur_secs` breaks the run. Pure.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::entry::Entry;
use super::rules::RuleSet;
use crate::model::journal::Episode;
use crate::model::{Severity, Timestamp};
use crate::report::{Finding, FindingId};

/// An episode not yet closed.
#[derive(Debug, Default, Clone)]
struct Open {
    start: u64,
    count: u64,
    sample: String,
}

#[derive(Debug, Default, Clone)]
struct RuleState {
    /// Match times (µs) within the window.
    hits: VecDeque<u64>,
    active_since: Option<u64>,
    last_match: Option<u64>,
    /// Start of the current run of matches (or, for a correlation, of all parts recurring together) with no
    /// silence longer than `recur_secs`.
    recurring_since: Option<u64>,
    /// Matches (of a correlation: of its parts) since `recurring_since`.
    run_count: u64,
    subjects: BTreeMap<String, u64>,
    sample: String,
    episode: Option<Open>,
}

/// How many closed episodes are kept (the oldest go first; `episodes_dropped` counts them).
pub const MAX_EPISODES: usize = 10_000;

/// Samples are cut to this many characters.
const SAMPLE_CHARS: usize = 300;

/// The label that counts lines of units no rule names, so the per-unit counters stay bounded.
pub const OTHER_UNIT: &str = "other";

pub struct Engine {
    rules: RuleSet,
    state: Vec<RuleState>,
    /// Matches per rule id since start.
    pub counts: BTreeMap<String, u64>,
    /// Entries seen per writer since start: the writers the rules name, `kernel`, and [`OTHER_UNIT`].
    pub lines: BTreeMap<String, u64>,
    /// Time of the newest entry seen (µs).
    pub last_usec: u64,
    /// Whether fed entries count in `counts` and `lines` (off while replaying what was already counted).
    counting: bool,
    writers: BTreeSet<String>,
    episodes: VecDeque<Episode>,
    pub episodes_dropped: u64,
    /// Time the engine was last advanced to (µs).
    now: u64,
    scratch: Vec<usize>,
}

const USEC: u64 = 1_000_000;

impl Engine {
    pub fn new(rules: RuleSet) -> Engine {
        let state = vec![RuleState::default(); rules.rules.len()];
        let counts = rules.rules.iter().filter(|c| c.rule.matches_lines()).map(|c| (c.rule.id.clone(), 0)).collect();
        let mut writers: BTreeSet<String> = rules.writers().into_iter().collect();
        writers.insert("kernel".into());
        Engine {
            rules,
            state,
            counts,
            lines: BTreeMap::new(),
            last_usec: 0,
            counting: true,
            writers,
            episodes: VecDeque::new(),
            episodes_dropped: 0,
            now: 0,
            scratch: Vec::new(),
        }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Turns counting of fed entries (`counts`, `lines`) on or off; rule state is kept either way.
    pub fn set_counting(&mut self, on: bool) {
        self.counting = on;
    }

    /// Feeds one entry; returns the ids of the rules it matched.
    pub fn feed(&mut self, e: &Entry) -> Vec<&str> {
        let mut ids = Vec::new();
        self.feed_with(e, |id| ids.push(id));
        ids.into_iter().map(|i| self.rules.rules[i].rule.id.as_str()).collect()
    }

    /// Feeds one entry, calling `on_match` with each matched rule's index; no allocation when nothing matches.
    pub fn feed_with(&mut self, e: &Entry, mut on_match: impl FnMut(usize)) {
        if self.counting {
            let unit = if self.writers.contains(&e.unit) { e.unit.as_str() } else { OTHER_UNIT };
            match self.lines.get_mut(unit) {
                Some(n) => *n += 1,
                None => {
                    self.lines.insert(unit.to_string(), 1);
                }
            }
        }
        let ts = e.realtime_usec;
        self.last_usec = self.last_usec.max(ts);
        let mut hits = std::mem::take(&mut self.scratch);
        self.rules.matches(&e.unit, &e.message, &mut hits);
        if !hits.is_empty() {
            // Silence up to this entry is judged before its matches refresh the rules.
            self.advance(ts);
        }
        for &i in &hits {
            on_match(i);
            self.record(i, ts, &e.message);
        }
        self.scratch = hits;
        for i in self.rules.clears(&e.unit, &e.message) {
            self.close(i);
            self.state[i] = RuleState::default();
        }
        self.advance(ts);
    }

    /// One match of rule `i` at `ts`.
    fn record(&mut self, i: usize, ts: u64, message: &str) {
        let c = &self.rules.rules[i];
        if self.counting {
            if let Some(n) = self.counts.get_mut(&c.rule.id) {
                *n += 1;
            }
        }
        let (window, recur) = (c.rule.window_secs * USEC, c.rule.recur_secs() * USEC);
        let s = &mut self.state[i];
        s.hits.push_back(ts);
        while s.hits.front().is_some_and(|&t| ts.saturating_sub(t) > window) {
            s.hits.pop_front();
        }
        if s.last_match.is_none_or(|l| ts.saturating_sub(l) > recur) {
            s.recurring_since = Some(ts);
            s.run_count = 0;
        }
        s.run_count += 1;
        s.last_match = Some(ts);
        s.sample = message.chars().take(SAMPLE_CHARS).collect();
        if let Some(m) = c.capture.iter().find_map(|re| re.captures(message).and_then(|cap| cap.name("subject"))) {
            *s.subjects.entry(m.as_str().to_string()).or_default() += 1;
        }
        match &mut s.episode {
            Some(ep) => ep.count += 1,
            None => {
                let run = ts.saturating_sub(s.recurring_since.unwrap_or(ts));
                if s.hits.len() >= c.rule.threshold as usize && run >= c.rule.for_secs * USEC {
                    s.active_since = Some(ts);
                    let first = s.hits.front().copied().unwrap_or(ts);
                    let start = if c.rule.for_secs > 0 { s.recurring_since.unwrap_or(first).min(first) } else { first };
                    let count = if c.rule.for_secs > 0 { s.run_count } else { s.hits.len() as u64 };
                    s.episode = Some(Open { start, count, sample: s.sample.clone() });
                }
            }
        }
        // Correlations count their parts' matches while the parts recur together.
        for (j, cj) in self.rules.rules.iter().enumerate() {
            if cj.parts.contains(&i) {
                let sj = &mut self.state[j];
                if sj.recurring_since.is_some() {
                    sj.run_count += 1;
                }
                if let Some(ep) = &mut sj.episode {
                    ep.count += 1;
                }
            }
        }
    }

    /// Closes rule `i`'s episode, if one is open, ending at its last match.
    fn close(&mut self, i: usize) {
        let s = &mut self.state[i];
        if let Some(ep) = s.episode.take() {
            let end = s.last_match.unwrap_or(ep.start).max(ep.start);
            let r = &self.rules.rules[i].rule;
            push_bounded(&mut self.episodes, &mut self.episodes_dropped, episode(&r.id, r.severity, &ep, end, false));
        }
    }

    /// Moves time forward to `now` (µs): clears rules quiet for long enough, evaluates correlations.
    pub fn advance(&mut self, now: u64) {
        self.now = self.now.max(now);
        for i in 0..self.rules.rules.len() {
            let c = &self.rules.rules[i];
            if !c.parts.is_empty() {
                continue;
            }
            let quiet = c.rule.clear_after_secs.unwrap_or(c.rule.window_secs) * USEC;
            let s = &self.state[i];
            if s.last_match.is_some_and(|l| now.saturating_sub(l) > quiet) {
                self.close(i);
                self.state[i] = RuleState::default();
            }
        }
        for i in 0..self.rules.rules.len() {
            let c = &self.rules.rules[i];
            if c.parts.is_empty() {
                continue;
            }
            let recur = c.rule.recur_secs() * USEC;
            let together = c.parts.iter().all(|&p| {
                let s = &self.state[p];
                s.active_since.is_some() && s.last_match.is_some_and(|l| now.saturating_sub(l) <= recur)
            });
            if !together {
                self.close(i);
                self.state[i] = RuleState::default();
                continue;
            }
            let for_secs = c.rule.for_secs * USEC;
            let since = self.state[i].recurring_since.unwrap_or(now);
            let opens = self.state[i].episode.is_none() && now.saturating_sub(since) >= for_secs;
            // The sample is built only when the episode opens: this runs for every entry.
            let sample = if opens {
                let parts =
                    c.parts.iter().map(|&p| format!("{}: {}", self.rules.rules[p].rule.id, self.state[p].sample));
                parts.collect::<Vec<_>>().join(" | ").chars().take(2 * SAMPLE_CHARS).collect()
            } else {
                String::new()
            };
            let s = &mut self.state[i];
            s.recurring_since = Some(since);
            s.last_match = Some(now);
            if opens {
                s.active_since = Some(now);
                s.episode = Some(Open { start: since, count: s.run_count, sample });
            }
        }
    }

    /// Every episode, closed or still open, in order of start.
    pub fn episodes(&self) -> Vec<Episode> {
        let mut out: Vec<Episode> = self.episodes.iter().cloned().collect();
        for (i, s) in self.state.iter().enumerate() {
            if let Some(ep) = &s.episode {
                let r = &self.rules.rules[i].rule;
                let end = s.last_match.unwrap_or(ep.start).max(ep.start);
                out.push(episode(&r.id, r.severity, ep, end, true));
            }
        }
        out.sort_by(|a, b| (a.start_usec, &a.id).cmp(&(b.start_usec, &b.id)));
        out
    }

    /// Findings for every active rule.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for (i, c) in self.rules.rules.iter().enumerate() {
            let s = &self.state[i];
            let Some(since) = s.active_since else { continue };
            let start = s.episode.as_ref().map_or(since, |e| e.start);
            let r = &c.rule;
            let mut evidence = Vec::new();
            if c.parts.is_empty() {
                evidence.push(format!(
                    "{} matching journal lines in the last {} s, active since {}",
                    s.hits.len(),
                    r.window_secs,
                    time(start)
                ));
                if !s.subjects.is_empty() {
                    evidence.push(format!("about: {}", s.subjects.keys().cloned().collect::<Vec<_>>().join(", ")));
                }
                evidence.push(format!("last: {}", s.sample));
            } else {
                evidence.push(format!(
                    "{} all recurring together since {} (silence of more than {} s would end it)",
                    r.all_of.join(" and "),
                    time(start),
                    r.recur_secs()
                ));
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

fn episode(id: &str, severity: Severity, ep: &Open, end: u64, ongoing: bool) -> Episode {
    Episode {
        id: id.to_string(),
        severity,
        start: time(ep.start),
        end: time(end),
        start_usec: ep.start,
        end_usec: end,
        count: ep.count,
        sample: ep.sample.clone(),
        ongoing,
    }
}

fn push_bounded(list: &mut VecDeque<Episode>, dropped: &mut u64, e: Episode) {
    if list.len() >= MAX_EPISODES {
        list.pop_front();
        *dropped += 1;
    }
    list.push_back(e);
}

/// The time of a journal entry (µs), in whole seconds.
fn time(usec: u64) -> Timestamp {
    Timestamp::from_unix(usec / USEC)
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

    fn ids(e: &Engine) -> Vec<String> {
        e.findings().into_iter().map(|f| f.id.to_string()).collect()
    }

    #[test]
    fn a_start_up_blip_followed_by_healthy_lines_is_no_deadlock() {
        let mut e = Engine::new(RuleSet::with_defaults(Vec::new()).unwrap());
        // 8 s of both failures, once a second, as a control-plane kubelet prints while its static pods start.
        for t in 0..8 {
            e.feed(&entry(t, "kubelet.service", CNI));
            e.feed(&entry(t, "kubelet.service", API));
        }
        // Then five healthy minutes.
        for t in (10..310).step_by(5) {
            e.feed(&entry(
                t,
                "kubelet.service",
                "I1121 12:00:00.000000    1234 kubelet.go:2337] \"SyncLoop RECONCILE\"",
            ));
            assert!(!ids(&e).iter().any(|i| i == "cni-apiserver.deadlock"), "t={t}: {:?}", ids(&e));
        }
        assert!(!e.episodes().iter().any(|ep| ep.id == "cni-apiserver.deadlock"));
    }

    #[test]
    fn a_silence_longer_than_recur_secs_restarts_the_deadlock_clock() {
        let mut e = Engine::new(RuleSet::with_defaults(Vec::new()).unwrap());
        let fed = |e: &mut Engine, from: u64, to: u64| {
            for t in (from..to).step_by(10) {
                e.feed(&entry(t, "kubelet.service", CNI));
                e.feed(&entry(t + 1, "kubelet.service", API));
            }
        };
        fed(&mut e, 0, 100);
        // 40 s of silence: both rules stay active (their windows are 300 s) but stopped recurring.
        fed(&mut e, 140, 230);
        assert!(!ids(&e).iter().any(|i| i == "cni-apiserver.deadlock"), "{:?}", ids(&e));
        fed(&mut e, 230, 300);
        assert!(ids(&e).iter().any(|i| i == "cni-apiserver.deadlock"), "120 s after the silence: {:?}", ids(&e));
    }

    #[test]
    fn episodes_on_three_days_are_three_entries_in_time_order() {
        let mut e = Engine::new(RuleSet::with_defaults(Vec::new()).unwrap());
        const DAY: u64 = 86_400;
        for day in 0..3 {
            for t in (0..240).step_by(10) {
                e.feed(&entry(day * DAY + t, "kubelet.service", CNI));
                e.feed(&entry(day * DAY + t + 2, "kubelet.service", API));
            }
            e.feed(&entry(day * DAY + 3600, "kubelet.service", "I1121 12:00:00.000000    1234 healthy"));
        }
        let eps: Vec<Episode> = e.episodes().into_iter().filter(|ep| ep.id == "cni-apiserver.deadlock").collect();
        assert_eq!(eps.len(), 3, "{eps:#?}");
        for (day, ep) in eps.iter().enumerate() {
            let start = 1_790_000_000 + day as u64 * DAY;
            assert!(ep.start_usec / USEC >= start + 20 && ep.start_usec / USEC <= start + 30, "{ep:?}");
            assert!(ep.end_usec / USEC >= start + 230 && ep.end_usec / USEC <= start + 242, "{ep:?}");
            assert!(!ep.ongoing && ep.count > 20 && ep.sample.contains("cni.not-ready: "), "{ep:?}");
            assert_eq!(ep.severity, Severity::Critical);
        }
        let cni: Vec<Episode> = e.episodes().into_iter().filter(|ep| ep.id == "cni.not-ready").collect();
        assert_eq!(cni.len(), 3);
        assert_eq!(cni[0].count, 24, "every matching line of the episode, the first three included");
        assert!(cni[0].start_usec < cni[1].start_usec && cni[1].start_usec < cni[2].start_usec);
    }

    #[test]
    fn start_up_transients_are_a_finding_only_when_they_persist() {
        let pleg = r#"E0102 10:00:00.000000    1234 kubelet.go:2379] "Skipping pod synchronization" err="[container runtime status check may not have completed yet, PLEG is not healthy: pleg has yet to be successful]""#;
        let mut e = Engine::new(RuleSet::with_defaults(Vec::new()).unwrap());
        for t in 0..10 {
            e.feed(&entry(t, "kubelet.service", pleg));
        }
        e.advance(entry(400, "", "").realtime_usec);
        assert!(e.findings().is_empty() && e.episodes().is_empty());
        for t in (1000..1200).step_by(5) {
            e.feed(&entry(t, "kubelet.service", pleg));
        }
        assert_eq!(ids(&e), vec!["runtime.pleg-not-started"], "3 minutes of it");
    }

    #[test]
    fn a_kubelet_without_a_bootstrap_kubeconfig_is_a_certificate_finding_with_its_remedy() {
        // kubernetes/minikube#11966: the client certificate expired and kubeadm left no bootstrap kubeconfig.
        let line = "F0713 12:37:13.644415   30147 server.go:273] failed to run Kubelet: unable to load bootstrap kubeconfig: stat /etc/kubernetes/bootstrap-kubelet.conf: no such file or directory";
        let mut e = Engine::new(RuleSet::with_defaults(Vec::new()).unwrap());
        assert_eq!(e.feed(&entry(0, "kubelet.service", line)), vec!["certificate.expired"]);
        let f = e.findings();
        assert_eq!(f[0].severity, Severity::Critical);
        assert!(f[0].remedy.contains("kubeadm kubeconfig user") && f[0].remedy.contains("re-join"), "{}", f[0].remedy);
    }

    #[test]
    fn lines_of_units_no_rule_names_count_as_other() {
        let mut e = Engine::new(RuleSet::with_defaults(Vec::new()).unwrap());
        for u in ["kubelet.service", "sshd.service", "cron.service", "kernel", "docker/kube-proxy"] {
            e.feed(&entry(0, u, "x"));
        }
        let units: Vec<&str> = e.lines.keys().map(String::as_str).collect();
        assert_eq!(units, vec!["docker/kube-proxy", "kernel", "kubelet.service", "other"]);
        e.set_counting(false);
        e.feed(&entry(1, "kubelet.service", CNI));
        assert_eq!((e.lines["kubelet.service"], e.counts["cni.not-ready"]), (1, 0), "a replayed line counts nowhere");
    }
}
