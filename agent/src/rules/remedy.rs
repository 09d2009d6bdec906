//! `source.failed` findings whose remedy follows the actual error ([`Failure`]): the capability a permission error
//! needs, the package of a missing tool, the configuration key of a bound or a deadline. Sources that failed the
//! same way share one remedy text naming them all, so `check`'s text can print it once.

use crate::model::iptables::CommandBackend;
use crate::model::{Backend, Failure, Snapshot, SourceId, SourceStatus};
use crate::report::Finding;
use crate::rules::dataplane::BackendSignals;

/// One `source.failed` finding per failed source of the snapshot, in the snapshot's order.
pub fn source_failures(snap: &Snapshot) -> Vec<Finding> {
    let failed: Vec<(SourceId, &str, Failure)> = snap
        .statuses()
        .into_iter()
        .filter(|r| r.status == SourceStatus::Failed)
        // A snapshot older than the failure field says nothing about why.
        .map(|r| (r.id, r.error.unwrap_or(""), r.failure.cloned().unwrap_or(Failure::Other)))
        .collect();
    failed
        .iter()
        .map(|(id, error, failure)| {
            let group: Vec<SourceId> = failed.iter().filter(|(_, _, f)| f == failure).map(|(s, _, _)| *s).collect();
            crate::report::source_failed(*id, error, &remedy(failure, &group))
        })
        .collect()
}

/// The remedy for `sources`, which all failed with `failure`.
pub fn remedy(failure: &Failure, sources: &[SourceId]) -> String {
    let names = list(sources.iter().map(|s| s.as_str().to_string()).collect());
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
                    format!("{} {verb} {cap}", list(srcs))
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
            "{names}: what was read is over routewarden's fixed bound (no key raises it): report it as a bug with the \
             error and the node's size (rules, Services)"
        ),
        Failure::TimedOut { key: Some(key) } => format!(
            "{names} did not answer in time: raise `{key}` in the configuration, and look for what makes the node \
             slow (load, a very large ruleset)"
        ),
        Failure::TimedOut { key: None } => {
            format!("{names} did not answer in time: look for what makes the node slow (load, a very large ruleset)")
        }
        Failure::NotFound => {
            let keys = list(sources.iter().map(|s| format!("`{}`", path_key(*s))).collect());
            format!(
                "{names}: a file or socket it reads does not exist: check {keys} in the configuration (and \
                 `host_root` in a container)"
            )
        }
        Failure::Parse => format!(
            "{names}: routewarden could not decode what it read: this is a bug or a format it does not know yet; \
             report it with the error and the file or dump it names (`routewarden snapshot --full` holds the rules)"
        ),
        Failure::HostViewMissing => format!(
            "{names}: the container does not see the host: add the mount or setting the error names (docs/container.md)"
        ),
        Failure::Other => format!("{names}: fix what the error names; if it persists, report it with the error"),
    }
}

/// `iptables.mixed-backends`' remedy from what was read: which backend holds which kube-proxy chains, where the
/// kubelet's KUBE-IPTABLES-HINT is, and which backend the node's `iptables` command writes; then which set to remove.
pub fn mixed_backends(snap: &Snapshot, backends: &[BackendSignals]) -> String {
    let name = |b: Backend| format!("iptables-{b}");
    let mut parts = Vec::new();
    for b in [Backend::Nft, Backend::Legacy] {
        let of: Vec<&BackendSignals> = backends.iter().filter(|s| s.backend == b && s.signals.kube_proxy()).collect();
        if of.is_empty() {
            continue;
        }
        let svc: u32 = of.iter().map(|s| s.signals.svc_chains).sum();
        let families = list(of.iter().map(|s| s.family.as_str().to_string()).collect());
        parts.push(format!("{} holds kube-proxy chains with {svc} KUBE-SVC-* ({families})", name(b)));
    }
    let hints: Vec<Backend> = {
        let mut h: Vec<Backend> = backends.iter().filter(|s| s.has_hint).map(|s| s.backend).collect();
        h.dedup();
        h
    };
    parts.push(match hints.as_slice() {
        [] => "no backend holds the kubelet's KUBE-IPTABLES-HINT".to_string(),
        [one] => format!("the kubelet's KUBE-IPTABLES-HINT is in {}", name(*one)),
        _ => "both backends hold the kubelet's KUBE-IPTABLES-HINT".to_string(),
    });
    let command = snap.iptables_legacy.get().and_then(|s| s.command.as_ref());
    let command_backend = command.map(|c| match c.backend {
        CommandBackend::Legacy => Backend::Legacy,
        CommandBackend::Nft => Backend::Nft,
    });
    if let Some(c) = command {
        parts.push(format!("the node's `iptables` is iptables-{} ({})", c.backend.as_str(), c.chain.join(" -> ")));
    }
    let hint = match hints.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    let keep = hint.or(command_backend);
    let action = match keep {
        Some(keep) => {
            let other = if keep == Backend::Nft { Backend::Legacy } else { Backend::Nft };
            let mut a = format!(
                "keep {k} (kube-proxy's iptables-wrapper follows the backend the kubelet writes) and remove the KUBE-* \
                    chains from {o} with its own tools: {o}-save | grep -v KUBE | {o}-restore, and the same with \
                    ip6tables-{other}",
                k = name(keep),
                o = name(other),
            );
            if let (Some(h), Some(c)) = (hint, command_backend) {
                if h != c {
                    a.push_str(&format!(
                        "; the node's `iptables` writes {} while the kubelet writes {}: point it at the kubelet's \
                            (update-alternatives --set iptables /usr/sbin/iptables-{h})",
                        name(c),
                        name(h),
                    ));
                }
            }
            a
        }
        None => "find which backend the kubelet writes (it creates KUBE-IPTABLES-HINT there), then remove the other \
            backend's KUBE-* chains with that backend's tools (iptables-legacy-save | grep -v KUBE | \
            iptables-legacy-restore, or the -nft equivalents)"
            .to_string(),
    };
    format!("{}. {action}", parts.join("; "))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_gets_its_own_remedy() {
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
