//! Rule churn between collections: kube-proxy chains (and IPVS services) that are deleted and re-created between
//! scans are a sign that two owners fight (something flushes kube-proxy's rules, kube-proxy puts them back); the
//! finding names the likely other party from the proxies found. Pure. The texts are the catalogue's
//! (`catalogue::churn`).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use crate::catalogue::churn as text;
use crate::model::{Snapshot, SourceStatus};
use crate::report::{Finding, FindingId, ProxyKind, Report, Severity};

/// kube-proxy-owned chains of a snapshot as `backend family table chain` keys; `None` when a rules source or IPVS
/// failed (a failed read is no deletion).
pub fn kube_proxy_chains(snap: &Snapshot) -> Option<BTreeSet<String>> {
    snap.iptables_legacy.get()?;
    let nft = snap.nftables.get()?;
    if snap.ipvs.status == SourceStatus::Failed {
        return None;
    }
    let mut out = BTreeSet::new();
    for (backend, family, rs) in snap.iptables_backends() {
        for (table, chain) in rs.all() {
            if matches!(
                super::chains::owner(table, chain),
                super::chains::Owner::KubeProxy
                    | super::chains::Owner::KubeProxyIptables
                    | super::chains::Owner::KubeProxyIpvs
            ) {
                out.insert(format!("{backend} {family} {table} {chain}"));
            }
        }
    }
    for t in nft.tables.iter().filter(|t| t.name == "kube-proxy") {
        for c in &t.chains {
            out.insert(format!("nftables {} kube-proxy {c}", t.family));
        }
    }
    // IPVS virtual servers (by VIP): kube-router and kube-proxy in IPVS mode delete each other's.
    if let Some(ipvs) = snap.ipvs.get() {
        for vip in &ipvs.vips {
            out.insert(format!("{IPVS_PREFIX}{vip}"));
        }
    }
    Some(out)
}

/// How IPVS virtual servers are named in the churn set.
const IPVS_PREFIX: &str = "ipvs service ";

/// Who most likely deletes what came back, from the proxies in the report (docs/DATAPLANE-FACTS.md section 10):
/// (who, what to do).
fn other_party(report: &Report, flips: &[&str]) -> Option<(&'static str, &'static str)> {
    let has = |k: ProxyKind| report.dataplane.proxies.iter().any(|p| p.proxy == k);
    // Without kube-proxy on the node there is no fight with it to name.
    if !has(ProxyKind::KubeProxy) {
        return None;
    }
    let ipvs = flips.iter().any(|f| f.starts_with(IPVS_PREFIX));
    let rules = flips.iter().any(|f| !f.starts_with(IPVS_PREFIX));
    if ipvs && has(ProxyKind::KubeRouter) {
        return Some(text::KUBE_ROUTER);
    }
    if rules && has(ProxyKind::CalicoEbpf) {
        return Some(text::CALICO_EBPF);
    }
    None
}

fn key(name: &str) -> u64 {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

/// Remembers which chains disappeared, and counts those that came back ("flips"). Chains are kept as 64-bit
/// hashes: at 10k Services the names alone would hold megabytes for the daemon's whole life.
#[derive(Debug, Default)]
pub struct Churn {
    previous: Option<HashSet<u64>>,
    /// Chains that disappeared, with the collection number at which they did.
    gone: HashMap<u64, u64>,
    collection: u64,
    /// Recent flips: (collection number, chain).
    flips: Vec<(u64, String)>,
}

/// How many collections a flip stays in view.
const WINDOW: u64 = 20;

impl Churn {
    /// Feeds one collection's chain set; returns how many chains were added or removed since the previous one.
    pub fn observe(&mut self, current: Option<BTreeSet<String>>) -> u64 {
        self.collection += 1;
        let n = self.collection;
        self.flips.retain(|(at, _)| n - at <= WINDOW);
        self.gone.retain(|_, at| n - *at <= WINDOW);
        let Some(current) = current else { return 0 };
        let keys: HashSet<u64> = current.iter().map(|c| key(c)).collect();
        let mut changes = 0;
        if let Some(prev) = &self.previous {
            for removed in prev.difference(&keys) {
                self.gone.insert(*removed, n);
                changes += 1;
            }
            for added in current.iter().filter(|c| !prev.contains(&key(c))) {
                if self.gone.remove(&key(added)).is_some() {
                    self.flips.push((n, added.clone()));
                }
                changes += 1;
            }
        }
        self.previous = Some(keys);
        changes
    }

    /// Chains deleted and re-created within the last collections.
    pub fn recent_flips(&self) -> Vec<&str> {
        self.flips.iter().map(|(_, c)| c.as_str()).collect()
    }
}

/// Adds rule-churn evidence to a report (the verdict is the caller's: `assemble` computes it once): chains deleted and re-created between scans mean two owners fight. To a
/// conflict it is more evidence; alone it is the `service-routing.churn` warning.
pub fn apply(report: &mut Report, flips: &[&str]) {
    if flips.is_empty() {
        return;
    }
    let evidence = text::flipped(flips.len(), &flips[..flips.len().min(3)]);
    let party = other_party(report, flips);
    let mut evidence = vec![evidence];
    // Who holds kube-proxy's health port is evidence of the other party too.
    evidence.extend(
        report.dataplane.proxies.iter().filter_map(|p| p.health_port_held_by.as_ref()).map(ToString::to_string),
    );
    if let Some((who, _)) = party {
        evidence.push(text::likely_other_party(who));
    }
    // kube-proxy's rules flip-flopping next to Calico's eBPF dataplane is the documented fight (Felix's cleanup
    // on): the pair's conflict is critical, as when its rules are gone, once both agents are seen running.
    let calico_fight = flips.iter().any(|f| !f.starts_with(IPVS_PREFIX))
        && [ProxyKind::KubeProxy, ProxyKind::CalicoEbpf]
            .iter()
            .all(|k| report.dataplane.proxies.iter().any(|p| p.proxy == *k && p.agent_running == Some(true)));
    // `dataplane.conflicts[n]` is the pair of the n-th `service-routing.conflict` finding (rules::findings pushes
    // them together), so the pair is found by its proxies, never by a finding's text.
    let nth_conflict = |findings: &[Finding], n: usize| {
        findings.iter().enumerate().filter(|(_, f)| f.id == FindingId::ServiceRoutingConflict).nth(n).map(|(i, _)| i)
    };
    let calico_pair =
        report.dataplane.conflicts.iter().position(|p| (p.a, p.b) == (ProxyKind::KubeProxy, ProxyKind::CalicoEbpf));
    let fought = calico_pair.filter(|_| calico_fight).and_then(|n| nth_conflict(&report.findings, n).map(|i| (n, i)));
    if let Some((n, i)) = fought {
        report.dataplane.conflicts[n].severity = Severity::Critical;
        report.findings[i].severity = Severity::Critical;
    }
    let target = fought.map(|(_, i)| i).or_else(|| nth_conflict(&report.findings, 0));
    if let Some(f) = target.and_then(|i| report.findings.get_mut(i)) {
        // A conflict may already carry the same line (it copies its proxies' evidence): said once.
        let new: Vec<String> = evidence.into_iter().filter(|e| !f.evidence.contains(e)).collect();
        f.evidence.extend(new);
    } else {
        report.findings.push(Finding {
            id: FindingId::ServiceRoutingChurn,
            severity: Severity::Warning,
            summary: text::summary(party.map(|(who, _)| who)),
            evidence,
            remedy: party.map_or(text::REMEDY, |(_, fix)| fix).to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot in which every source is disabled.
    fn no_sources() -> Snapshot {
        serde_json::from_str(
            r#"{"schema_version":2,"node":"n","collected_at":"2026-01-01T00:00:00Z","iptables_legacy":{"status":"disabled"},
            "nftables":{"status":"disabled"},"links":{"status":"disabled"},"ipvs":{"status":"disabled"},
            "bpf":{"status":"disabled"},"processes":{"status":"disabled"}}"#,
        )
        .unwrap()
    }

    /// A proxy whose agent runs, as `rules::proxies` reports it.
    fn proxy(proxy: ProxyKind, mode: crate::report::ServiceProxyMode) -> crate::report::ServiceProxy {
        crate::report::ServiceProxy {
            proxy,
            mode,
            balances: Vec::new(),
            services: None,
            agent_running: Some(true),
            evidence: Vec::new(),
            health_port_held_by: None,
        }
    }

    fn set(names: &[&str]) -> Option<BTreeSet<String>> {
        Some(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn chains_that_vanish_and_return_are_flips() {
        let mut c = Churn::default();
        assert_eq!(c.observe(set(&["nft ipv4 nat KUBE-SERVICES", "nft ipv4 nat KUBE-SVC-A"])), 0);
        assert_eq!(c.observe(set(&["nft ipv4 nat KUBE-SVC-A"])), 1);
        assert!(c.recent_flips().is_empty());
        assert_eq!(c.observe(set(&["nft ipv4 nat KUBE-SERVICES", "nft ipv4 nat KUBE-SVC-A"])), 1);
        assert_eq!(c.recent_flips(), vec!["nft ipv4 nat KUBE-SERVICES"]);
        // A failed source is not a deletion.
        assert_eq!(c.observe(None), 0);
        assert_eq!(c.observe(set(&["nft ipv4 nat KUBE-SERVICES", "nft ipv4 nat KUBE-SVC-A"])), 0);
    }

    #[test]
    fn churn_alone_warns_and_next_to_a_conflict_is_evidence() {
        let snap: Snapshot = serde_json::from_str(
            r#"{"schema_version":1,"node":"n","collected_at":"2026-01-01T00:00:00Z","iptables_legacy":{"status":"disabled"},
            "nftables":{"status":"disabled"},"links":{"status":"disabled"},"ipvs":{"status":"disabled"},
            "bpf":{"status":"disabled"},"processes":{"status":"disabled"}}"#,
        )
        .unwrap();
        let mut report = crate::rules::analyse(&snap, crate::model::Timestamp::from_unix(0));
        apply(&mut report, &[]);
        assert!(report.finding(&FindingId::ServiceRoutingChurn).is_none());
        apply(&mut report, &["nft ipv4 nat KUBE-SERVICES"]);
        let f = report.finding(&FindingId::ServiceRoutingChurn).unwrap();
        assert!(f.evidence[0].contains("KUBE-SERVICES"), "{f:?}");
        assert_eq!(crate::report::verdict(&report.findings), crate::report::Verdict::Warning);

        report.findings = vec![Finding {
            id: FindingId::ServiceRoutingConflict,
            severity: Severity::Critical,
            summary: String::new(),
            evidence: Vec::new(),
            remedy: String::new(),
        }];
        apply(&mut report, &["nft ipv4 nat KUBE-SERVICES"]);
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].evidence.len(), 1);
    }

    #[test]
    fn churn_names_the_likely_other_party() {
        let snap = no_sources();
        use crate::report::ServiceProxyMode as M;
        let mut report = crate::rules::analyse(&snap, crate::model::Timestamp::from_unix(0));
        report.dataplane.proxies =
            vec![proxy(ProxyKind::KubeProxy, M::Iptables), proxy(ProxyKind::CalicoEbpf, M::Ebpf)];
        apply(&mut report, &["nft ipv4 nat KUBE-SERVICES"]);
        let f = report.finding(&FindingId::ServiceRoutingChurn).unwrap();
        assert!(f.summary.contains("Calico's eBPF dataplane"), "{f:?}");
        assert!(f.remedy.contains("BPFKubeProxyIptablesCleanupEnabled=false"), "{f:?}");

        // IPVS services coming back next to kube-router; chains coming back there name nobody in particular.
        let mut report = crate::rules::analyse(&snap, crate::model::Timestamp::from_unix(0));
        report.dataplane.proxies = vec![proxy(ProxyKind::KubeProxy, M::Ipvs), proxy(ProxyKind::KubeRouter, M::Ipvs)];
        apply(&mut report, &["ipvs service 10.96.0.1"]);
        let f = report.finding(&FindingId::ServiceRoutingChurn).unwrap();
        assert!(f.evidence[1].contains("kube-router") && f.remedy.contains("--run-service-proxy=false"), "{f:?}");
        let mut report = crate::rules::analyse(&snap, crate::model::Timestamp::from_unix(0));
        report.dataplane.proxies = vec![proxy(ProxyKind::KubeRouter, M::Ipvs)];
        apply(&mut report, &["nft ipv4 nat KUBE-SERVICES"]);
        assert!(report.finding(&FindingId::ServiceRoutingChurn).unwrap().summary.contains("something else"));
        // kube-router alone re-creating its own IPVS services: no kube-proxy, no fight with it to name.
        let mut report = crate::rules::analyse(&snap, crate::model::Timestamp::from_unix(0));
        report.dataplane.proxies = vec![proxy(ProxyKind::KubeRouter, M::Ipvs)];
        apply(&mut report, &["ipvs service 10.96.0.1"]);
        let f = report.finding(&FindingId::ServiceRoutingChurn).unwrap();
        assert!(!f.evidence.iter().any(|e| e.contains("kube-router")), "{f:?}");
    }

    #[test]
    fn who_holds_kube_proxys_health_port_is_carried_as_data_not_found_by_its_text() {
        // Calico's world recorded by the system tests: calico-node (pid 102) listens on :10256.
        let path = format!(
            "{}/tests/data/snapshots/conflict_when_kube_proxy_runs_next_to_calico_ebpf.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let snap: Snapshot = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut report = crate::rules::analyse(&snap, snap.collected_at);
        let line = ":10256 (kube-proxy's health port) is held by calico-node (pid 102)";
        let kp = report.dataplane.proxies.iter().find(|p| p.proxy == ProxyKind::KubeProxy).unwrap();
        assert_eq!(kp.health_port_held_by.as_ref().map(ToString::to_string).as_deref(), Some(line));
        assert!(kp.evidence.iter().any(|e| e == line), "{kp:?}");
        apply(&mut report, &["nft ipv4 nat KUBE-SERVICES"]);
        let f = report.findings.iter().find(|f| f.evidence.iter().any(|e| e.contains("KUBE-SERVICES"))).unwrap();
        // The conflict already says who holds the port (its proxies' evidence): churn does not say it again.
        assert_eq!(f.evidence.iter().filter(|e| *e == line).count(), 1, "{f:?}");
        // Without a conflict to join, the churn warning carries the line itself, after the flips.
        let mut alone = crate::rules::analyse(&snap, snap.collected_at);
        alone.findings.retain(|f| f.id != FindingId::ServiceRoutingConflict);
        alone.dataplane.conflicts.clear();
        apply(&mut alone, &["nft ipv4 nat KUBE-SERVICES"]);
        let churn = alone.findings.iter().find(|f| f.id == FindingId::ServiceRoutingChurn).unwrap();
        let at = churn.evidence.iter().position(|e| e.contains("KUBE-SERVICES")).unwrap();
        assert_eq!(churn.evidence[at + 1], line, "{churn:?}");

        // Evidence that only reads like it names no holder.
        use crate::report::ServiceProxyMode as M;
        let mut report = crate::rules::analyse(&no_sources(), crate::model::Timestamp::from_unix(0));
        let mut cilium = proxy(ProxyKind::Cilium, M::KubeProxyReplacement);
        cilium.evidence = vec!["socket-LB answers on kube-proxy's health port range".into()];
        report.dataplane.proxies = vec![cilium];
        apply(&mut report, &["nft ipv4 nat KUBE-SERVICES"]);
        let f = report.finding(&FindingId::ServiceRoutingChurn).unwrap();
        assert_eq!(f.evidence.len(), 1, "{f:?}");
    }

    #[test]
    fn kube_proxy_rules_flip_flopping_next_to_calico_make_the_pair_critical() {
        let snap = no_sources();
        use crate::report::ServiceProxyMode as M;
        let mut report = crate::rules::analyse(&snap, crate::model::Timestamp::from_unix(0));
        report.dataplane.proxies =
            vec![proxy(ProxyKind::KubeProxy, M::Iptables), proxy(ProxyKind::CalicoEbpf, M::Ebpf)];
        let conflict = |summary: &str| Finding {
            id: FindingId::ServiceRoutingConflict,
            severity: Severity::Warning,
            summary: summary.into(),
            evidence: Vec::new(),
            remedy: String::new(),
        };
        let pair = |b| crate::report::ProxyPair { a: ProxyKind::KubeProxy, b, severity: Severity::Warning };
        report.findings = vec![conflict("the Calico pair")];
        report.dataplane.conflicts = vec![pair(ProxyKind::CalicoEbpf)];
        apply(&mut report, &["ipvs service 10.96.0.1"]);
        assert_eq!(report.findings[0].severity, Severity::Warning, "IPVS churn is not Felix's cleanup");
        apply(&mut report, &["nft ipv4 nat KUBE-SERVICES"]);
        assert_eq!(report.findings[0].severity, Severity::Critical);
        assert_eq!(report.dataplane.conflicts[0].severity, Severity::Critical);
        assert_eq!(crate::report::verdict(&report.findings), crate::report::Verdict::Critical);

        // The Calico pair second, after a kube-proxy/Cilium one: that pair and its finding are raised, and the
        // churn evidence goes to it; the other pair is left as it was.
        report.findings = vec![conflict("the Cilium pair"), conflict("the Calico pair")];
        report.dataplane.conflicts = vec![pair(ProxyKind::Cilium), pair(ProxyKind::CalicoEbpf)];
        apply(&mut report, &["nft ipv4 nat KUBE-SERVICES"]);
        let severities: Vec<Severity> = report.findings.iter().map(|f| f.severity).collect();
        assert_eq!(severities, [Severity::Warning, Severity::Critical]);
        assert_eq!(report.dataplane.conflicts[1].severity, Severity::Critical);
        assert!(report.findings[0].evidence.is_empty() && !report.findings[1].evidence.is_empty());
    }

    #[test]
    fn every_conflict_finding_has_its_pair_in_the_same_order() {
        // The invariant `apply` relies on, over every snapshot the system tests recorded.
        let dir = format!("{}/tests/data/snapshots", env!("CARGO_MANIFEST_DIR"));
        let mut conflicts = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let snap: Snapshot = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let report = crate::rules::analyse(&snap, crate::model::Timestamp::from_unix(0));
            let found: Vec<&Finding> =
                report.findings.iter().filter(|f| f.id == FindingId::ServiceRoutingConflict).collect();
            assert_eq!(found.len(), report.dataplane.conflicts.len(), "{}", path.display());
            for (f, p) in found.iter().zip(&report.dataplane.conflicts) {
                assert_eq!(f.severity, p.severity, "{}", path.display());
            }
            conflicts += found.len();
        }
        assert!(conflicts >= 4, "the recorded snapshots hold {conflicts} conflicts");
    }

    #[test]
    fn a_failed_ipvs_read_is_no_deletion() {
        // kube-router's world, recorded by the system tests: 3 IPVS virtual servers.
        let path = format!("{}/tests/data/snapshots/kube_router_alone_is_healthy.json", env!("CARGO_MANIFEST_DIR"));
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let ok: Snapshot = serde_json::from_value(v.clone()).unwrap();
        assert!(kube_proxy_chains(&ok).unwrap().contains("ipvs service 10.96.0.1"));
        v["ipvs"] = serde_json::json!({"status": "failed", "error": "denied"});
        let failed: Snapshot = serde_json::from_value(v).unwrap();
        assert_eq!(kube_proxy_chains(&failed), None);
        let mut c = Churn::default();
        c.observe(kube_proxy_chains(&ok));
        assert_eq!(c.observe(kube_proxy_chains(&failed)), 0, "a failed read deleted every VIP");
        assert_eq!(c.observe(kube_proxy_chains(&ok)), 0);
        assert!(c.recent_flips().is_empty());
    }

    #[test]
    fn new_chains_are_changes_but_not_flips() {
        let mut c = Churn::default();
        c.observe(set(&["a"]));
        assert_eq!(c.observe(set(&["a", "b"])), 1);
        assert!(c.recent_flips().is_empty());
    }
}
