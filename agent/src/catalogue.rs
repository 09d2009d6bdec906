//! The findings catalogue: for every built-in `FindingId`, what it means, what evidence it carries, what usually
//! fixes it and which shipped alert fires. The findings reference (`docs/findings/`) and `routewarden-findings(7)`
//! are generated from it (`outputs::reference`); the rules' own summaries and remedies stay where they are raised.

use crate::report::FindingId;

/// What a user reads about one built-in finding id. Plain text (Markdown backticks allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindingDoc {
    /// A few words.
    pub title: &'static str,
    /// The severities it is raised with, and when.
    pub severity: &'static str,
    /// What it means.
    pub meaning: &'static str,
    /// What the finding's `evidence` lines show.
    pub evidence: &'static str,
    /// What usually fixes it (the finding's own `remedy` is more precise).
    pub remedy: &'static str,
    /// The alerts of `packaging/prometheus/routewarden-alerts.yaml` that fire on it.
    pub alerts: &'static [&'static str],
}

/// The catalogue entry of a built-in id; `None` for a journal rule's id (its rule file documents it).
pub fn doc(id: &FindingId) -> Option<FindingDoc> {
    let d = match id {
        FindingId::SourceFailed => FindingDoc {
            title: "a source could not be read",
            severity: "warning",
            meaning: "One of the node's sources (iptables-legacy, nftables, links, ipvs, bpf, processes, routes, \
                certificates, mounts, cni, journal, ...) failed. Nothing is concluded from it: a conflict or a \
                missing proxy that would show only there is unknown, and `check` exits 3.",
            evidence: "The error chain of the failed read (the tool, the file or the syscall, and why).",
            remedy: "The remedy follows the error's kind (`sources.<name>.failure.kind` in the JSON report): permission \
                denied names the capability each source needs (CAP_NET_ADMIN for iptables-legacy and nftables, \
                CAP_SYS_ADMIN for bpf) or root; a missing tool names the binary and its Debian and RPM package; over \
                a size bound or a deadline names the configuration key that raises it (`iptables_legacy_max_bytes`, \
                `command_timeout_secs`); not found names the path's key; a parse error is a bug to report with the \
                file; in a container, the mount the host view lacks. Sources that failed the same way share one \
                remedy, printed once by `check`.",
            alerts: &["RoutewardenSourceFailing"],
        },
        FindingId::ServiceRoutingConflict => FindingDoc {
            title: "two Service proxies program the same traffic",
            severity: "critical for the documented fights (kube-proxy next to Cilium kube-proxy replacement, next \
                to Calico eBPF with its rules deleted or flip-flopping, next to kube-router in IPVS mode, two BPF \
                datapaths); warning for other pairs or when an agent's state is unknown",
            meaning: "Two Service proxies (kube-proxy, Cilium, Calico eBPF, kube-router, Antrea proxyAll, \
                OVN-Kubernetes, LoxiLB) both balance the same Service traffic on this node. Which one a packet meets \
                depends on hook order: connections break or go to stale backends.",
            evidence: "Each proxy's rules, programs or links (chain counts, program ids and attach points, VIP \
                links), its process, and any other process on kube-proxy's health port 10256.",
            remedy: "Keep one proxy. For kube-proxy next to a kube-proxy replacement: delete the kube-proxy \
                DaemonSet, then run `kube-proxy --cleanup` on each node. The finding's remedy names the pair's fix.",
            alerts: &["RoutewardenServiceRoutingConflict", "RoutewardenServiceProxyConflict"],
        },
        FindingId::ServiceRoutingOverlap => FindingDoc {
            title: "two proxies present, in a supported combination",
            severity: "info",
            meaning: "Cilium without kube-proxy replacement next to kube-proxy, AntreaProxy without proxyAll \
                next to kube-proxy, or LoxiLB next to kube-proxy (its LoadBalancer mode, or its service-proxy mode \
                that imports kube-proxy's IPVS services): each takes its part of the traffic, as their projects \
                document.",
            evidence: "What each proxy programs.",
            remedy: "Nothing to do.",
            alerts: &[],
        },
        FindingId::ServiceRoutingPartial => FindingDoc {
            title: "a proxy balances only part of Service traffic",
            severity: "warning",
            meaning: "A CNI balances pod traffic to ClusterIPs (Cilium without kube-proxy replacement, AntreaProxy \
                without proxyAll) but nothing handles host-network and NodePort traffic; or LoxiLB runs on a \
                Kubernetes node without kube-proxy (it balances its LoadBalancer services, and ClusterIPs only as it \
                imports them from kube-proxy's IPVS mode), so ClusterIP traffic goes nowhere.",
            evidence: "The proxy's programs or rules, and the absence of kube-proxy.",
            remedy: "Enable the CNI's full replacement (Cilium kubeProxyReplacement, Antrea proxyAll) or deploy \
                kube-proxy (in IPVS mode next to LoxiLB's service-proxy mode).",
            alerts: &[],
        },
        FindingId::ServiceRoutingMissing => FindingDoc {
            title: "nobody programs Service routing",
            severity: "critical where a kubelet runs or is configured; info on a machine with neither (not a \
                Kubernetes node yet)",
            meaning: "No Service proxy was found (or only a kube-proxy that runs without rules): ClusterIPs and \
                NodePorts do not work on this node.",
            evidence: "What was looked at, and the kubelet's process or files.",
            remedy: "Deploy kube-proxy or a kube-proxy replacement, or find why its pod is not running on this node \
                (kubectl -n kube-system get pods -o wide).",
            alerts: &["RoutewardenServiceRoutingMissing"],
        },
        FindingId::ServiceRoutingChurn => FindingDoc {
            title: "kube-proxy's chains are deleted and re-created",
            severity: "warning (daemon only: it compares collections); the pair's conflict with the other party turns critical",
            meaning: "Between two collections kube-proxy's chains disappeared and came back: another agent is \
                deleting them (Calico's kube-proxy cleanup, kube-router's IPVS sync).",
            evidence: "The chains that flipped and the likely other party.",
            remedy: "Stop the other agent's cleanup or remove kube-proxy; the finding's remedy names the party.",
            alerts: &[],
        },
        FindingId::KubeProxyStaleRules => FindingDoc {
            title: "kube-proxy rules without kube-proxy",
            severity: "warning",
            meaning: "kube-proxy's chains or tables are present but no kube-proxy runs: the rules still steer \
                traffic to endpoints that no longer get updated.",
            evidence: "The chains or tables found, per backend.",
            remedy: "Run `kube-proxy --cleanup` on the node (with the mode it ran in), or restart kube-proxy.",
            alerts: &["RoutewardenStaleKubeProxyRules"],
        },
        FindingId::KubeProxyModeMismatch => FindingDoc {
            title: "kube-proxy runs one mode, the node shows another's rules",
            severity: "warning",
            meaning: "kube-proxy's `/proxyMode` names a mode whose rules are missing, or another mode's rules are \
                there too: leftovers of an earlier mode.",
            evidence: "kube-proxy's answer and the rules of each mode.",
            remedy: "The other mode's rules are leftovers: run `kube-proxy --cleanup` for them, or fix kube-proxy's \
                configured mode.",
            alerts: &[],
        },
        FindingId::KubeProxyUnhealthy => FindingDoc {
            title: "kube-proxy reports itself unhealthy",
            severity: "warning",
            meaning: "kube-proxy's `/healthz` (port 10256) fails: its rules are not kept in sync.",
            evidence: "kube-proxy's answer.",
            remedy: "Read kube-proxy's logs (kubectl -n kube-system logs -l k8s-app=kube-proxy).",
            alerts: &["RoutewardenKubeProxyUnhealthy"],
        },
        FindingId::KubeProxyIpvsDeprecated => FindingDoc {
            title: "kube-proxy runs in IPVS mode, which is deprecated",
            severity: "info",
            meaning: "kube-proxy programs Services with IPVS. The IPVS mode is deprecated since Kubernetes 1.35 \
                (KEP-5495: behind a feature gate in 1.37, off by default in 1.40, removed in 1.43); nftables is the \
                mode kube-proxy's maintainers point to. Nothing is wrong today: the verdict and the Node conditions \
                are unchanged.",
            evidence: "kube-proxy's mode and the Services it balances in IPVS.",
            remedy: "Plan the move to nftables mode (`mode: nftables` in the KubeProxyConfiguration; kernel 5.13 or \
                newer), or iptables mode on older kernels, before the release that turns IPVS off.",
            alerts: &[],
        },
        FindingId::IptablesMixedBackends => FindingDoc {
            title: "Kubernetes rules in both iptables backends",
            severity: "warning",
            meaning: "KUBE-* chains exist in iptables-legacy and iptables-nft: one set is stale and may win.",
            evidence: "The chains found in each backend.",
            remedy: "The remedy names what was read: which backend holds how many KUBE-SVC-* chains, where the \
                kubelet's KUBE-IPTABLES-HINT is (the backend kube-proxy's iptables-wrapper follows), and which \
                backend the node's `iptables` writes (its update-alternatives symlink chain, `iptables_command`). \
                Keep the kubelet's backend and remove the other backend's KUBE-* chains with that backend's own \
                tools (`iptables-legacy-save | grep -v KUBE | iptables-legacy-restore`, or the -nft ones); when the \
                node's `iptables` points elsewhere, `update-alternatives --set iptables` it to the kubelet's.",
            alerts: &["RoutewardenIptablesMixedBackends"],
        },
        FindingId::CertificateExpired => FindingDoc {
            title: "a certificate has expired",
            severity: "critical",
            meaning: "A certificate under `certificates.paths` is past its notAfter (or not yet valid).",
            evidence: "The file, subject, issuer, serial and end date.",
            remedy: "Renew it (kubeadm certs renew, or re-join the node) and check the node's clock.",
            alerts: &["RoutewardenCertificateExpiringCritical", "RoutewardenCriticalFinding"],
        },
        FindingId::CertificateExpiring => FindingDoc {
            title: "a certificate expires soon",
            severity: "warning under `certificates.warning_days` (28), critical under `certificates.critical_days` \
                (7)",
            meaning: "A certificate under `certificates.paths` will expire soon.",
            evidence: "The file, subject, issuer, serial and end date.",
            remedy: "Renew it before it expires (kubeadm certs renew; the kubelet rotates its own client \
                certificate when rotation works).",
            alerts: &["RoutewardenCertificateExpiring", "RoutewardenCertificateExpiringCritical", "RoutewardenCriticalFinding"],
        },
        FindingId::CertificateUnreadable => FindingDoc {
            title: "a certificate file does not parse",
            severity: "warning",
            meaning: "A file matched by `certificates.paths` could not be read or parsed (a per-file problem, \
                never a failed source), or the walk stopped at a bound.",
            evidence: "The path and the reason.",
            remedy: "Check the file, or narrow `certificates.paths`.",
            alerts: &[],
        },
        FindingId::NfsClusteripSocketLb => FindingDoc {
            title: "NFS mounted from a ClusterIP under socket-LB",
            severity: "warning",
            meaning: "An NFS mount's server is a Service ClusterIP while Cilium's socket-LB is attached: kernel NFS \
                traffic is not translated by socket-LB, and the mount hangs when the backend moves.",
            evidence: "The mount, its server address and the Service range it falls in.",
            remedy: "Mount the NFS server by an address that is not a ClusterIP, or set Cilium's \
                socketLB.hostNamespaceOnly.",
            alerts: &["RoutewardenNfsClusterIpSocketLb"],
        },
        FindingId::CniConfigMissing => FindingDoc {
            title: "the kubelet runs without a CNI configuration",
            severity: "critical",
            meaning: "The CNI configuration directory (`cni_dir`) has no usable configuration while the kubelet \
                runs: new pods get no network.",
            evidence: "The directory's files and why none is usable.",
            remedy: "Check the CNI DaemonSet's pod on this node (it writes the configuration when it starts) and \
                its logs.",
            alerts: &["RoutewardenCriticalFinding"],
        },
        FindingId::KubeProxyUntrustedAnswer => FindingDoc {
            title: "a process that is not kube-proxy answers on its ports",
            severity: "info",
            meaning: "Something answered on 10249 or 10256 but the listening socket is not held by a root-owned \
                kube-proxy, k3s or rke2 process: its answer was ignored.",
            evidence: "The port, the process holding it and what it answered.",
            remedy: "Find the process listening there (ss -ltnp).",
            alerts: &[],
        },
        FindingId::CoverageIncomplete => FindingDoc {
            title: "a source was not looked at",
            severity: "warning for a dataplane source (iptables-legacy, nftables, links, ipvs, bpf, processes), \
                info for the others",
            meaning: "A source was disabled, or said ok without data: the verdict cannot be ok, since what was not \
                read cannot be vouched for.",
            evidence: "The sources not looked at.",
            remedy: "Remove the source from `disabled_sources`, or take the snapshot again with it enabled.",
            alerts: &[],
        },
        FindingId::ServiceProxyAgentDown => FindingDoc {
            title: "a Service proxy is programmed but its agent does not run",
            severity: "warning",
            meaning: "Calico eBPF, kube-router, Antrea, OVN-Kubernetes or LoxiLB has its programs, rules or links on \
                the node but its agent process (calico-node, kube-router, antrea-agent, ovnkube, loxilb) does not run: nothing \
                keeps them up to date.",
            evidence: "What is programmed, and that the process list has no agent.",
            remedy: "Check the agent's pod on this node and its logs.",
            alerts: &[],
        },
        FindingId::Journal(_) => return None,
    };
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_id_has_an_entry_and_journal_ids_none() {
        for id in FindingId::BUILT_IN {
            let d = doc(&id).unwrap();
            assert!(!d.title.is_empty() && !d.meaning.is_empty() && !d.remedy.is_empty(), "{id}");
        }
        assert_eq!(doc(&FindingId::Journal("cni.not-ready".into())), None);
    }
}
