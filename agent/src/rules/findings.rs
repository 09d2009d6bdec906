//! The decision table (docs/DATAPLANE-FACTS.md sections 7 and 10) as findings: conflict (kube-proxy and Cilium, and
//! every other pair of proxies), overlap, stale rules, mixed backends, partial or missing routing, failed sources.

use crate::model::{Backend, Snapshot};
use crate::report::{
    Finding, FindingId, ProxyKind, ProxyMode, ProxyPair, ServiceProxy, ServiceProxyMode, Severity, Traffic,
};
use crate::rules::dataplane::Facts;

/// The findings, and the pairs of proxies in conflict (for `dataplane.conflicts`).
pub fn evaluate(snap: &Snapshot, f: &Facts) -> (Vec<Finding>, Vec<ProxyPair>) {
    let mut out = Vec::new();
    let mut conflicts = Vec::new();
    let kp = &f.dataplane.kube_proxy;
    let cil = &f.dataplane.cilium;
    let kp_present = kp.mode.is_present();
    let kp_desc = describe_kube_proxy(f);
    let both_evidence = || [f.kube_proxy_evidence.clone(), f.cilium_evidence.clone()].concat();

    out.extend(crate::rules::remedy::source_failures(snap));

    if kp_present && cil.kube_proxy_replacement == Some(true) {
        let how = describe_kpr(f);
        match kp.running {
            Some(false) => out.push(Finding {
                id: FindingId::KubeProxyStaleRules,
                severity: Severity::Warning,
                summary: format!(
                    "{kp_desc} rules are left behind while kube-proxy does not run; Cilium ({how}) handles Services, \
                     but traffic that reaches netfilter is still rewritten by the stale rules"
                ),
                evidence: both_evidence(),
                remedy: cleanup_remedy(kp.mode),
            }),
            running => out.push({
                let severity = if running == Some(true) { Severity::Critical } else { Severity::Warning };
                conflicts.push(ProxyPair { a: ProxyKind::KubeProxy, b: ProxyKind::Cilium, severity });
                Finding {
                id: FindingId::ServiceRoutingConflict,
                severity,
                summary: format!(
                    "{kp_desc} and Cilium kube-proxy replacement ({how}) both program Services{}",
                    if running.is_none() { " (could not tell whether kube-proxy runs)" } else { "" }
                ),
                evidence: both_evidence(),
                remedy: "remove kube-proxy (kubectl -n kube-system delete ds kube-proxy; kubectl -n kube-system delete cm \
                         kube-proxy), then run `kube-proxy --cleanup` on each node; or turn kubeProxyReplacement off in \
                         Cilium. For new clusters: kubeadm init --skip-phases=addon/kube-proxy"
                    .into(),
            }}),
        }
    } else if kp_present && kp.running == Some(false) {
        let mut evidence = f.kube_proxy_evidence.clone();
        let mut remedy = cleanup_remedy(kp.mode);
        if let Some((note, also)) = calico_nftables_note(snap, kp.mode) {
            evidence.push(note);
            remedy.push_str(also);
        }
        out.push(Finding {
            id: FindingId::KubeProxyStaleRules,
            severity: Severity::Warning,
            summary: format!(
                "{kp_desc} rules are present but no kube-proxy process runs; they will not follow Service changes"
            ),
            evidence,
            remedy,
        });
    } else if kp_present && cil.present == Some(true) && cil.kube_proxy_replacement == Some(false) {
        out.push(Finding {
            id: FindingId::ServiceRoutingOverlap,
            severity: Severity::Info,
            summary: format!(
                "{kp_desc} programs Services; Cilium runs without kube-proxy replacement (it only balances ClusterIP \
                 traffic from pods). This is the supported combination"
            ),
            evidence: both_evidence(),
            remedy: "nothing to do".into(),
        });
    }

    if f.other_mode_leftovers > 0 && kp.running != Some(false) {
        out.push(Finding {
            id: FindingId::KubeProxyStaleRules,
            severity: Severity::Warning,
            summary: format!(
                "{} iptables-mode kube-proxy chains are left over from an earlier mode; kube-proxy now runs in {} mode",
                f.other_mode_leftovers,
                mode_name(kp.mode)
            ),
            evidence: f.kube_proxy_evidence.clone(),
            remedy: "remove the iptables-mode leftovers: `kube-proxy --cleanup` (then restart kube-proxy), or \
                     `iptables-save | grep -v KUBE-SVC | ...` by hand"
                .into(),
        });
    }

    let legacy = f.backends.iter().any(|b| b.backend == Backend::Legacy && b.signals.kube_proxy());
    let nft = f.backends.iter().any(|b| b.backend == Backend::Nft && b.signals.kube_proxy());
    if legacy && nft {
        let evidence = f
            .backends
            .iter()
            .filter(|b| b.signals.kube_proxy())
            .map(|b| {
                let s = &b.signals;
                let n = s.iptables_mode_chains + s.ipvs_mode_chains + s.shared_chains;
                format!("iptables-{} {}: {n} kube-proxy chains ({} KUBE-SVC-*)", b.backend, b.family, s.svc_chains)
            })
            .collect();
        out.push(Finding {
            id: FindingId::IptablesMixedBackends,
            severity: Severity::Warning,
            summary: "kube-proxy chains exist in both iptables-legacy and iptables-nft; one set is stale or two writers disagree".into(),
            evidence,
            remedy: crate::rules::remedy::mixed_backends(snap, &f.backends),
        });
    }

    // IPVS mode is deprecated since 1.35 (kubernetes#134539, KEP-5495): the KubeProxyIPVS gate goes off by default
    // in 1.40 and the mode is gone in 1.43. Said while kube-proxy programs it; stale IPVS rules have their own finding.
    if kp.mode == ProxyMode::Ipvs && kp.running != Some(false) {
        let mut remedy = String::from(
            "plan the move to nftables mode: kernel 5.13 or later, set `mode: nftables` in the \
             KubeProxyConfiguration (kubectl -n kube-system edit cm kube-proxy) and roll kube-proxy node by \
             node, then remove the IPVS leftovers (`ipvsadm --clear`, `ip link delete kube-ipvs0`). Nodes on \
             older kernels move to iptables mode instead",
        );
        // LoxiLB's service-proxy mode reads IPVS only (docs/DATAPLANE-FACTS.md section 11.1).
        if f.proxies.proxies.iter().any(|p| p.proxy == ProxyKind::Loxilb) {
            remedy.push_str(
                ". LoxiLB runs here: its service-proxy mode (--ipvs-compat) imports kube-proxy's IPVS services \
                 and works with IPVS mode only, so moving kube-proxy off IPVS ends that import",
            );
        }
        out.push(Finding {
            id: FindingId::KubeProxyIpvsDeprecated,
            severity: Severity::Info,
            summary: format!(
                "{kp_desc}: IPVS mode is deprecated since Kubernetes 1.35 and planned to be off by default in 1.40 and \
                 removed in 1.43; nftables mode is the maintained successor (GA since 1.33, planned default in 1.40)"
            ),
            evidence: f.kube_proxy_evidence.clone(),
            remedy,
        });
    }

    pairs(f, &mut out, &mut conflicts);
    agents_down(f, &mut out);

    let cilium_lb = cil.kube_proxy_replacement == Some(true);
    let cilium_pod_lb = cil.services.unwrap_or(0) > 0;
    // Another proxy that balances more than pod ClusterIP traffic and whose agent is not known to be gone.
    // (LoxiLB is not one: it balances the traffic that arrives on its interfaces, and ClusterIPs only as it imports
    // them from kube-proxy's IPVS; docs/DATAPLANE-FACTS.md section 11.1.)
    let other_full = f.proxies.proxies.iter().any(|p| {
        !matches!(p.proxy, ProxyKind::KubeProxy | ProxyKind::Cilium | ProxyKind::Loxilb)
            && !is_split(p)
            && p.agent_running != Some(false)
    });
    // LoxiLB as the only proxy whose agent is not known to be gone.
    let loxilb =
        f.proxies.proxies.iter().find(|p| p.proxy == ProxyKind::Loxilb && p.agent_running != Some(false)).filter(
            |_| f.proxies.proxies.iter().all(|p| p.proxy == ProxyKind::Loxilb || p.agent_running == Some(false)),
        );
    let antrea_split = f.proxies.proxies.iter().find(|p| p.mode == ServiceProxyMode::AntreaProxy);
    if !kp_present && !cilium_lb && !other_full {
        // A kube-proxy that runs without rules right now (another writer deleted them) still serves the rest.
        let kp_listed =
            f.proxies.proxies.iter().any(|p| p.proxy == ProxyKind::KubeProxy && p.agent_running != Some(false));
        if let (Some(antrea), false, false) = (antrea_split, cilium_pod_lb, kp_listed) {
            out.push(Finding {
                id: FindingId::ServiceRoutingPartial,
                severity: Severity::Warning,
                summary:
                    "no kube-proxy, and Antrea runs without proxyAll: AntreaProxy balances only ClusterIP traffic \
                          from pods; NodePort, LoadBalancer and host traffic to Services go nowhere"
                        .into(),
                evidence: antrea.evidence.clone(),
                remedy: "enable antreaProxy.proxyAll in the Antrea configuration, or deploy kube-proxy".into(),
            });
        } else if let (Some(lx), Some(true)) = (loxilb, f.proxies.kubelet) {
            // (Only on a known Kubernetes node: with processes unread, whether this is one is not known.)
            out.push(Finding {
                id: FindingId::ServiceRoutingPartial,
                severity: Severity::Warning,
                summary: "no kube-proxy, and LoxiLB does not replace it on its own: it balances the LoadBalancer \
                          services kube-loxilb gives it, and ClusterIP and NodePort services only as it imports them \
                          from kube-proxy's IPVS mode (--ipvs-compat); ClusterIP traffic goes nowhere"
                    .into(),
                evidence: [lx.evidence.clone(), f.proxies.kubelet_evidence.clone()].concat(),
                remedy: "deploy kube-proxy in IPVS mode next to LoxiLB (its service-proxy mode, loxilb started with \
                         --ipvs-compat), or another Service proxy; a machine that is only a LoxiLB load balancer \
                         should run no kubelet"
                    .into(),
            });
        } else if cilium_pod_lb {
            out.push(Finding {
                id: FindingId::ServiceRoutingPartial,
                severity: Severity::Warning,
                summary:
                    "no kube-proxy, and Cilium runs without kube-proxy replacement: only ClusterIP traffic from pods \
                          is load-balanced; NodePort, LoadBalancer and host traffic to Services go nowhere"
                        .into(),
                evidence: f.cilium_evidence.clone(),
                remedy: "enable kubeProxyReplacement in Cilium, or deploy kube-proxy".into(),
            });
        } else if f.complete && f.proxies.proxies.iter().all(|p| p.proxy == ProxyKind::KubeProxy) {
            // (A kube-proxy process without rules is listed, yet programs nothing: missing, as it always was.)
            let mut evidence: Vec<String> = vec![
                "no KUBE-SVC-*/KUBE-SERVICES chains in iptables-legacy or iptables-nft".into(),
                "no nftables table ip/ip6 kube-proxy, no kube-ipvs0 link".into(),
                "no Cilium socket-LB program on the cgroup roots and no populated cilium_lb*_services map".into(),
            ];
            evidence.extend(f.proxies.not_proxies.iter().cloned());
            if f.proxies.kubelet == Some(false) {
                evidence.push(
                    "no Calico eBPF program attached, no kube-router kube-dummy-if or service chains, no Antrea, no \
                     OVN-Kubernetes Service chains"
                        .into(),
                );
                evidence.push("no kubelet process and no kubelet configuration file".into());
                out.push(Finding {
                    id: FindingId::ServiceRoutingMissing,
                    severity: Severity::Info,
                    summary: "not a Kubernetes node (yet): no kubelet runs or is configured here, and nobody programs \
                              Service routing"
                        .into(),
                    evidence,
                    remedy: "nothing to do until this machine joins a cluster; if it should be a node, install and \
                             start the kubelet (kubeadm join, or your distribution's node setup)"
                        .into(),
                });
            } else {
                // (The kubelet's evidence is not listed: a node's missing routing reads as it always did.)
                if f.proxies.kubelet.is_none() {
                    evidence.push("processes could not be read: whether a kubelet runs is unknown".into());
                }
                out.push(Finding {
                    id: FindingId::ServiceRoutingMissing,
                    severity: Severity::Critical,
                    summary:
                        "nobody programs Service routing on this node: no kube-proxy rules (iptables, nftables or IPVS) \
                              and no Cilium service load-balancing"
                            .into(),
                    evidence,
                    remedy:
                        "check that kube-proxy (DaemonSet or static pod) or Cilium with kubeProxyReplacement runs on this \
                             node: kubectl -n kube-system get pods -o wide --field-selector spec.nodeName=$(hostname)"
                            .into(),
                });
            }
        }
    }
    (out, conflicts)
}

/// A proxy that balances only ClusterIP traffic from pods by design (a supported split with kube-proxy).
fn is_split(p: &ServiceProxy) -> bool {
    matches!(p.mode, ServiceProxyMode::PodClusterIp | ServiceProxyMode::AntreaProxy)
}

/// The decision table over pairs of proxies (docs/DATAPLANE-FACTS.md section 10), for every pair but kube-proxy
/// and Cilium (section 7, above): a conflict when both balance the same traffic, an overlap for a supported split.
/// A proxy whose agent is known not to run is left to the stale-rules findings.
fn pairs(f: &Facts, out: &mut Vec<Finding>, conflicts: &mut Vec<ProxyPair>) {
    let ps = &f.proxies.proxies;
    for (i, a) in ps.iter().enumerate() {
        for b in &ps[i + 1..] {
            if (a.proxy, b.proxy) == (ProxyKind::KubeProxy, ProxyKind::Cilium) {
                continue;
            }
            if a.agent_running == Some(false) || b.agent_running == Some(false) {
                continue;
            }
            // What a proxy of unknown mode balances is not known (Antrea with routes unread): neither a split
            // nor a conflict. (kube-proxy's Unknown still balances everything it has rules for.)
            if [a, b].iter().any(|p| p.mode == ServiceProxyMode::Unknown && p.proxy != ProxyKind::KubeProxy) {
                continue;
            }
            let shared: Vec<Traffic> = a.balances.iter().filter(|t| b.balances.contains(t)).copied().collect();
            if shared.is_empty() {
                continue;
            }
            let evidence = [a.evidence.clone(), b.evidence.clone()].concat();
            let shared_text = shared.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
            if is_split(a) || is_split(b) {
                out.push(Finding {
                    id: FindingId::ServiceRoutingOverlap,
                    severity: Severity::Info,
                    summary: format!(
                        "{} and {} both balance {shared_text}; {} balances only ClusterIP traffic from pods by design. \
                         This is a supported combination",
                        describe(a),
                        describe(b),
                        if is_split(a) { a.proxy.as_str() } else { b.proxy.as_str() }
                    ),
                    evidence,
                    remedy: "nothing to do".into(),
                });
                continue;
            }
            // LoxiLB runs next to kube-proxy by design: as the LoadBalancer provider of kube-loxilb (any kube-proxy
            // mode), and in its service-proxy mode it imports kube-proxy's IPVS services (--ipvs-compat) and takes
            // their traffic on its tc hooks (docs/DATAPLANE-FACTS.md section 11.1).
            if (a.proxy, b.proxy) == (ProxyKind::KubeProxy, ProxyKind::Loxilb) {
                let how = if a.mode == ServiceProxyMode::Ipvs {
                    "LoxiLB's service-proxy mode imports kube-proxy's IPVS services (--ipvs-compat) and balances them \
                     in eBPF before they reach IPVS"
                } else {
                    "LoxiLB balances the LoadBalancer services kube-loxilb gives it, kube-proxy the rest"
                };
                out.push(Finding {
                    id: FindingId::ServiceRoutingOverlap,
                    severity: Severity::Info,
                    summary: format!(
                        "{} and {} both balance {shared_text}; {how}. This is a supported combination",
                        describe(a),
                        describe(b)
                    ),
                    evidence,
                    remedy: "nothing to do; keep kube-proxy: LoxiLB does not replace it on its own".into(),
                });
                continue;
            }
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
            conflicts.push(ProxyPair { a: a.proxy, b: b.proxy, severity });
            out.push(Finding {
                id: FindingId::ServiceRoutingConflict,
                severity,
                summary: format!(
                    "{} and {} both balance {shared_text} on this node{}",
                    describe(a),
                    describe(b),
                    if both_running { "" } else { " (could not tell whether both agents run)" }
                ),
                evidence,
                remedy: pair_remedy(a, b),
            });
        }
    }
}

/// A Service proxy (other than kube-proxy, which has `kube-proxy.stale-rules`) whose programs, links or rules are
/// there while its agent is known not to run: nothing keeps them in step with the Services. Only when the
/// processes source was read (`agent_running` is `Some(false)`). Cilium's socket-LB and tc programs keep balancing
/// from their pinned maps after the agent is gone (an uninstall that did not clean up, a crashed agent); its
/// conflict with a kube-proxy that also runs stays (section 7 does not ask whether cilium-agent runs).
fn agents_down(f: &Facts, out: &mut Vec<Finding>) {
    for p in &f.proxies.proxies {
        if p.proxy == ProxyKind::KubeProxy || p.agent_running != Some(false) {
            continue;
        }
        let (agent, remedy) = match p.proxy {
            ProxyKind::Cilium => (
                "cilium-agent",
                "if Cilium should run here, find out why its cilium pod is not running (kubectl -n kube-system get \
                 pods -l k8s-app=cilium -o wide); if it was removed, detach its programs (the cil_sock* cgroup \
                 attachments and the cil_* tc/tcx programs), remove /sys/fs/bpf/tc/globals/cilium_* and its links, \
                 or reboot the node, and deploy another Service proxy",
            ),
            ProxyKind::CalicoEbpf => (
                "calico-node",
                "if Calico should run here, find out why its calico-node pod is not running; if it was removed, \
                 detach its programs (the cali_* tc/tcx and cgroup attachments) and remove the \
                 /sys/fs/bpf/tc/globals/cali_* pins, and deploy another Service proxy",
            ),
            ProxyKind::KubeRouter => (
                "kube-router",
                "if kube-router should run here, find out why its pod is not running; if it was removed, clear its \
                 IPVS services (`ipvsadm --clear`), delete kube-dummy-if and its KUBE-ROUTER-* chains",
            ),
            ProxyKind::Antrea => (
                "antrea-agent",
                "if Antrea should run here, find out why its antrea-agent pod is not running; if it was removed, \
                 delete antrea-gw0, its routes and its ANTREA-* chains",
            ),
            ProxyKind::Loxilb => (
                "loxilb",
                "if LoxiLB should run here, find out why its loxilb pod is not running (kubectl -n kube-system get \
                 pods -o wide | grep loxilb); if it was removed, detach its programs (tc_packet_func* on tc, \
                 xdp_packet_func on XDP), delete its TAP device llb0 and unmount /opt/loxilb/dp",
            ),
            _ => (
                "ovnkube",
                "if OVN-Kubernetes should run here, find out why its ovnkube-node pod is not running; if it was \
                 removed, delete its OVN-KUBE-* chains and its nftables table inet ovn-kubernetes",
            ),
        };
        out.push(Finding {
            id: FindingId::ServiceProxyAgentDown,
            severity: Severity::Warning,
            summary: format!(
                "{} is programmed on this node but no {agent} process runs: its Service rules will not follow \
                 Service changes",
                describe(p)
            ),
            evidence: [p.evidence.clone(), vec![format!("no {agent} process")]].concat(),
            remedy: remedy.into(),
        });
    }
}

/// "calico-ebpf (ebpf mode, 3 services)".
fn describe(p: &ServiceProxy) -> String {
    if p.mode == ServiceProxyMode::NoRules {
        return format!("{} (runs, with no Service rules right now)", p.proxy.as_str());
    }
    let services = p.services.map(|n| format!(", {n} services")).unwrap_or_default();
    format!("{} ({} mode{services})", p.proxy.as_str(), p.mode.as_str())
}

fn pair_remedy(a: &ServiceProxy, b: &ServiceProxy) -> String {
    match (a.proxy, b.proxy) {
        (ProxyKind::KubeProxy, ProxyKind::CalicoEbpf) => "Calico's eBPF dataplane replaces kube-proxy: remove kube-proxy from \
             this node (kubectl -n kube-system delete ds kube-proxy, or a nodeSelector that keeps it off eBPF nodes) and \
             keep Felix's BPFKubeProxyIptablesCleanupEnabled=true so Felix removes its leftovers; if kube-proxy must \
             stay, set BPFKubeProxyIptablesCleanupEnabled=false so the two stop deleting each other's state, and move \
             one of them off the :10256 health port"
            .into(),
        (ProxyKind::KubeProxy, ProxyKind::KubeRouter) => "run kube-router with --run-service-proxy=false, or remove kube-proxy \
             (kubectl -n kube-system delete ds kube-proxy); do not run `kube-proxy --cleanup` while kube-router serves \
             Services: it flushes every IPVS service, kube-router's too"
            .into(),
        (ProxyKind::KubeProxy, ProxyKind::Antrea) => "Antrea proxyAll replaces kube-proxy: remove kube-proxy (kubectl -n \
             kube-system delete ds kube-proxy, then clean its rules) or set antreaProxy.proxyAll=false"
            .into(),
        (ProxyKind::KubeProxy, ProxyKind::OvnKubernetes) => "OVN-Kubernetes balances Services itself: remove kube-proxy \
             (kubectl -n kube-system delete ds kube-proxy) and clean its rules with `kube-proxy --cleanup`"
            .into(),
        (x, y) => format!(
            "run one Service proxy on this node: turn Service handling off in {} or in {} (two datapaths rewriting the same \
             Service traffic break connections unpredictably)",
            x.as_str(),
            y.as_str()
        ),
    }
}

fn mode_name(m: ProxyMode) -> &'static str {
    match m {
        ProxyMode::Iptables => "iptables",
        ProxyMode::Nftables => "nftables",
        ProxyMode::Ipvs => "IPVS",
        ProxyMode::None => "no",
        ProxyMode::Unknown => "an unknown",
    }
}

/// "kube-proxy (iptables mode, nft backend, 143 services)".
pub fn describe_kube_proxy(f: &Facts) -> String {
    let kp = &f.dataplane.kube_proxy;
    let mut parts = vec![format!("{} mode", mode_name(kp.mode))];
    if let Some(b) = &kp.backend {
        parts.push(format!("{b} backend"));
    }
    parts.push(format!("{} services", kp.services));
    format!("kube-proxy ({})", parts.join(", "))
}

/// "socket-LB, BPF NodePort, 141 services".
pub fn describe_kpr(f: &Facts) -> String {
    let c = &f.dataplane.cilium;
    let mut parts = Vec::new();
    if c.socket_lb == Some(true) {
        parts.push("socket-LB".to_string());
    }
    if c.bpf_nodeport == Some(true) {
        parts.push("BPF NodePort".to_string());
    }
    if c.xdp_nodeport == Some(true) {
        parts.push("XDP NodePort".to_string());
    }
    if let Some(mode) = &c.configured_kpr {
        parts.push(format!("configured kubeProxyReplacement {mode}"));
    }
    if let Some(n) = c.services {
        parts.push(format!("{n} services in its service maps"));
    }
    parts.join(", ")
}

/// Calico's Felix resolves `NFTablesMode=Auto` by listing the chains of the `ip`/`ip6` `kube-proxy` nftables tables:
/// any chain means "kube-proxy runs in nftables mode" (calico `felix/nftables/utils.go`, `KubeProxyNftablesEnabledFn`),
/// so a stale table misleads Calico too. Said only when calico-node runs and the stale rules are nftables ones.
fn calico_nftables_note(snap: &Snapshot, mode: ProxyMode) -> Option<(String, &'static str)> {
    let calico = snap.processes.get().map(|p| p.pids("calico-node")).filter(|p| !p.is_empty())?;
    (mode == ProxyMode::Nftables).then(|| {
        (
            format!(
                "calico-node runs (pid {}): with NFTablesMode=Auto, Felix takes any chain in the kube-proxy nftables \
                 table as kube-proxy running in nftables mode, so this stale table misleads Calico's dataplane choice too",
                calico.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
            "; on this Calico node, delete the stale kube-proxy nftables tables (or set Felix's NFTablesMode \
             explicitly) before relying on NFTablesMode=Auto, then restart calico-node so it chooses again",
        )
    })
}

fn cleanup_remedy(mode: ProxyMode) -> String {
    let how = match mode {
        ProxyMode::Nftables => "`nft delete table ip kube-proxy; nft delete table ip6 kube-proxy`",
        ProxyMode::Ipvs => "`ipvsadm --clear`, `ip link delete kube-ipvs0` and removal of the KUBE-* chains and ipsets",
        _ => "`iptables-save | grep -v KUBE | iptables-restore` (and ip6tables; kubelet re-creates its own chains)",
    };
    format!(
        "if kube-proxy was removed on purpose, run `kube-proxy --cleanup` on this node (with the same iptables backend), \
         or by hand {how}; if it should run, find out why its pod is not running"
    )
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
