//! The decision table (docs/DATAPLANE-FACTS.md section 7) as findings: conflict, overlap, stale rules, mixed backends,
//! missing routing, failed sources.

use crate::model::{Snapshot, SourceStatus};
use crate::report::{Finding, FindingId, ProxyMode, Severity};
use crate::rules::dataplane::Facts;

pub fn evaluate(snap: &Snapshot, f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let kp = &f.dataplane.kube_proxy;
    let cil = &f.dataplane.cilium;
    let kp_present = kp.mode.is_present();
    let kp_desc = describe_kube_proxy(f);
    let both_evidence = || [f.kube_proxy_evidence.clone(), f.cilium_evidence.clone()].concat();

    for (name, status, error, _) in snap.statuses() {
        if status == SourceStatus::Failed {
            out.push(crate::report::source_failed(
                name,
                error.unwrap_or(""),
                "run routewarden as root (it needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_ADMIN to read rules and \
                 BPF), install the missing tool, or fix the path in the configuration",
            ));
        }
    }

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
            running => out.push(Finding {
                id: FindingId::ServiceRoutingConflict,
                severity: if running == Some(true) { Severity::Critical } else { Severity::Warning },
                summary: format!(
                    "{kp_desc} and Cilium kube-proxy replacement ({how}) both program Services{}",
                    if running.is_none() { " (could not tell whether kube-proxy runs)" } else { "" }
                ),
                evidence: both_evidence(),
                remedy: "remove kube-proxy (kubectl -n kube-system delete ds kube-proxy; kubectl -n kube-system delete cm \
                         kube-proxy), then run `kube-proxy --cleanup` on each node; or turn kubeProxyReplacement off in \
                         Cilium. For new clusters: kubeadm init --skip-phases=addon/kube-proxy"
                    .into(),
            }),
        }
    } else if kp_present && kp.running == Some(false) {
        out.push(Finding {
            id: FindingId::KubeProxyStaleRules,
            severity: Severity::Warning,
            summary: format!(
                "{kp_desc} rules are present but no kube-proxy process runs; they will not follow Service changes"
            ),
            evidence: f.kube_proxy_evidence.clone(),
            remedy: cleanup_remedy(kp.mode),
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

    let legacy = f.backends.iter().any(|b| b.backend == "legacy" && b.signals.kube_proxy());
    let nft = f.backends.iter().any(|b| b.backend == "nft" && b.signals.kube_proxy());
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
            remedy: "find which backend kubelet uses (the one holding KUBE-IPTABLES-HINT), then remove the other backend's \
                     KUBE-* chains with that backend's tools (iptables-legacy-save | grep -v KUBE | iptables-legacy-restore, \
                     or the -nft equivalents)"
                .into(),
        });
    }

    let cilium_lb = cil.kube_proxy_replacement == Some(true);
    let cilium_pod_lb = cil.services.unwrap_or(0) > 0;
    if !kp_present && !cilium_lb {
        if cilium_pod_lb {
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
        } else if f.complete {
            out.push(Finding {
                id: FindingId::ServiceRoutingMissing,
                severity: Severity::Critical,
                summary:
                    "nobody programs Service routing on this node: no kube-proxy rules (iptables, nftables or IPVS) \
                          and no Cilium service load-balancing"
                        .into(),
                evidence: vec![
                    "no KUBE-SVC-*/KUBE-SERVICES chains in iptables-legacy or iptables-nft".into(),
                    "no nftables table ip/ip6 kube-proxy, no kube-ipvs0 link".into(),
                    "no Cilium socket-LB program on the cgroup roots and no populated cilium_lb*_services map".into(),
                ],
                remedy:
                    "check that kube-proxy (DaemonSet or static pod) or Cilium with kubeProxyReplacement runs on this \
                         node: kubectl -n kube-system get pods -o wide --field-selector spec.nodeName=$(hostname)"
                        .into(),
            });
        }
    }
    out
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
