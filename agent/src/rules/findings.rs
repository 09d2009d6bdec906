//! The decision table (docs/DATAPLANE-FACTS.md sections 7 and 10) as findings: conflict (kube-proxy and Cilium, and
//! every other pair of proxies), overlap, stale rules, mixed backends, partial or missing routing, failed sources.
//! [`evaluate`] conducts; each row is one function named after its row (`x1_*`, `k10_*`, ...) or, where the table
//! has none, after what it tells. The texts are the catalogue's (`crate::catalogue`).

use crate::catalogue as text;
use crate::model::{Backend, Snapshot};
use crate::report::{
    Finding, FindingId, ProxyKind, ProxyMode, ProxyPair, ServiceProxy, ServiceProxyMode, Severity, Traffic,
};
use crate::rules::dataplane::Facts;

/// The findings, and the pairs of proxies in conflict (for `dataplane.conflicts`), in the order they are reported.
/// Section 7's X4 (kube-proxy with Cilium only as the CNI) is healthy and X5 (the canary alone) inconclusive: neither
/// raises a finding (`chains` counts the KUBE-PROXY-CANARY marker as no kube-proxy rule), so neither has a function
/// here.
pub fn evaluate(snap: &Snapshot, f: &Facts) -> (Vec<Finding>, Vec<ProxyPair>) {
    let mut out = crate::rules::remedy::source_failures(snap);
    let mut conflicts = Vec::new();
    // Section 7, kube-proxy next to Cilium: at most one of these four holds.
    if let Some((finding, pair)) = x1_conflict(f) {
        out.push(finding);
        conflicts.push(pair);
    }
    out.extend(x3_stale_under_replacement(f));
    out.extend(k5_stale_without_process(snap, f));
    out.extend(x2_supported_overlap(f));
    out.extend(k5_earlier_mode_leftovers(f));
    out.extend(k10_mixed_backends(snap, f));
    out.extend(ipvs_deprecated(f));
    let (pair_findings, pair_conflicts) = pairs(f);
    out.extend(pair_findings);
    conflicts.extend(pair_conflicts);
    out.extend(c7_agents_down(f));
    out.extend(no_kube_proxy(f));
    (out, conflicts)
}

/// kube-proxy's and Cilium's evidence together.
fn both_evidence(f: &Facts) -> Vec<String> {
    [f.kube_proxy_evidence.clone(), f.cilium_evidence.clone()].concat()
}

/// X1: kube-proxy's rules (running, or not known not to) next to Cilium's kube-proxy replacement: a conflict,
/// critical when kube-proxy is known to run.
fn x1_conflict(f: &Facts) -> Option<(Finding, ProxyPair)> {
    let kp = &f.dataplane.kube_proxy;
    if !kp.mode.is_present() || f.dataplane.cilium.kube_proxy_replacement != Some(true) || kp.running == Some(false) {
        return None;
    }
    let severity = if kp.running == Some(true) { Severity::Critical } else { Severity::Warning };
    let finding = Finding {
        id: FindingId::ServiceRoutingConflict,
        severity,
        summary: text::conflict::kube_proxy_and_cilium(
            &text::kube_proxy(kp),
            &text::cilium_kpr(&f.dataplane.cilium),
            kp.running.is_some(),
        ),
        evidence: both_evidence(f),
        remedy: text::conflict::KUBE_PROXY_AND_CILIUM_REMEDY.into(),
    };
    Some((finding, ProxyPair { a: ProxyKind::KubeProxy, b: ProxyKind::Cilium, severity }))
}

/// X3: kube-proxy's rules without its process under Cilium's kube-proxy replacement: stale leftovers that still
/// rewrite what reaches netfilter.
fn x3_stale_under_replacement(f: &Facts) -> Option<Finding> {
    let kp = &f.dataplane.kube_proxy;
    if !kp.mode.is_present() || f.dataplane.cilium.kube_proxy_replacement != Some(true) || kp.running != Some(false) {
        return None;
    }
    Some(Finding {
        id: FindingId::KubeProxyStaleRules,
        severity: Severity::Warning,
        summary: text::stale_rules::under_replacement(&text::kube_proxy(kp), &text::cilium_kpr(&f.dataplane.cilium)),
        evidence: both_evidence(f),
        remedy: text::stale_rules::cleanup(kp.mode),
    })
}

/// K5 (the DaemonSet deleted): kube-proxy's rules without its process and without a replacement. On a Calico node
/// whose Felix reads the stale nftables table, that is said too.
fn k5_stale_without_process(snap: &Snapshot, f: &Facts) -> Option<Finding> {
    let kp = &f.dataplane.kube_proxy;
    if !kp.mode.is_present() || f.dataplane.cilium.kube_proxy_replacement == Some(true) || kp.running != Some(false) {
        return None;
    }
    let mut evidence = f.kube_proxy_evidence.clone();
    let mut remedy = text::stale_rules::cleanup(kp.mode);
    if let Some(pids) = calico_reads_stale_nftables(snap, kp.mode) {
        evidence.push(text::stale_rules::calico_nftables_note(&pids));
        remedy.push_str(text::stale_rules::CALICO_NFTABLES_REMEDY);
    }
    Some(Finding {
        id: FindingId::KubeProxyStaleRules,
        severity: Severity::Warning,
        summary: text::stale_rules::without_process(&text::kube_proxy(kp)),
        evidence,
        remedy,
    })
}

/// Calico's Felix resolves `NFTablesMode=Auto` by listing the chains of the `ip`/`ip6` `kube-proxy` nftables tables:
/// any chain means "kube-proxy runs in nftables mode" (calico `felix/nftables/utils.go`, `KubeProxyNftablesEnabledFn`),
/// so a stale table misleads Calico too. calico-node's pids, when it runs and the stale rules are nftables ones.
fn calico_reads_stale_nftables(snap: &Snapshot, mode: ProxyMode) -> Option<Vec<u32>> {
    let calico = snap.processes.get().map(|p| p.pids("calico-node")).filter(|p| !p.is_empty())?;
    (mode == ProxyMode::Nftables).then_some(calico)
}

/// X2: kube-proxy (running, or not known not to) next to Cilium without kube-proxy replacement: the supported
/// overlap.
fn x2_supported_overlap(f: &Facts) -> Option<Finding> {
    let (kp, cil) = (&f.dataplane.kube_proxy, &f.dataplane.cilium);
    if !kp.mode.is_present()
        || kp.running == Some(false)
        || cil.present != Some(true)
        || cil.kube_proxy_replacement != Some(false)
    {
        return None;
    }
    Some(Finding {
        id: FindingId::ServiceRoutingOverlap,
        severity: Severity::Info,
        summary: text::overlap::kube_proxy_and_cilium(&text::kube_proxy(kp)),
        evidence: both_evidence(f),
        remedy: text::overlap::REMEDY.into(),
    })
}

/// K5 (the mode switched): iptables-mode chains left over while kube-proxy (running, or not known not to) runs in
/// another mode.
fn k5_earlier_mode_leftovers(f: &Facts) -> Option<Finding> {
    let kp = &f.dataplane.kube_proxy;
    if f.other_mode_leftovers == 0 || kp.running == Some(false) {
        return None;
    }
    Some(Finding {
        id: FindingId::KubeProxyStaleRules,
        severity: Severity::Warning,
        summary: text::stale_rules::earlier_mode(f.other_mode_leftovers, kp.mode),
        evidence: f.kube_proxy_evidence.clone(),
        remedy: text::stale_rules::EARLIER_MODE_REMEDY.into(),
    })
}

/// K10: kube-proxy's chains in both iptables-legacy and iptables-nft.
fn k10_mixed_backends(snap: &Snapshot, f: &Facts) -> Option<Finding> {
    let kube_proxy_in = |backend| f.backends.iter().any(|b| b.backend == backend && b.signals.kube_proxy());
    if !kube_proxy_in(Backend::Legacy) || !kube_proxy_in(Backend::Nft) {
        return None;
    }
    let evidence = f
        .backends
        .iter()
        .filter(|b| b.signals.kube_proxy())
        .map(|b| {
            let s = &b.signals;
            let chains = s.iptables_mode_chains + s.ipvs_mode_chains + s.shared_chains;
            text::mixed_backends::evidence(b.backend, b.family, chains, s.svc_chains)
        })
        .collect();
    Some(Finding {
        id: FindingId::IptablesMixedBackends,
        severity: Severity::Warning,
        summary: text::mixed_backends::SUMMARY.into(),
        evidence,
        remedy: crate::rules::remedy::mixed_backends(snap, &f.backends),
    })
}

/// No row (a release fact): IPVS mode is deprecated since 1.35 (kubernetes#134539, KEP-5495). Said while kube-proxy
/// programs it (running, or not known not to); stale IPVS rules have their own finding.
fn ipvs_deprecated(f: &Facts) -> Option<Finding> {
    let kp = &f.dataplane.kube_proxy;
    if kp.mode != ProxyMode::Ipvs || kp.running == Some(false) {
        return None;
    }
    let mut remedy = String::from(text::ipvs_deprecated::REMEDY);
    // LoxiLB's service-proxy mode reads IPVS only (docs/DATAPLANE-FACTS.md section 11.1).
    if f.proxies.proxies.iter().any(|p| p.proxy == ProxyKind::Loxilb) {
        remedy.push_str(text::ipvs_deprecated::LOXILB_REMEDY);
    }
    Some(Finding {
        id: FindingId::KubeProxyIpvsDeprecated,
        severity: Severity::Info,
        summary: text::ipvs_deprecated::summary(&text::kube_proxy(kp)),
        evidence: f.kube_proxy_evidence.clone(),
        remedy,
    })
}

/// A proxy that balances only ClusterIP traffic from pods by design (a supported split with kube-proxy).
fn is_split(p: &ServiceProxy) -> bool {
    matches!(p.mode, ServiceProxyMode::PodClusterIp | ServiceProxyMode::AntreaProxy)
}

/// The decision table over pairs of proxies (docs/DATAPLANE-FACTS.md section 10), for every pair but kube-proxy
/// and Cilium (section 7, above): an overlap for a supported split or LoxiLB next to kube-proxy, else a conflict.
fn pairs(f: &Facts) -> (Vec<Finding>, Vec<ProxyPair>) {
    let (mut out, mut conflicts) = (Vec::new(), Vec::new());
    let ps = &f.proxies.proxies;
    for (i, a) in ps.iter().enumerate() {
        for b in &ps[i + 1..] {
            let Some(shared) = contested(a, b) else { continue };
            let shared = shared.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
            if let Some(finding) = split_overlap(a, b, &shared).or_else(|| loxilb_overlap(a, b, &shared)) {
                out.push(finding);
            } else {
                let (finding, pair) = pair_conflict(a, b, &shared);
                out.push(finding);
                conflicts.push(pair);
            }
        }
    }
    (out, conflicts)
}

/// The traffic both proxies of a pair balance, when the pair table judges them. kube-proxy and Cilium are section
/// 7's; a proxy whose agent is known not to run is left to the stale-rules and agent-down findings; what a proxy of
/// unknown mode balances is not known (Antrea with routes unread): neither a split nor a conflict (kube-proxy's
/// Unknown still balances everything it has rules for).
fn contested(a: &ServiceProxy, b: &ServiceProxy) -> Option<Vec<Traffic>> {
    if (a.proxy, b.proxy) == (ProxyKind::KubeProxy, ProxyKind::Cilium)
        || a.agent_running == Some(false)
        || b.agent_running == Some(false)
        || [a, b].iter().any(|p| p.mode == ServiceProxyMode::Unknown && p.proxy != ProxyKind::KubeProxy)
    {
        return None;
    }
    let shared: Vec<Traffic> = a.balances.iter().filter(|t| b.balances.contains(t)).copied().collect();
    (!shared.is_empty()).then_some(shared)
}

/// Section 10, a split (Cilium without kube-proxy replacement, AntreaProxy without proxyAll): the supported overlap.
fn split_overlap(a: &ServiceProxy, b: &ServiceProxy, shared: &str) -> Option<Finding> {
    let split = if is_split(a) {
        a
    } else if is_split(b) {
        b
    } else {
        return None;
    };
    Some(Finding {
        id: FindingId::ServiceRoutingOverlap,
        severity: Severity::Info,
        summary: text::overlap::split(&text::proxy(a), &text::proxy(b), shared, split.proxy.as_str()),
        evidence: [a.evidence.clone(), b.evidence.clone()].concat(),
        remedy: text::overlap::REMEDY.into(),
    })
}

/// Section 11.1: LoxiLB runs next to kube-proxy by design: as the LoadBalancer provider of kube-loxilb (any
/// kube-proxy mode), and in its service-proxy mode it imports kube-proxy's IPVS services (--ipvs-compat) and takes
/// their traffic on its tc hooks. The supported overlap.
fn loxilb_overlap(a: &ServiceProxy, b: &ServiceProxy, shared: &str) -> Option<Finding> {
    if (a.proxy, b.proxy) != (ProxyKind::KubeProxy, ProxyKind::Loxilb) {
        return None;
    }
    Some(Finding {
        id: FindingId::ServiceRoutingOverlap,
        severity: Severity::Info,
        summary: text::overlap::loxilb(&text::proxy(a), &text::proxy(b), shared, a.mode == ServiceProxyMode::Ipvs),
        evidence: [a.evidence.clone(), b.evidence.clone()].concat(),
        remedy: text::overlap::LOXILB_REMEDY.into(),
    })
}

/// Section 10, any other pair balancing the same traffic: a conflict, critical for the documented fights when both
/// agents are known to run.
fn pair_conflict(a: &ServiceProxy, b: &ServiceProxy, shared: &str) -> (Finding, ProxyPair) {
    let documented = match (a.proxy, b.proxy) {
        // Felix deletes kube-proxy's chains while kube-proxy re-creates them (calico#10538): a running
        // kube-proxy without its rules is that fight. Rules present next to Calico's programs mean Felix's
        // cleanup is off (BPFKubeProxyIptablesCleanupEnabled=false): shadowed, not fought over; the
        // daemon's churn raises it again when the rules flip-flop.
        (ProxyKind::KubeProxy, ProxyKind::CalicoEbpf) => a.mode == ServiceProxyMode::NoRules,
        // Each deletes the other's IPVS services (kube-router service_endpoints_sync.go).
        (ProxyKind::KubeProxy, ProxyKind::KubeRouter) => a.mode == ServiceProxyMode::Ipvs,
        // kube-proxy next to Antrea proxyAll or OVN-Kubernetes: shadowed rules, clashing health ports.
        (ProxyKind::KubeProxy, _) => false,
        // Two datapaths rewriting the same packets.
        _ => true,
    };
    let both_running = a.agent_running == Some(true) && b.agent_running == Some(true);
    let severity = if documented && both_running { Severity::Critical } else { Severity::Warning };
    let finding = Finding {
        id: FindingId::ServiceRoutingConflict,
        severity,
        summary: text::conflict::pair(&text::proxy(a), &text::proxy(b), shared, both_running),
        evidence: [a.evidence.clone(), b.evidence.clone()].concat(),
        remedy: text::conflict::pair_remedy(a.proxy, b.proxy),
    };
    (finding, ProxyPair { a: a.proxy, b: b.proxy, severity })
}

/// C7, for every Service proxy (other than kube-proxy, which has `kube-proxy.stale-rules`): its programs, links or
/// rules are there while its agent is known not to run: nothing keeps them in step with the Services. Only when the
/// processes source was read (`agent_running` is `Some(false)`). Cilium's socket-LB and tc programs keep balancing
/// from their pinned maps after the agent is gone (an uninstall that did not clean up, a crashed agent); its
/// conflict with a kube-proxy that also runs stays (X1 does not ask whether cilium-agent runs).
fn c7_agents_down(f: &Facts) -> Vec<Finding> {
    f.proxies
        .proxies
        .iter()
        .filter(|p| p.proxy != ProxyKind::KubeProxy && p.agent_running == Some(false))
        .map(|p| {
            let (agent, remedy) = text::agent_down::agent(p.proxy);
            Finding {
                id: FindingId::ServiceProxyAgentDown,
                severity: Severity::Warning,
                summary: text::agent_down::summary(&text::proxy(p), agent),
                evidence: [p.evidence.clone(), vec![text::agent_down::no_process(agent)]].concat(),
                remedy: remedy.into(),
            }
        })
        .collect()
}

/// No kube-proxy rules, no Cilium kube-proxy replacement and no other full proxy whose agent is not known to be
/// gone: what balances part of Service traffic, else nobody. The first row that holds, in this order.
fn no_kube_proxy(f: &Facts) -> Option<Finding> {
    // Another proxy that balances more than pod ClusterIP traffic and whose agent is not known to be gone.
    // (LoxiLB is not one: it balances the traffic that arrives on its interfaces, and ClusterIPs only as it imports
    // them from kube-proxy's IPVS; docs/DATAPLANE-FACTS.md section 11.1.)
    let other_full = f.proxies.proxies.iter().any(|p| {
        !matches!(p.proxy, ProxyKind::KubeProxy | ProxyKind::Cilium | ProxyKind::Loxilb)
            && !is_split(p)
            && p.agent_running != Some(false)
    });
    if f.dataplane.kube_proxy.mode.is_present() || f.dataplane.cilium.kube_proxy_replacement == Some(true) || other_full
    {
        return None;
    }
    partial_antrea(f)
        .or_else(|| partial_loxilb(f))
        .or_else(|| partial_cilium(f))
        .or_else(|| not_a_node(f))
        .or_else(|| k8_nobody_programs_services(f))
}

/// Whether Cilium balances pod ClusterIP traffic (C2: its service maps hold frontends).
fn cilium_pod_lb(f: &Facts) -> bool {
    f.dataplane.cilium.services.unwrap_or(0) > 0
}

/// No row (section 10, Antrea): AntreaProxy without proxyAll, no kube-proxy (not even one that runs without rules
/// right now: another writer deleted them, it still serves the rest) and no Cilium pod load-balancing: partial.
fn partial_antrea(f: &Facts) -> Option<Finding> {
    let antrea = f.proxies.proxies.iter().find(|p| p.mode == ServiceProxyMode::AntreaProxy)?;
    let kp_listed = f.proxies.proxies.iter().any(|p| p.proxy == ProxyKind::KubeProxy && p.agent_running != Some(false));
    if cilium_pod_lb(f) || kp_listed {
        return None;
    }
    Some(Finding {
        id: FindingId::ServiceRoutingPartial,
        severity: Severity::Warning,
        summary: text::partial::ANTREA.into(),
        evidence: antrea.evidence.clone(),
        remedy: text::partial::ANTREA_REMEDY.into(),
    })
}

/// No row (section 11.1): LoxiLB as the only proxy whose agent is not known to be gone, on a known Kubernetes node
/// (with processes unread, whether this is one is not known): partial.
fn partial_loxilb(f: &Facts) -> Option<Finding> {
    let ps = &f.proxies.proxies;
    let lx = ps.iter().find(|p| p.proxy == ProxyKind::Loxilb && p.agent_running != Some(false))?;
    if !ps.iter().all(|p| p.proxy == ProxyKind::Loxilb || p.agent_running == Some(false))
        || f.proxies.kubelet != Some(true)
    {
        return None;
    }
    Some(Finding {
        id: FindingId::ServiceRoutingPartial,
        severity: Severity::Warning,
        summary: text::partial::LOXILB.into(),
        evidence: [lx.evidence.clone(), f.proxies.kubelet_evidence.clone()].concat(),
        remedy: text::partial::LOXILB_REMEDY.into(),
    })
}

/// C2 without kube-proxy (X2's Cilium half alone): Cilium balances only ClusterIP traffic from pods: partial.
fn partial_cilium(f: &Facts) -> Option<Finding> {
    cilium_pod_lb(f).then(|| Finding {
        id: FindingId::ServiceRoutingPartial,
        severity: Severity::Warning,
        summary: text::partial::CILIUM.into(),
        evidence: f.cilium_evidence.clone(),
        remedy: text::partial::CILIUM_REMEDY.into(),
    })
}

/// Whether nothing programs Service routing as far as every source shows: all read, and no proxy but a kube-proxy
/// process without rules (listed, yet programs nothing: missing, as it always was).
fn nothing_programs(f: &Facts) -> bool {
    f.complete && f.proxies.proxies.iter().all(|p| p.proxy == ProxyKind::KubeProxy)
}

/// What was looked at for the missing rows.
fn looked_at(f: &Facts) -> Vec<String> {
    let mut evidence: Vec<String> = text::missing::LOOKED_AT.iter().map(|s| s.to_string()).collect();
    evidence.extend(f.proxies.not_proxies.iter().cloned());
    evidence
}

/// No row: nothing programs Services and no kubelet runs or is configured: not a Kubernetes node (yet), info.
fn not_a_node(f: &Facts) -> Option<Finding> {
    if !nothing_programs(f) || f.proxies.kubelet != Some(false) {
        return None;
    }
    let mut evidence = looked_at(f);
    evidence.extend(text::missing::NOT_A_NODE_LOOKED_AT.iter().map(|s| s.to_string()));
    Some(Finding {
        id: FindingId::ServiceRoutingMissing,
        severity: Severity::Info,
        summary: text::missing::NOT_A_NODE.into(),
        evidence,
        remedy: text::missing::NOT_A_NODE_REMEDY.into(),
    })
}

/// K8 (the kubelet's chains alone, no kube-proxy) with no replacement either, where a kubelet runs or is not known
/// not to: nobody programs Service routing, critical. (The kubelet's evidence is not listed: a node's missing
/// routing reads as it always did.)
fn k8_nobody_programs_services(f: &Facts) -> Option<Finding> {
    if !nothing_programs(f) || f.proxies.kubelet == Some(false) {
        return None;
    }
    let mut evidence = looked_at(f);
    if f.proxies.kubelet.is_none() {
        evidence.push(text::missing::KUBELET_UNKNOWN.into());
    }
    Some(Finding {
        id: FindingId::ServiceRoutingMissing,
        severity: Severity::Critical,
        summary: text::missing::SUMMARY.into(),
        evidence,
        remedy: text::missing::REMEDY.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        serde_json::from_str(
            r#"{"schema_version":2,"node":"n","collected_at":"2026-01-01T00:00:00Z","iptables_legacy":{"status":"disabled"},
            "nftables":{"status":"disabled"},"links":{"status":"disabled"},"ipvs":{"status":"disabled"},
            "bpf":{"status":"disabled"},"processes":{"status":"disabled"}}"#,
        )
        .unwrap()
    }

    fn proxy(proxy: ProxyKind, mode: ServiceProxyMode, agent: Option<bool>) -> ServiceProxy {
        let balances = match mode {
            ServiceProxyMode::PodClusterIp | ServiceProxyMode::AntreaProxy => vec![Traffic::ClusterIpFromPods],
            _ => Traffic::ALL.to_vec(),
        };
        ServiceProxy {
            proxy,
            mode,
            balances,
            services: None,
            agent_running: agent,
            evidence: vec![format!("{proxy:?}")],
            health_port_held_by: None,
        }
    }

    /// (finding id, severity) and the conflicting pairs for a set of proxies.
    fn decide(proxies: Vec<ServiceProxy>) -> (Vec<(String, Severity)>, Vec<ProxyPair>) {
        // Every source read: `service-routing.missing` could fire if the rules let it.
        let mut f = Facts { complete: true, ..Facts::default() };
        f.proxies.proxies = proxies;
        let (findings, pairs) = evaluate(&snap(), &f);
        (findings.into_iter().map(|f| (f.id.to_string(), f.severity)).collect(), pairs)
    }

    use ProxyKind as K;
    use ServiceProxyMode as M;

    #[test]
    fn the_pair_table_rates_documented_fights_critical_and_the_rest_warning() {
        let conflict = |s| vec![("service-routing.conflict".to_string(), s)];
        // Two BPF datapaths.
        let (f, p) = decide(vec![
            proxy(K::Cilium, M::KubeProxyReplacement, Some(true)),
            proxy(K::CalicoEbpf, M::Ebpf, Some(true)),
        ]);
        assert_eq!(
            (f, p),
            (
                conflict(Severity::Critical),
                vec![ProxyPair { a: K::Cilium, b: K::CalicoEbpf, severity: Severity::Critical }]
            )
        );
        // kube-proxy next to OVN-Kubernetes: a conflict, not a documented fight.
        let (f, _) =
            decide(vec![proxy(K::KubeProxy, M::Iptables, Some(true)), proxy(K::OvnKubernetes, M::Ovn, Some(true))]);
        assert_eq!(f, conflict(Severity::Warning));
        // kube-router next to kube-proxy: critical only when kube-proxy is in IPVS mode too.
        let (f, _) = decide(vec![proxy(K::KubeProxy, M::Ipvs, Some(true)), proxy(K::KubeRouter, M::Ipvs, Some(true))]);
        assert_eq!(f, conflict(Severity::Critical));
        let (f, _) =
            decide(vec![proxy(K::KubeProxy, M::Iptables, Some(true)), proxy(K::KubeRouter, M::Ipvs, Some(true))]);
        assert_eq!(f, conflict(Severity::Warning));
        // kube-proxy with its rules next to Calico's programs: Felix's cleanup is off, the rules are shadowed, not
        // fought over (DATAPLANE-FACTS section 10); a running kube-proxy without its rules is the fight.
        let (f, _) =
            decide(vec![proxy(K::KubeProxy, M::Iptables, Some(true)), proxy(K::CalicoEbpf, M::Ebpf, Some(true))]);
        assert_eq!(f, conflict(Severity::Warning));
        let (f, _) =
            decide(vec![proxy(K::KubeProxy, M::NoRules, Some(true)), proxy(K::CalicoEbpf, M::Ebpf, Some(true))]);
        assert_eq!(f, conflict(Severity::Critical));
        // An agent whose state is unknown cannot make it critical.
        let (f, _) = decide(vec![proxy(K::KubeProxy, M::NoRules, None), proxy(K::CalicoEbpf, M::Ebpf, Some(true))]);
        assert_eq!(f, conflict(Severity::Warning));
    }

    /// LoxiLB runs next to kube-proxy by design (DATAPLANE-FACTS section 11.1): in every kube-proxy mode the
    /// supported overlap, never a conflict; next to another datapath a conflict as any two.
    #[test]
    fn loxilb_next_to_kube_proxy_is_the_supported_overlap_and_next_to_a_datapath_a_conflict() {
        let loxilb = || ServiceProxy { balances: vec![Traffic::External], ..proxy(K::Loxilb, M::Ebpf, Some(true)) };
        let overlap = vec![("service-routing.overlap".to_string(), Severity::Info)];
        for mode in [M::Iptables, M::Nftables, M::Ipvs] {
            let (f, p) = decide(vec![proxy(K::KubeProxy, mode, Some(true)), loxilb()]);
            assert_eq!((f, p), (overlap.clone(), vec![]), "{mode:?}");
        }
        let (f, p) = decide(vec![proxy(K::Cilium, M::KubeProxyReplacement, Some(true)), loxilb()]);
        assert_eq!(f, vec![("service-routing.conflict".to_string(), Severity::Critical)]);
        assert_eq!(p, vec![ProxyPair { a: K::Cilium, b: K::Loxilb, severity: Severity::Critical }]);
        // Its programs on llb0 alone (its own TAP) balance nothing: no pair.
        let idle = ServiceProxy { balances: vec![], ..loxilb() };
        let (f, p) = decide(vec![proxy(K::KubeProxy, M::Iptables, Some(true)), idle]);
        assert_eq!((f, p), (vec![], vec![]));
    }

    #[test]
    fn a_proxy_whose_agent_is_gone_warns_and_an_unknown_mode_decides_nothing() {
        let down = vec![("service-proxy.agent-down".to_string(), Severity::Warning)];
        for k in [K::CalicoEbpf, K::KubeRouter, K::Antrea, K::OvnKubernetes, K::Loxilb] {
            let (f, _) = decide(vec![proxy(k, M::Ebpf, Some(false))]);
            assert_eq!(f, down, "{k:?}");
            // Processes unread: no word about the agent.
            let (f, _) = decide(vec![proxy(k, M::Ebpf, None)]);
            assert!(f.is_empty(), "{k:?}: {f:?}");
        }
        // Antrea with routes unread, next to kube-proxy: neither overlap nor conflict, and alone not partial.
        let (f, p) =
            decide(vec![proxy(K::KubeProxy, M::Iptables, Some(true)), proxy(K::Antrea, M::Unknown, Some(true))]);
        assert_eq!((f, p), (vec![], vec![]));
        let (f, _) = decide(vec![proxy(K::Antrea, M::Unknown, Some(true))]);
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn kube_proxy_in_ipvs_mode_is_told_it_is_deprecated() {
        let ids = |mode, running| {
            let mut facts = Facts { complete: true, ..Facts::default() };
            facts.dataplane.kube_proxy.mode = mode;
            facts.dataplane.kube_proxy.running = running;
            evaluate(&snap(), &facts).0.into_iter().map(|f| (f.id.to_string(), f.severity)).collect::<Vec<_>>()
        };
        let deprecated = ("kube-proxy.ipvs-deprecated".to_string(), Severity::Info);
        assert_eq!(ids(ProxyMode::Ipvs, Some(true)), vec![deprecated.clone()]);
        assert_eq!(ids(ProxyMode::Ipvs, None), vec![deprecated.clone()]);
        // Stale IPVS rules are told by kube-proxy.stale-rules, whose remedy removes them.
        assert!(!ids(ProxyMode::Ipvs, Some(false)).contains(&deprecated));
        for mode in [ProxyMode::Iptables, ProxyMode::Nftables] {
            assert!(!ids(mode, Some(true)).contains(&deprecated), "{mode:?}");
        }
    }

    #[test]
    fn cilium_programs_without_cilium_agent_are_agent_down_and_keep_the_conflict() {
        let down = ("service-proxy.agent-down".to_string(), Severity::Warning);
        let (f, _) = decide(vec![proxy(K::Cilium, M::KubeProxyReplacement, Some(false))]);
        assert_eq!(f, vec![down.clone()]);
        let (f, _) = decide(vec![proxy(K::Cilium, M::PodClusterIp, Some(false))]);
        assert!(f.contains(&down), "{f:?}");
        // Processes unread: nothing said about the agent.
        let (f, _) = decide(vec![proxy(K::Cilium, M::KubeProxyReplacement, None)]);
        assert!(f.is_empty(), "{f:?}");
        // kube-proxy runs next to Cilium's orphaned socket-LB: still the critical conflict, plus the agent.
        let mut facts = Facts { complete: true, ..Facts::default() };
        facts.dataplane.kube_proxy.mode = ProxyMode::Iptables;
        facts.dataplane.kube_proxy.running = Some(true);
        facts.dataplane.cilium.kube_proxy_replacement = Some(true);
        facts.dataplane.cilium.socket_lb = Some(true);
        facts.dataplane.cilium.agent_running = Some(false);
        facts.proxies.proxies =
            vec![proxy(K::KubeProxy, M::Iptables, Some(true)), proxy(K::Cilium, M::KubeProxyReplacement, Some(false))];
        let (findings, pairs) = evaluate(&snap(), &facts);
        let ids: Vec<_> = findings.iter().map(|f| (f.id.to_string(), f.severity)).collect();
        assert_eq!(ids, vec![("service-routing.conflict".to_string(), Severity::Critical), down]);
        assert_eq!(pairs, vec![ProxyPair { a: K::KubeProxy, b: K::Cilium, severity: Severity::Critical }]);
    }

    #[test]
    fn splits_overlap_and_gone_agents_are_left_to_the_stale_rules() {
        let (f, p) =
            decide(vec![proxy(K::KubeProxy, M::Nftables, Some(true)), proxy(K::Antrea, M::AntreaProxy, Some(true))]);
        assert_eq!((f, p), (vec![("service-routing.overlap".to_string(), Severity::Info)], vec![]));
        // kube-router's agent is gone: its leftovers are no second writer, but they no longer follow Services.
        let (f, p) = decide(vec![proxy(K::KubeProxy, M::Ipvs, Some(true)), proxy(K::KubeRouter, M::Ipvs, Some(false))]);
        assert_eq!((f, p), (vec![("service-proxy.agent-down".to_string(), Severity::Warning)], vec![]));
        // kube-proxy and Cilium are judged by section 7 (dataplane.kube_proxy / cilium), not here.
        let (f, _) = decide(vec![
            proxy(K::KubeProxy, M::Iptables, Some(true)),
            proxy(K::Cilium, M::KubeProxyReplacement, Some(true)),
        ]);
        assert!(f.is_empty(), "{f:?}");
    }

    /// X1 and X3 by kube-proxy's process (no recorded world has kube-proxy's rules without its process under
    /// Cilium's replacement, nor an unknown process state next to it).
    #[test]
    fn kube_proxy_rules_under_cilium_kpr_conflict_while_it_may_run_and_are_stale_once_it_is_gone() {
        let decide = |running| {
            let mut f = Facts { complete: true, ..Facts::default() };
            f.dataplane.kube_proxy.mode = ProxyMode::Nftables;
            f.dataplane.kube_proxy.services = 4;
            f.dataplane.kube_proxy.running = running;
            f.dataplane.cilium.kube_proxy_replacement = Some(true);
            f.dataplane.cilium.socket_lb = Some(true);
            evaluate(&snap(), &f)
        };
        let (findings, pairs) = decide(Some(false));
        assert_eq!(pairs, vec![]);
        let [stale] = findings.as_slice() else { panic!("{findings:?}") };
        assert_eq!((stale.id.to_string(), stale.severity), ("kube-proxy.stale-rules".to_string(), Severity::Warning));
        assert!(
            stale.summary.starts_with("kube-proxy (nftables mode, 4 services) rules are left behind")
                && stale.summary.contains("Cilium (socket-LB) handles Services"),
            "{}",
            stale.summary
        );
        assert!(stale.remedy.contains("nft delete table ip kube-proxy"), "{}", stale.remedy);

        let (findings, pairs) = decide(None);
        let [conflict] = findings.as_slice() else { panic!("{findings:?}") };
        assert_eq!(conflict.severity, Severity::Warning);
        assert!(conflict.summary.ends_with("(could not tell whether kube-proxy runs)"), "{}", conflict.summary);
        assert_eq!(pairs, vec![ProxyPair { a: K::KubeProxy, b: K::Cilium, severity: Severity::Warning }]);
    }

    /// K5 on a Calico node (no recorded world has calico-node next to a stale kube-proxy nftables table): Felix's
    /// NFTablesMode=Auto is misled too, which the evidence and the remedy say; iptables-mode leftovers do not.
    #[test]
    fn stale_kube_proxy_nftables_tables_on_a_calico_node_say_felix_is_misled() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/snapshots/conflict_when_kube_proxy_runs_next_to_calico_ebpf.json"
        );
        let calico: Snapshot = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let pids = calico.processes.get().unwrap().pids("calico-node");
        assert!(!pids.is_empty());
        let stale = |mode| {
            let mut f = Facts { complete: true, ..Facts::default() };
            f.dataplane.kube_proxy.mode = mode;
            f.dataplane.kube_proxy.running = Some(false);
            f.kube_proxy_evidence = vec!["table ip kube-proxy".into()];
            let (findings, _) = evaluate(&calico, &f);
            findings.into_iter().find(|f| f.id == FindingId::KubeProxyStaleRules).unwrap()
        };
        let nft = stale(ProxyMode::Nftables);
        assert_eq!(nft.evidence.len(), 2, "{:?}", nft.evidence);
        assert!(nft.evidence[1].starts_with(&format!("calico-node runs (pid {})", pids[0])), "{:?}", nft.evidence);
        assert!(nft.remedy.contains("then restart calico-node so it chooses again"), "{}", nft.remedy);
        let ipt = stale(ProxyMode::Iptables);
        assert_eq!(ipt.evidence, vec!["table ip kube-proxy".to_string()]);
        assert!(!ipt.remedy.contains("calico-node"), "{}", ipt.remedy);
    }

    /// K8 with the processes unread (no recorded world): still critical, and the evidence says the kubelet is unknown.
    #[test]
    fn nobody_programming_services_with_processes_unread_is_critical_and_says_so() {
        let (f, _) = decide(vec![]);
        assert_eq!(f, vec![("service-routing.missing".to_string(), Severity::Critical)]);
        let facts = Facts { complete: true, ..Facts::default() };
        let (findings, _) = evaluate(&snap(), &facts);
        assert_eq!(findings[0].evidence.last().map(String::as_str), Some(crate::catalogue::missing::KUBELET_UNKNOWN));
    }

    #[test]
    fn no_kube_proxy_and_antrea_without_proxy_all_is_partial() {
        let (f, _) = decide(vec![proxy(K::Antrea, M::AntreaProxy, Some(true))]);
        assert_eq!(f, vec![("service-routing.partial".to_string(), Severity::Warning)]);
        // A kube-proxy whose rules were just deleted still runs: overlap, neither partial nor missing.
        let (f, _) =
            decide(vec![proxy(K::KubeProxy, M::Unknown, Some(true)), proxy(K::Antrea, M::AntreaProxy, Some(true))]);
        assert_eq!(f, vec![("service-routing.overlap".to_string(), Severity::Info)]);
        // A full proxy next to it covers the rest.
        let (f, _) =
            decide(vec![proxy(K::Antrea, M::AntreaProxy, Some(true)), proxy(K::OvnKubernetes, M::Ovn, Some(true))]);
        assert!(f.iter().all(|(id, _)| id != "service-routing.partial"), "{f:?}");
    }
}
