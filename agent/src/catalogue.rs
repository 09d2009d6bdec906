//! The findings catalogue: for every built-in `FindingId`, what it means, what evidence it carries, what usually
//! fixes it and which shipped alert fires. The findings reference (`docs/findings/`) and `routewarden-findings(7)`
//! are generated from it (`outputs::reference`). Below the entries, the texts the rules raise: every summary,
//! remedy and fixed evidence line, as constants or small functions of what was read (names, modes, counts), grouped
//! by finding id; the rules choose which applies.

use crate::report::{Cilium, FindingId, KubeProxy, ProxyMode, ServiceProxy, ServiceProxyMode};

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
    /// What fixes it: the rule's own remedy where the finding always carries the same one, else what usually does
    /// (the finding's own `remedy` is more precise).
    pub remedy: Remedy,
    /// The alerts of `packaging/prometheus/routewarden-alerts.yaml` that fire on it.
    pub alerts: &'static [&'static str],
}

/// What the reference says fixes a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// The remedy every such finding carries, the rule's own text (one of this file's constants): the reference shows
    /// it as the finding does, capitalised and ended with a full stop, so the two cannot drift apart.
    Rule(&'static str),
    /// The finding's remedy follows what was read (the failure's kind, the pair of proxies, ...): what usually
    /// fixes it, written for the reference.
    Usually(&'static str),
}

impl Remedy {
    /// The reference's sentence.
    pub fn text(self) -> String {
        match self {
            Remedy::Rule(r) => {
                let mut chars = r.chars();
                let first: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
                format!("{first}{}.", chars.as_str())
            }
            Remedy::Usually(r) => r.to_string(),
        }
    }
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
            remedy: Remedy::Usually("The remedy follows the error's kind (`sources.<name>.failure.kind` in the JSON \
                report): permission \
                denied names the capability each source needs (CAP_NET_ADMIN for iptables-legacy and nftables, \
                CAP_SYS_ADMIN for bpf) or root; a missing tool names the binary and its Debian and RPM package; over \
                a size bound or a deadline names the configuration key that raises it (`iptables_legacy_max_bytes`, \
                `command_timeout_secs`); not found names the path's key; a parse error is a bug to report with the \
                file; in a container, the mount the host view lacks. Sources that failed the same way share one \
                remedy, printed once by `check`."),
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
            remedy: Remedy::Usually("Keep one proxy. For kube-proxy next to a kube-proxy replacement: delete the \
                kube-proxy \
                DaemonSet, then run `kube-proxy --cleanup` on each node. The finding's remedy names the pair's fix."),
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
            remedy: Remedy::Usually("Nothing to do."),
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
            remedy: Remedy::Usually("Enable the CNI's full replacement (Cilium kubeProxyReplacement, Antrea \
                proxyAll) or deploy \
                kube-proxy (in IPVS mode next to LoxiLB's service-proxy mode)."),
            alerts: &[],
        },
        FindingId::ServiceRoutingMissing => FindingDoc {
            title: "nobody programs Service routing",
            severity: "critical where a kubelet runs or is configured; info on a machine with neither (not a \
                Kubernetes node yet)",
            meaning: "No Service proxy was found (or only a kube-proxy that runs without rules): ClusterIPs and \
                NodePorts do not work on this node.",
            evidence: "What was looked at, and the kubelet's process or files.",
            remedy: Remedy::Usually("Deploy kube-proxy or a kube-proxy replacement, or find why its pod is not \
                running on this node \
                (kubectl -n kube-system get pods -o wide)."),
            alerts: &["RoutewardenServiceRoutingMissing"],
        },
        FindingId::ServiceRoutingChurn => FindingDoc {
            title: "kube-proxy's chains are deleted and re-created",
            severity: "warning (daemon only: it compares collections); the pair's conflict with the other party turns critical",
            meaning: "Between two collections kube-proxy's chains disappeared and came back: another agent is \
                deleting them (Calico's kube-proxy cleanup, kube-router's IPVS sync).",
            evidence: "The chains that flipped and the likely other party.",
            remedy: Remedy::Usually("Stop the other agent's cleanup or remove kube-proxy; the finding's remedy \
                names the party."),
            alerts: &[],
        },
        FindingId::KubeProxyStaleRules => FindingDoc {
            title: "kube-proxy rules without kube-proxy",
            severity: "warning",
            meaning: "kube-proxy's chains or tables are present but no kube-proxy runs: the rules still steer \
                traffic to endpoints that no longer get updated. Also raised for iptables-mode chains left over from \
                an earlier mode while kube-proxy now runs in IPVS or nftables mode.",
            evidence: "The chains or tables found, per backend.",
            remedy: Remedy::Usually("Run `kube-proxy --cleanup` on the node (with the mode it ran in), or restart \
                kube-proxy."),
            alerts: &["RoutewardenStaleKubeProxyRules"],
        },
        FindingId::KubeProxyModeMismatch => FindingDoc {
            title: "kube-proxy runs one mode, the node shows another's rules",
            severity: "warning",
            meaning: "kube-proxy's `/proxyMode` names a mode whose rules are missing, or another mode's rules are \
                there too: leftovers of an earlier mode.",
            evidence: "kube-proxy's answer and the rules of each mode.",
            remedy: Remedy::Usually("The other mode's rules are leftovers: run `kube-proxy --cleanup` for them, or \
                fix kube-proxy's \
                configured mode."),
            alerts: &[],
        },
        FindingId::KubeProxyUnhealthy => FindingDoc {
            title: "kube-proxy reports itself unhealthy",
            severity: "warning",
            meaning: "kube-proxy's `/healthz` (port 10256) fails: its rules are not kept in sync.",
            evidence: "kube-proxy's answer.",
            remedy: Remedy::Rule(unhealthy::REMEDY),
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
            remedy: Remedy::Usually("Plan the move to nftables mode (`mode: nftables` in the \
                KubeProxyConfiguration; kernel 5.13 or \
                newer), or iptables mode on older kernels, before the release that turns IPVS off."),
            alerts: &[],
        },
        FindingId::IptablesMixedBackends => FindingDoc {
            title: "Kubernetes rules in both iptables backends",
            severity: "warning",
            meaning: "KUBE-* chains exist in iptables-legacy and iptables-nft: one set is stale and may win.",
            evidence: "The chains found in each backend.",
            remedy: Remedy::Usually("The remedy names what was read: which backend holds how many KUBE-SVC-* \
                chains, where the \
                kubelet's KUBE-IPTABLES-HINT is (the backend kube-proxy's iptables-wrapper follows), and which \
                backend the node's `iptables` writes (its update-alternatives symlink chain, `iptables_command`). \
                Keep the kubelet's backend and remove the other backend's KUBE-* chains with that backend's own \
                tools (`iptables-legacy-save | grep -v KUBE | iptables-legacy-restore`, or the -nft ones); when the \
                node's `iptables` points elsewhere, `update-alternatives --set iptables` it to the kubelet's."),
            alerts: &["RoutewardenIptablesMixedBackends"],
        },
        FindingId::CertificateExpired => FindingDoc {
            title: "a certificate has expired",
            severity: "critical",
            meaning: "A certificate under `certificates.paths` is past its notAfter (or not yet valid).",
            evidence: "The file, subject, issuer, serial and end date.",
            remedy: Remedy::Usually("Renew it (kubeadm certs renew, or re-join the node) and check the node's clock."),
            alerts: &["RoutewardenCertificateExpiringCritical", "RoutewardenCriticalFinding"],
        },
        FindingId::CertificateExpiring => FindingDoc {
            title: "a certificate expires soon",
            severity: "warning under `certificates.warning_days` (28), critical under `certificates.critical_days` \
                (7)",
            meaning: "A certificate under `certificates.paths` will expire soon.",
            evidence: "The file, subject, issuer, serial and end date.",
            remedy: Remedy::Usually("Renew it before it expires (kubeadm certs renew; the kubelet rotates its own \
                client \
                certificate when rotation works)."),
            alerts: &["RoutewardenCertificateExpiring", "RoutewardenCertificateExpiringCritical", "RoutewardenCriticalFinding"],
        },
        FindingId::CertificateUnreadable => FindingDoc {
            title: "a certificate file does not parse",
            severity: "warning",
            meaning: "A file matched by `certificates.paths` could not be read or parsed (a per-file problem, \
                never a failed source), or the walk stopped at a bound.",
            evidence: "The path and the reason.",
            remedy: Remedy::Rule(certificate_unreadable::REMEDY),
            alerts: &[],
        },
        FindingId::NfsClusteripSocketLb => FindingDoc {
            title: "NFS mounted from a ClusterIP under socket-LB",
            severity: "warning",
            meaning: "An NFS mount's server is a Service ClusterIP while Cilium's socket-LB is attached: kernel NFS \
                traffic is not translated by socket-LB, and the mount hangs when the backend moves.",
            evidence: "The mount, its server address and the Service range it falls in.",
            remedy: Remedy::Rule(nfs_clusterip_socket_lb::REMEDY),
            alerts: &["RoutewardenNfsClusterIpSocketLb"],
        },
        FindingId::CniConfigMissing => FindingDoc {
            title: "the kubelet runs without a CNI configuration",
            severity: "critical",
            meaning: "The CNI configuration directory (`cni_dir`) has no usable configuration while the kubelet \
                runs: new pods get no network.",
            evidence: "The directory's files and why none is usable.",
            remedy: Remedy::Rule(cni_config_missing::REMEDY),
            alerts: &["RoutewardenCriticalFinding"],
        },
        FindingId::KubeProxyUntrustedAnswer => FindingDoc {
            title: "a process that is not kube-proxy answers on its ports",
            severity: "info",
            meaning: "Something answered on 10249 or 10256 but the listening socket is not held by a root-owned \
                kube-proxy, k3s or rke2 process: its answer was ignored.",
            evidence: "The port, the process holding it and what it answered.",
            remedy: Remedy::Rule(untrusted_answer::REMEDY),
            alerts: &[],
        },
        FindingId::CoverageIncomplete => FindingDoc {
            title: "a source was not looked at",
            severity: "warning for a dataplane source (iptables-legacy, nftables, links, ipvs, bpf, processes), \
                info for the others",
            meaning: "A source was disabled, or said ok without data: the verdict cannot be ok, since what was not \
                read cannot be vouched for.",
            evidence: "The sources not looked at.",
            remedy: Remedy::Rule(coverage_incomplete::REMEDY),
            alerts: &[],
        },
        FindingId::ServiceProxyAgentDown => FindingDoc {
            title: "a Service proxy is programmed but its agent does not run",
            severity: "warning",
            meaning: "Cilium, Calico eBPF, kube-router, Antrea, OVN-Kubernetes or LoxiLB has its programs, rules or \
                links on the node but its agent process (cilium-agent, calico-node, kube-router, antrea-agent, ovnkube, \
                loxilb) does not run: nothing keeps them up to date. Cilium's socket-LB and tc programs keep balancing \
                from their pinned maps meanwhile, and a kube-proxy that also runs is still in conflict with them.",
            evidence: "What is programmed, and that the process list has no agent.",
            remedy: Remedy::Usually("Check the agent's pod on this node and its logs."),
            alerts: &[],
        },
        FindingId::Journal(_) => return None,
    };
    Some(d)
}

// The texts the rules raise, by finding id: summaries and remedies, and the names they give proxies. Each returns
// exactly what a finding carries (the decisions test compares every recorded report byte for byte); the rules
// decide which text applies and fill in what was read.

/// How the findings name kube-proxy: "kube-proxy (iptables mode, nft backend, 143 services)".
pub fn kube_proxy(kp: &KubeProxy) -> String {
    let mut parts = vec![format!("{} mode", mode_name(kp.mode))];
    if let Some(b) = &kp.backend {
        parts.push(format!("{b} backend"));
    }
    parts.push(format!("{} services", kp.services));
    format!("kube-proxy ({})", parts.join(", "))
}

/// How the findings name Cilium's kube-proxy replacement: "socket-LB, BPF NodePort, 141 services in its service
/// maps".
pub fn cilium_kpr(c: &Cilium) -> String {
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

/// How the findings name a Service proxy of the pair table: "calico-ebpf (ebpf mode, 3 services)".
pub fn proxy(p: &ServiceProxy) -> String {
    if p.mode == ServiceProxyMode::NoRules {
        return format!("{} (runs, with no Service rules right now)", p.proxy.as_str());
    }
    let services = p.services.map(|n| format!(", {n} services")).unwrap_or_default();
    format!("{} ({} mode{services})", p.proxy.as_str(), p.mode.as_str())
}

/// kube-proxy's mode as a sentence says it: "iptables", "IPVS", "an unknown".
fn mode_name(m: ProxyMode) -> &'static str {
    match m {
        ProxyMode::Iptables => "iptables",
        ProxyMode::Nftables => "nftables",
        ProxyMode::Ipvs => "IPVS",
        ProxyMode::None => "no",
        ProxyMode::Unknown => "an unknown",
    }
}

/// "a", "a and b", "a, b and c".
fn list(mut items: Vec<String>) -> String {
    match items.len() {
        0 => String::new(),
        1 => items.remove(0),
        _ => {
            let last = items.pop().unwrap_or_default();
            format!("{} and {last}", items.join(", "))
        }
    }
}

/// `source.failed`: the remedy follows the failure's kind; sources that failed alike share one text naming them all.
pub mod source_failed {
    use crate::model::{Failure, SourceId};

    /// The summary for `source`.
    pub fn summary(source: SourceId) -> String {
        format!("could not read source {}; conclusions that depend on it are unknown", source.as_str())
    }

    /// The evidence line of a failure without an error text.
    pub const NO_ERROR: &str = "no error text";

    /// The journal source's remedy (the follower could not start, or stopped, or its cursor was not saved).
    pub const JOURNAL_REMEDY: &str = "check that journalctl runs and that the state directory is writable";

    /// The remedy for `sources`, which all failed with `failure`.
    pub fn remedy(failure: &Failure, sources: &[SourceId]) -> String {
        let names = super::list(sources.iter().map(|s| s.as_str().to_string()).collect());
        match failure {
            Failure::PermissionDenied => {
                // Each capability with the sources that need it, in the order first needed.
                let mut needs: Vec<(&str, Vec<String>)> = Vec::new();
                for s in sources {
                    let cap = capability(*s);
                    match needs.iter_mut().find(|(c, _)| *c == cap) {
                        Some((_, v)) => v.push(s.as_str().to_string()),
                        None => needs.push((cap, vec![s.as_str().to_string()])),
                    }
                }
                let needs: Vec<String> = needs
                    .into_iter()
                    .map(|(cap, srcs)| {
                        let verb = if srcs.len() == 1 { "needs" } else { "need" };
                        format!("{} {verb} {cap}", super::list(srcs))
                    })
                    .collect();
                format!(
                    "permission denied: run routewarden as root, or with the capabilities the packaged unit grants \
                     (CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_ADMIN CAP_DAC_READ_SEARCH); {}",
                    needs.join("; ")
                )
            }
            Failure::MissingTool { binary } => {
                let (deb, rpm) = package(binary);
                format!(
                    "{binary} is not installed: install it (Debian/Ubuntu: apt-get install {deb}; RHEL/Fedora: dnf \
                     install {rpm}), or set its path under [binaries] in the configuration (needed by {names})"
                )
            }
            Failure::OverSizeBound { key: Some(key) } => format!(
                "{names}: what was read is over the configured bound: raise `{key}` in the configuration \
                 (`routewarden config show` prints the value in effect)"
            ),
            Failure::OverSizeBound { key: None } => format!(
                "{names}: what was read is over routewarden's fixed bound (no key raises it): report it as a bug with \
                 the error and the node's size (rules, Services)"
            ),
            Failure::TimedOut { key: Some(key) } => format!(
                "{names} did not answer in time: raise `{key}` in the configuration, and look for what makes the \
                 node slow (load, a very large ruleset)"
            ),
            Failure::TimedOut { key: None } => {
                format!(
                    "{names} did not answer in time: look for what makes the node slow (load, a very large ruleset)"
                )
            }
            Failure::NotFound => {
                let keys = super::list(sources.iter().map(|s| format!("`{}`", path_key(*s))).collect());
                format!(
                    "{names}: a file or socket it reads does not exist: check {keys} in the configuration (and \
                     `host_root` in a container)"
                )
            }
            Failure::Parse => format!(
                "{names}: routewarden could not decode what it read: this is a bug or a format it does not know yet; \
                 report it with the error and the file or dump it names (`routewarden snapshot --full` holds the \
                 rules)"
            ),
            Failure::HostViewMissing => format!(
                "{names}: the container does not see the host: add the mount or setting the error names \
                 (docs/container.md)"
            ),
            Failure::Other => format!("{names}: fix what the error names; if it persists, report it with the error"),
        }
    }

    /// The capability a source's reads need when it runs unprivileged.
    fn capability(s: SourceId) -> &'static str {
        match s {
            // IPT_SO_GET_INFO/ENTRIES and NFT_MSG_GET* dumps, IPVS and tc dumps check CAP_NET_ADMIN.
            SourceId::IptablesLegacy | SourceId::Nftables | SourceId::Ipvs | SourceId::Links | SourceId::Routes => {
                "CAP_NET_ADMIN"
            }
            // Listing loaded programs (BPF_PROG_GET_NEXT_ID) and BPF_PROG_QUERY on cgroups.
            SourceId::Bpf => "CAP_SYS_ADMIN",
            // Other users' /proc/<pid>/fd and /proc/1/mountinfo.
            SourceId::Processes | SourceId::Mounts => "CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH",
            // Root-only files: the kubelet's PKI, the CNI directory, the Cilium agent's socket.
            SourceId::Certificates | SourceId::Cni | SourceId::CiliumAgent | SourceId::KubeProxyApi => {
                "CAP_DAC_READ_SEARCH (read access to its files)"
            }
            SourceId::Journal | SourceId::Kubernetes => "read access to its files",
        }
    }

    /// The configuration key naming what a source reads.
    fn path_key(s: SourceId) -> &'static str {
        match s {
            SourceId::IptablesLegacy | SourceId::Processes => "proc_dir",
            SourceId::Ipvs => "ipvs_file",
            SourceId::Bpf => "bpffs",
            SourceId::Mounts => "mountinfo",
            SourceId::Cni => "cni_dir",
            SourceId::Certificates => "certificates.paths",
            SourceId::CiliumAgent => "cilium_socket",
            SourceId::KubeProxyApi => "kube_proxy.metrics_address",
            SourceId::Journal => "journal.journalctl",
            SourceId::Kubernetes => "kubernetes.kubeconfig",
            SourceId::Nftables | SourceId::Links | SourceId::Routes => "host_root",
        }
    }

    /// The Debian and RPM packages that ship `binary` (by its file name).
    fn package(binary: &str) -> (&'static str, &'static str) {
        let name = binary.rsplit('/').next().unwrap_or(binary);
        match name {
            "nft" => ("nftables", "nftables"),
            "journalctl" => ("systemd", "systemd"),
            n if n.contains("legacy") => ("iptables", "iptables-legacy"),
            n if n.contains("tables") => ("iptables", "iptables-nft"),
            _ => ("the package that ships it", "the package that ships it"),
        }
    }
}

/// `service-routing.conflict`: kube-proxy next to Cilium's kube-proxy replacement (X1), and the pair table.
pub mod conflict {
    use crate::report::ProxyKind;

    /// X1. `running_known` is whether the processes said if kube-proxy runs.
    pub fn kube_proxy_and_cilium(kube_proxy: &str, kpr: &str, running_known: bool) -> String {
        format!(
            "{kube_proxy} and Cilium kube-proxy replacement ({kpr}) both program Services{}",
            if running_known { "" } else { " (could not tell whether kube-proxy runs)" }
        )
    }

    pub const KUBE_PROXY_AND_CILIUM_REMEDY: &str =
        "remove kube-proxy (kubectl -n kube-system delete ds kube-proxy; kubectl -n kube-system delete cm \
         kube-proxy), then run `kube-proxy --cleanup` on each node; or turn kubeProxyReplacement off in \
         Cilium. For new clusters: kubeadm init --skip-phases=addon/kube-proxy";

    /// Two proxies (named by [`super::proxy`]) that both balance `shared`.
    pub fn pair(a: &str, b: &str, shared: &str, both_running: bool) -> String {
        format!(
            "{a} and {b} both balance {shared} on this node{}",
            if both_running { "" } else { " (could not tell whether both agents run)" }
        )
    }

    /// How to end a pair's conflict.
    pub fn pair_remedy(a: ProxyKind, b: ProxyKind) -> String {
        match (a, b) {
            (ProxyKind::KubeProxy, ProxyKind::CalicoEbpf) => {
                "Calico's eBPF dataplane replaces kube-proxy: remove kube-proxy from this node (kubectl -n kube-system \
                 delete ds kube-proxy, or a nodeSelector that keeps it off eBPF nodes) and keep Felix's \
                 BPFKubeProxyIptablesCleanupEnabled=true so Felix removes its leftovers; if kube-proxy must stay, set \
                 BPFKubeProxyIptablesCleanupEnabled=false so the two stop deleting each other's state, and move one of \
                 them off the :10256 health port"
                    .into()
            }
            (ProxyKind::KubeProxy, ProxyKind::KubeRouter) => {
                "run kube-router with --run-service-proxy=false, or remove kube-proxy (kubectl -n kube-system delete \
                 ds kube-proxy); do not run `kube-proxy --cleanup` while kube-router serves Services: it flushes every \
                 IPVS service, kube-router's too"
                    .into()
            }
            (ProxyKind::KubeProxy, ProxyKind::Antrea) => {
                "Antrea proxyAll replaces kube-proxy: remove kube-proxy (kubectl -n kube-system delete ds kube-proxy, \
                 then clean its rules) or set antreaProxy.proxyAll=false"
                    .into()
            }
            (ProxyKind::KubeProxy, ProxyKind::OvnKubernetes) => {
                "OVN-Kubernetes balances Services itself: remove kube-proxy (kubectl -n kube-system delete ds \
                 kube-proxy) and clean its rules with `kube-proxy --cleanup`"
                    .into()
            }
            (x, y) => format!(
                "run one Service proxy on this node: turn Service handling off in {} or in {} (two datapaths rewriting \
                 the same Service traffic break connections unpredictably)",
                x.as_str(),
                y.as_str()
            ),
        }
    }
}

/// `service-routing.overlap`: a supported combination (X2, a split, LoxiLB next to kube-proxy).
pub mod overlap {
    /// X2: kube-proxy next to Cilium without kube-proxy replacement.
    pub fn kube_proxy_and_cilium(kube_proxy: &str) -> String {
        format!(
            "{kube_proxy} programs Services; Cilium runs without kube-proxy replacement (it only balances ClusterIP \
             traffic from pods). This is the supported combination"
        )
    }

    pub const REMEDY: &str = "nothing to do";

    /// Two proxies sharing `shared`, one of which (`split`) balances only pod ClusterIP traffic.
    pub fn split(a: &str, b: &str, shared: &str, split: &str) -> String {
        format!(
            "{a} and {b} both balance {shared}; {split} balances only ClusterIP traffic from pods by design. \
             This is a supported combination"
        )
    }

    /// kube-proxy (`a`, in IPVS mode when `ipvs`) next to LoxiLB (`b`), sharing `shared` (DATAPLANE-FACTS 11.1).
    pub fn loxilb(a: &str, b: &str, shared: &str, ipvs: bool) -> String {
        let how = if ipvs {
            "LoxiLB's service-proxy mode imports kube-proxy's IPVS services (--ipvs-compat) and balances them \
             in eBPF before they reach IPVS"
        } else {
            "LoxiLB balances the LoadBalancer services kube-loxilb gives it, kube-proxy the rest"
        };
        format!("{a} and {b} both balance {shared}; {how}. This is a supported combination")
    }

    pub const LOXILB_REMEDY: &str = "nothing to do; keep kube-proxy: LoxiLB does not replace it on its own";
}

/// `service-routing.partial`: no kube-proxy, and the proxy that runs balances only part of Service traffic.
pub mod partial {
    pub const ANTREA: &str = "no kube-proxy, and Antrea runs without proxyAll: AntreaProxy balances only ClusterIP \
         traffic from pods; NodePort, LoadBalancer and host traffic to Services go nowhere";
    pub const ANTREA_REMEDY: &str = "enable antreaProxy.proxyAll in the Antrea configuration, or deploy kube-proxy";

    pub const LOXILB: &str = "no kube-proxy, and LoxiLB does not replace it on its own: it balances the LoadBalancer \
         services kube-loxilb gives it, and ClusterIP and NodePort services only as it imports them \
         from kube-proxy's IPVS mode (--ipvs-compat); ClusterIP traffic goes nowhere";
    pub const LOXILB_REMEDY: &str = "deploy kube-proxy in IPVS mode next to LoxiLB (its service-proxy mode, loxilb \
         started with --ipvs-compat), or another Service proxy; a machine that is only a LoxiLB load balancer \
         should run no kubelet";

    pub const CILIUM: &str = "no kube-proxy, and Cilium runs without kube-proxy replacement: only ClusterIP traffic \
         from pods is load-balanced; NodePort, LoadBalancer and host traffic to Services go nowhere";
    pub const CILIUM_REMEDY: &str = "enable kubeProxyReplacement in Cilium, or deploy kube-proxy";
}

/// `service-routing.missing`: nobody programs Service routing (K8: the kubelet's chains alone), on a node or on a
/// machine that is none yet.
pub mod missing {
    /// What was looked at, on any machine.
    pub const LOOKED_AT: [&str; 3] = [
        "no KUBE-SVC-*/KUBE-SERVICES chains in iptables-legacy or iptables-nft",
        "no nftables table ip/ip6 kube-proxy, no kube-ipvs0 link",
        "no Cilium socket-LB program on the cgroup roots and no populated cilium_lb*_services map",
    ];

    /// What else was looked at, and the kubelet's absence, on a machine without one.
    pub const NOT_A_NODE_LOOKED_AT: [&str; 2] = [
        "no Calico eBPF program attached, no kube-router kube-dummy-if or service chains, no Antrea, no \
         OVN-Kubernetes Service chains",
        "no kubelet process and no kubelet configuration file",
    ];
    pub const NOT_A_NODE: &str = "not a Kubernetes node (yet): no kubelet runs or is configured here, and nobody \
         programs Service routing";
    pub const NOT_A_NODE_REMEDY: &str = "nothing to do until this machine joins a cluster; if it should be a node, \
         install and start the kubelet (kubeadm join, or your distribution's node setup)";

    pub const KUBELET_UNKNOWN: &str = "processes could not be read: whether a kubelet runs is unknown";
    pub const SUMMARY: &str = "nobody programs Service routing on this node: no kube-proxy rules (iptables, \
         nftables or IPVS) and no Cilium service load-balancing";
    pub const REMEDY: &str = "check that kube-proxy (DaemonSet or static pod) or Cilium with kubeProxyReplacement \
         runs on this node: kubectl -n kube-system get pods -o wide --field-selector spec.nodeName=$(hostname)";
}

/// `kube-proxy.stale-rules`: kube-proxy's rules left behind by a kube-proxy that is gone (X3, K5), or by its
/// earlier mode.
pub mod stale_rules {
    use crate::report::ProxyMode;

    /// X3: under Cilium's kube-proxy replacement (`kpr`, as [`super::cilium_kpr`] names it).
    pub fn under_replacement(kube_proxy: &str, kpr: &str) -> String {
        format!(
            "{kube_proxy} rules are left behind while kube-proxy does not run; Cilium ({kpr}) handles Services, \
             but traffic that reaches netfilter is still rewritten by the stale rules"
        )
    }

    /// K5: no kube-proxy process, nothing replacing it.
    pub fn without_process(kube_proxy: &str) -> String {
        format!("{kube_proxy} rules are present but no kube-proxy process runs; they will not follow Service changes")
    }

    /// How to remove the rules of a kube-proxy that ran in `mode`.
    pub fn cleanup(mode: ProxyMode) -> String {
        let how = match mode {
            ProxyMode::Nftables => "`nft delete table ip kube-proxy; nft delete table ip6 kube-proxy`",
            ProxyMode::Ipvs => {
                "`ipvsadm --clear`, `ip link delete kube-ipvs0` and removal of the KUBE-* chains and ipsets"
            }
            _ => "`iptables-save | grep -v KUBE | iptables-restore` (and ip6tables; kubelet re-creates its own chains)",
        };
        format!(
            "if kube-proxy was removed on purpose, run `kube-proxy --cleanup` on this node (with the same iptables \
             backend), or by hand {how}; if it should run, find out why its pod is not running"
        )
    }

    /// Evidence that calico-node (`pids`) runs next to a stale kube-proxy nftables table.
    pub fn calico_nftables_note(pids: &[u32]) -> String {
        format!(
            "calico-node runs (pid {}): with NFTablesMode=Auto, Felix takes any chain in the kube-proxy nftables \
             table as kube-proxy running in nftables mode, so this stale table misleads Calico's dataplane choice too",
            pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        )
    }

    /// Added to [`cleanup`]'s remedy with [`calico_nftables_note`].
    pub const CALICO_NFTABLES_REMEDY: &str = "; on this Calico node, delete the stale kube-proxy nftables tables (or \
         set Felix's NFTablesMode explicitly) before relying on NFTablesMode=Auto, then restart calico-node so it \
         chooses again";

    /// K5 after a mode switch: `count` iptables-mode chains while kube-proxy runs in `mode`.
    pub fn earlier_mode(count: u32, mode: ProxyMode) -> String {
        format!(
            "{count} iptables-mode kube-proxy chains are left over from an earlier mode; kube-proxy now runs in {} \
             mode",
            super::mode_name(mode)
        )
    }

    pub const EARLIER_MODE_REMEDY: &str = "remove the iptables-mode leftovers: `kube-proxy --cleanup` (then restart \
         kube-proxy), or `iptables-save | grep -v KUBE-SVC | ...` by hand";
}

/// `iptables.mixed-backends` (K10): the summary, the evidence lines, and the remedy's parts from what was read.
pub mod mixed_backends {
    use crate::model::iptables::IptablesCommand;
    use crate::model::{Backend, Family};

    pub const SUMMARY: &str =
        "kube-proxy chains exist in both iptables-legacy and iptables-nft; one set is stale or two writers disagree";

    /// One backend and family's kube-proxy chains: `chains` in all, `svc` of them KUBE-SVC-*.
    pub fn evidence(backend: Backend, family: Family, chains: u32, svc: u32) -> String {
        format!("iptables-{backend} {family}: {chains} kube-proxy chains ({svc} KUBE-SVC-*)")
    }

    fn name(b: Backend) -> String {
        format!("iptables-{b}")
    }

    /// `backend` holds kube-proxy chains, `svc` KUBE-SVC-* of them, in `families`.
    pub fn holds(backend: Backend, svc: u32, families: &[Family]) -> String {
        let families = super::list(families.iter().map(|f| f.as_str().to_string()).collect());
        format!("{} holds kube-proxy chains with {svc} KUBE-SVC-* ({families})", name(backend))
    }

    /// Where the kubelet's KUBE-IPTABLES-HINT is (`hints`: the backends holding it).
    pub fn hint(hints: &[Backend]) -> String {
        match hints {
            [] => "no backend holds the kubelet's KUBE-IPTABLES-HINT".to_string(),
            [one] => format!("the kubelet's KUBE-IPTABLES-HINT is in {}", name(*one)),
            _ => "both backends hold the kubelet's KUBE-IPTABLES-HINT".to_string(),
        }
    }

    /// Which backend the node's `iptables` command writes, through which links.
    pub fn command(c: &IptablesCommand) -> String {
        format!("the node's `iptables` is iptables-{} ({})", c.backend.as_str(), c.chain.join(" -> "))
    }

    /// Keep `keep`, remove the other backend's chains; `misdirected` is (the command's backend, the kubelet's) when
    /// they differ.
    pub fn keep(keep: Backend, misdirected: Option<(Backend, Backend)>) -> String {
        let other = if keep == Backend::Nft { Backend::Legacy } else { Backend::Nft };
        let mut a = format!(
            "keep {k} (kube-proxy's iptables-wrapper follows the backend the kubelet writes) and remove the KUBE-* \
                chains from {o} with its own tools: {o}-save | grep -v KUBE | {o}-restore, and the same with \
                ip6tables-{other}",
            k = name(keep),
            o = name(other),
        );
        if let Some((c, h)) = misdirected {
            a.push_str(&format!(
                "; the node's `iptables` writes {} while the kubelet writes {}: point it at the kubelet's \
                    (update-alternatives --set iptables /usr/sbin/iptables-{h})",
                name(c),
                name(h),
            ));
        }
        a
    }

    /// With no backend to keep known.
    pub const FIND_WHICH: &str = "find which backend the kubelet writes (it creates KUBE-IPTABLES-HINT there), then \
        remove the other backend's KUBE-* chains with that backend's tools (iptables-legacy-save | grep -v KUBE | \
        iptables-legacy-restore, or the -nft equivalents)";

    /// What was read (`parts`), then what to do.
    pub fn remedy(parts: &[String], action: &str) -> String {
        format!("{}. {action}", parts.join("; "))
    }
}

/// `kube-proxy.ipvs-deprecated`: IPVS mode is deprecated since 1.35 (kubernetes#134539, KEP-5495): the
/// KubeProxyIPVS gate goes off by default in 1.40 and the mode is gone in 1.43.
pub mod ipvs_deprecated {
    pub fn summary(kube_proxy: &str) -> String {
        format!(
            "{kube_proxy}: IPVS mode is deprecated since Kubernetes 1.35 and planned to be off by default in 1.40 and \
             removed in 1.43; nftables mode is the maintained successor (GA since 1.33, planned default in 1.40)"
        )
    }

    pub const REMEDY: &str = "plan the move to nftables mode: kernel 5.13 or later, set `mode: nftables` in the \
         KubeProxyConfiguration (kubectl -n kube-system edit cm kube-proxy) and roll kube-proxy node by \
         node, then remove the IPVS leftovers (`ipvsadm --clear`, `ip link delete kube-ipvs0`). Nodes on \
         older kernels move to iptables mode instead";

    /// Added to [`REMEDY`] when LoxiLB runs: its service-proxy mode reads IPVS only (DATAPLANE-FACTS 11.1).
    pub const LOXILB_REMEDY: &str = ". LoxiLB runs here: its service-proxy mode (--ipvs-compat) imports kube-proxy's \
         IPVS services and works with IPVS mode only, so moving kube-proxy off IPVS ends that import";
}

/// `service-proxy.agent-down`: a proxy's programs, links or rules without its agent (C7 for Cilium).
pub mod agent_down {
    use crate::report::ProxyKind;

    /// The agent's process name and how to bring it back or clean up after it. kube-proxy has
    /// `kube-proxy.stale-rules` instead.
    pub fn agent(proxy: ProxyKind) -> (&'static str, &'static str) {
        match proxy {
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
        }
    }

    /// The proxy (as [`super::proxy`] names it) is programmed and `agent` does not run.
    pub fn summary(proxy: &str, agent: &str) -> String {
        format!(
            "{proxy} is programmed on this node but no {agent} process runs: its Service rules will not follow \
             Service changes"
        )
    }

    /// The evidence line that the agent is gone.
    pub fn no_process(agent: &str) -> String {
        format!("no {agent} process")
    }
}

/// `certificate.expired`: certificates past their notAfter, or not valid yet. The evidence names each certificate
/// ([`certificate_expired::certificate`]) and its date (a `Timestamp`, written as RFC 3339).
pub mod certificate_expired {
    use std::path::Path;

    use crate::model::Timestamp;

    /// `count` certificates expired or not yet valid.
    pub fn summary(count: usize) -> String {
        format!("{count} certificates are expired or not yet valid")
    }

    /// How the evidence names one certificate.
    pub fn certificate(path: &Path, location: &str, subject: &str, issuer: &str) -> String {
        format!("{} ({location}): {subject}, issued by {issuer}", path.display())
    }

    /// The certificate (as [`certificate`] names it) expired at `date`.
    pub fn expired(what: &str, date: Timestamp) -> String {
        format!("{what}: expired {date}")
    }

    /// The certificate is not valid before `date`.
    pub fn not_yet_valid(what: &str, date: Timestamp) -> String {
        format!("{what}: not valid before {date}")
    }

    /// Also [`super::certificate_expiring`]'s.
    pub const REMEDY: &str = "renew: kubeadm certs renew all (control plane), or let the kubelet rotate its client \
         certificate (rotateCertificates: true) and check it can reach the API server; restart the components after";
}

/// `certificate.expiring`: certificates expiring within `certificates.critical_days` or `warning_days`.
pub mod certificate_expiring {
    use crate::model::Timestamp;

    /// `count` certificates expire soon.
    pub fn summary(count: usize) -> String {
        format!("{count} certificates expire soon")
    }

    /// The certificate (as [`super::certificate_expired::certificate`] names it) expires at `date`, `days` from now.
    pub fn expires(what: &str, date: Timestamp, days: i64) -> String {
        format!("{what}: expires {date} ({days} days)")
    }

    pub const REMEDY: &str = super::certificate_expired::REMEDY;
}

/// `certificate.unreadable`: files under `certificates.paths` that could not be read or parsed.
pub mod certificate_unreadable {
    use std::path::Path;

    /// `count` files could not be read.
    pub fn summary(count: usize) -> String {
        format!("{count} certificate files could not be read")
    }

    /// One file and why.
    pub fn evidence(path: &Path, error: &str) -> String {
        format!("{}: {error}", path.display())
    }

    pub const REMEDY: &str =
        "check the files (openssl x509 -noout -text -in FILE) or remove the path from certificates.paths";
}

/// `nfs.clusterip-socket-lb`: NFS mounted from a ClusterIP while Cilium's socket-LB translates connections.
pub mod nfs_clusterip_socket_lb {
    pub const SUMMARY: &str = "NFS is mounted from a Service ClusterIP while Cilium socket-LB is active; the kernel \
         NFS client's connections can be translated once and then hang when the backend moves";

    /// One mount whose server is a ClusterIP.
    pub fn mounted(mount_point: &str, fstype: &str, server: &str) -> String {
        format!("{mount_point} ({fstype}) mounted from ClusterIP {server}")
    }

    pub const REMEDY: &str = "mount the NFS server by an address that is not a ClusterIP (its pod or external IP, or \
         a headless Service), or exclude the host namespace from socket-LB (socketLB.hostNamespaceOnly=true)";
}

/// `cni.config-missing`: the kubelet runs and the CNI directory holds no usable configuration.
pub mod cni_config_missing {
    use std::path::Path;

    pub const SUMMARY: &str = "the kubelet runs but there is no usable CNI configuration: pods cannot get a network \
         and the node stays NotReady";

    /// `dir` holds `files` configuration files, none usable.
    pub fn none_usable(dir: &Path, files: usize) -> String {
        format!("{}: {files} config files, none usable", dir.display())
    }

    /// `dir` is not there.
    pub fn absent(dir: &Path) -> String {
        format!("{} does not exist", dir.display())
    }

    /// Why one file is not usable.
    pub fn file_error(file: &str, error: &str) -> String {
        format!("{file}: {error}")
    }

    pub const REMEDY: &str =
        "check the CNI DaemonSet's pod on this node (it writes the config when it starts) and its logs";
}

/// `kube-proxy.mode-mismatch`: kube-proxy's `/proxyMode` against the mode its rules show.
pub mod mode_mismatch {
    /// kube-proxy says `reported`; its rules show the mode `found`, or none.
    pub fn summary(reported: &str, found: Option<&str>) -> String {
        format!(
            "kube-proxy says it runs in {reported} mode, but its rules show {}",
            found.unwrap_or("no Service rules")
        )
    }

    /// What `/proxyMode` answered, and from whose socket when that is known.
    pub fn answered(reported: &str, owner: Option<&str>) -> String {
        match owner {
            Some(owner) => format!("/proxyMode answered {reported} from the socket of {owner}"),
            None => format!("/proxyMode answered {reported}"),
        }
    }

    pub const REMEDY: &str = "the rules of the other mode are leftovers (run kube-proxy --cleanup for them), or \
         kube-proxy has not synced yet: check its logs";
}

/// `kube-proxy.untrusted-answer`: an answer on kube-proxy's ports from a socket no kube-proxy holds (the evidence is
/// the source's own lines).
pub mod untrusted_answer {
    pub const SUMMARY: &str = "something answered on kube-proxy's ports from a socket that is not kube-proxy's; the \
         answer was ignored";

    pub const REMEDY: &str = "find the process listening there (ss -ltnp); kube-proxy's ports are unprivileged, so \
         any local user can answer on them when kube-proxy does not";
}

/// `kube-proxy.unhealthy`: kube-proxy runs and its `/healthz` does not answer 200.
pub mod unhealthy {
    pub const SUMMARY: &str = "kube-proxy's /healthz does not answer 200: its rules are not in sync";

    /// What `/healthz` answered.
    pub fn answered(status: u16) -> String {
        format!("/healthz answered {status}")
    }

    pub const REMEDY: &str = "read kube-proxy's logs (kubectl -n kube-system logs -l k8s-app=kube-proxy)";
}

/// `coverage.incomplete`: sources that were not read, and why.
pub mod coverage_incomplete {
    use crate::model::SourceId;

    /// Why a source was not read: it is disabled.
    pub const DISABLED: &str = "disabled";
    /// Why a source was not read: it said ok and carried no data.
    pub const OK_WITHOUT_DATA: &str = "ok without data";

    /// Only sources the dataplane decision does not rest on (`others`) were not read.
    pub fn others(others: &[&str]) -> String {
        format!("not looked at: {}", others.join(", "))
    }

    /// A source the dataplane decision rests on was not read; `all` names every source not read.
    pub fn decisive(all: &[&str]) -> String {
        format!("who programs Service routing is not fully known: not looked at: {}", all.join(", "))
    }

    /// One source not read, and why ([`DISABLED`], [`OK_WITHOUT_DATA`]).
    pub fn evidence(source: SourceId, why: &str) -> String {
        format!("source {source}: {why}")
    }

    pub const REMEDY: &str = "remove the source from disabled_sources (or take the snapshot again with it enabled); \
         what a source that was not read would show is unknown, not absent";
}

/// `service-routing.churn`: kube-proxy's chains (or IPVS services) deleted and re-created between collections, and
/// the likely other party (docs/DATAPLANE-FACTS.md section 10) as (who, what to do).
pub mod churn {
    /// kube-router's service proxy next to kube-proxy in IPVS mode.
    pub const KUBE_ROUTER: (&str, &str) = (
        "kube-router's service proxy (it and kube-proxy in IPVS mode delete each other's IPVS services)",
        "run kube-router with --run-service-proxy=false, or remove kube-proxy",
    );

    /// Calico's eBPF dataplane with Felix's kube-proxy cleanup on.
    pub const CALICO_EBPF: (&str, &str) = (
        "Calico's eBPF dataplane (Felix's BPFKubeProxyIptablesCleanupEnabled deletes kube-proxy's KUBE-* chains and \
         its nftables tables while kube-proxy re-creates them)",
        "remove kube-proxy from this node, or set BPFKubeProxyIptablesCleanupEnabled=false if it must stay",
    );

    /// The evidence line: how many came back (`count`), and the first few (`examples`).
    pub fn flipped(count: usize, examples: &[&str]) -> String {
        format!(
            "{count} kube-proxy chains or IPVS services were deleted and re-created between scans (e.g. {})",
            examples.join(", ")
        )
    }

    /// The evidence line naming the likely other party.
    pub fn likely_other_party(who: &str) -> String {
        format!("likely other party: {who}")
    }

    /// The summary, with the likely other party when one is known.
    pub fn summary(party: Option<&str>) -> String {
        match party {
            Some(who) => format!("kube-proxy's rules keep disappearing and coming back: {who} fights it"),
            None => {
                "kube-proxy's chains keep disappearing and coming back: something else flushes or rewrites them".into()
            }
        }
    }

    /// The remedy when no other party is known (else the party's own).
    pub const REMEDY: &str = "look for a second writer of iptables on this node (another proxy, a CNI cleanup job, \
         `iptables-save | grep -v KUBE | iptables-restore` in a script)";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_id_has_an_entry_and_journal_ids_none() {
        for id in FindingId::BUILT_IN {
            let d = doc(&id).unwrap();
            assert!(!d.title.is_empty() && !d.meaning.is_empty() && !d.remedy.text().is_empty(), "{id}");
        }
        assert_eq!(doc(&FindingId::Journal("cni.not-ready".into())), None);
    }

    #[test]
    fn a_rule_s_remedy_reads_as_a_sentence_and_prose_as_written() {
        assert_eq!(Remedy::Rule(unhealthy::REMEDY).text(), format!("R{}.", &unhealthy::REMEDY[1..]));
        assert_eq!(Remedy::Rule("élan").text(), "Élan.");
        assert_eq!(Remedy::Usually("Nothing to do.").text(), "Nothing to do.");
    }

    #[test]
    fn each_kind_of_failure_gets_its_own_remedy() {
        use crate::model::{Failure, SourceId};
        use source_failed::remedy;
        let perm = remedy(&Failure::PermissionDenied, &[SourceId::IptablesLegacy, SourceId::Nftables, SourceId::Bpf]);
        assert!(perm.contains("iptables-legacy and nftables need CAP_NET_ADMIN; bpf needs CAP_SYS_ADMIN"), "{perm}");
        let tool = remedy(&Failure::MissingTool { binary: "/usr/sbin/nft".into() }, &[SourceId::Nftables]);
        assert!(tool.contains("apt-get install nftables") && tool.contains("[binaries]"), "{tool}");
        let big = remedy(
            &Failure::OverSizeBound { key: Some("iptables_legacy_max_bytes".into()) },
            &[SourceId::IptablesLegacy],
        );
        assert!(big.contains("raise `iptables_legacy_max_bytes`") && !big.contains("root"), "{big}");
        let slow = remedy(&Failure::TimedOut { key: Some("command_timeout_secs".into()) }, &[SourceId::Routes]);
        assert!(slow.contains("raise `command_timeout_secs`"), "{slow}");
        let parse = remedy(&Failure::Parse, &[SourceId::Nftables]);
        assert!(parse.contains("bug") && parse.contains("report"), "{parse}");
        let nf = remedy(&Failure::NotFound, &[SourceId::Ipvs, SourceId::Mounts]);
        assert!(nf.contains("`ipvs_file` and `mountinfo`"), "{nf}");
    }
}
