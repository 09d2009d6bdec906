//! Failures next to Service routing: certificates expiring or expired, NFS mounts to a ClusterIP under Cilium
//! socket-LB, a missing CNI configuration, and kube-proxy's own view disagreeing with its rules. Pure.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::Snapshot;
use crate::report::{Certificate, Dataplane, Finding, FindingId, ProxyMode, Severity};

const DAY: i64 = 86_400;

/// Parses `10.96.0.0/12` (or a bare address, as /32 or /128).
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Certificates of the snapshot for the report, soonest expiry first.
pub fn certificates(snap: &Snapshot) -> Vec<Certificate> {
    let mut out: Vec<Certificate> = snap
        .certificates
        .get()
        .map(|c| {
            c.certificates
                .iter()
                .map(|c| Certificate {
                    path: c.path.display().to_string(),
                    location: c.location.clone(),
                    subject: c.subject.clone(),
                    issuer: c.issuer.clone(),
                    serial: c.serial.clone(),
                    not_after: c.not_after,
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|c| c.not_after);
    out
}

fn date(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// One row of the neighbours' decision table: the findings it raises for a snapshot, its dataplane and the
/// snapshot's collection time.
type Check = fn(&Snapshot, &Dataplane, Option<i64>) -> Vec<Finding>;

/// Every check, in the order their findings are reported.
const CHECKS: &[Check] = &[
    certificate_expiry,
    certificates_unreadable,
    nfs_to_a_clusterip_under_socket_lb,
    cni_config_missing,
    kube_proxy_mode_mismatch,
    kube_proxy_untrusted_answer,
    kube_proxy_unhealthy,
];

/// `now` is the snapshot's collection time; without it (an unreadable `collected_at`) expiry is not judged.
pub fn evaluate(snap: &Snapshot, dp: &Dataplane, now: Option<i64>) -> Vec<Finding> {
    CHECKS.iter().flat_map(|check| check(snap, dp, now)).collect()
}

/// Certificates expired, not yet valid, or expiring within the configured days.
fn certificate_expiry(snap: &Snapshot, _dp: &Dataplane, now: Option<i64>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let (Some(certs), Some(now)) = (snap.certificates.get(), now) {
        let mut expired = Vec::new();
        let mut critical = Vec::new();
        let mut warning = Vec::new();
        for c in &certs.certificates {
            let what = format!("{} ({}): {}, issued by {}", c.path.display(), c.location, c.subject, c.issuer);
            let left = c.not_after - now;
            if left < 0 {
                expired.push(format!("{what}: expired {}", date(c.not_after)));
            } else if c.not_before > now {
                expired.push(format!("{what}: not valid before {}", date(c.not_before)));
            } else if left < (certs.critical_days as i64).saturating_mul(DAY) {
                critical.push(format!("{what}: expires {} ({} days)", date(c.not_after), left / DAY));
            } else if left < (certs.warning_days as i64).saturating_mul(DAY) {
                warning.push(format!("{what}: expires {} ({} days)", date(c.not_after), left / DAY));
            }
        }
        let remedy =
            "renew: kubeadm certs renew all (control plane), or let the kubelet rotate its client certificate \
                      (rotateCertificates: true) and check it can reach the API server; restart the components after";
        if !expired.is_empty() {
            out.push(Finding {
                id: FindingId::CertificateExpired,
                severity: Severity::Critical,
                summary: format!("{} certificates are expired or not yet valid", expired.len()),
                evidence: expired,
                remedy: remedy.into(),
            });
        }
        for (sev, list) in [(Severity::Critical, critical), (Severity::Warning, warning)] {
            if !list.is_empty() {
                out.push(Finding {
                    id: FindingId::CertificateExpiring,
                    severity: sev,
                    summary: format!("{} certificates expire soon", list.len()),
                    evidence: list,
                    remedy: remedy.into(),
                });
            }
        }
    }
    out
}

/// Certificate files that could not be read or parsed.
fn certificates_unreadable(snap: &Snapshot, _dp: &Dataplane, _now: Option<i64>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(certs) = snap.certificates.get() {
        if !certs.errors.is_empty() {
            out.push(Finding {
                id: FindingId::CertificateUnreadable,
                severity: Severity::Warning,
                summary: format!("{} certificate files could not be read", certs.errors.len()),
                evidence: certs.errors.iter().map(|(p, e)| format!("{}: {e}", p.display())).collect(),
                remedy:
                    "check the files (openssl x509 -noout -text -in FILE) or remove the path from certificates.paths"
                        .into(),
            });
        }
    }
    out
}

/// NFS mounted from a ClusterIP while Cilium's socket-LB translates connections.
fn nfs_to_a_clusterip_under_socket_lb(snap: &Snapshot, dp: &Dataplane, _now: Option<i64>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let (Some(mounts), Some(true)) = (snap.mounts.get(), dp.cilium.socket_lb) {
        let mut cluster_ips: Vec<IpAddr> = snap
            .bpf
            .get()
            .map(|b| b.lb_maps.iter().flat_map(|m| m.cluster_ips.iter().copied()).collect())
            .unwrap_or_default();
        cluster_ips.sort();
        let cidrs: Vec<IpNet> = mounts.service_cidrs.iter().filter_map(|c| parse_cidr(c)).collect();
        let hits: Vec<String> = mounts
            .nfs
            .iter()
            .filter(|m| {
                m.server
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| cluster_ips.binary_search(&ip).is_ok() || cidrs.iter().any(|c| c.contains(&ip)))
            })
            .map(|m| format!("{} ({}) mounted from ClusterIP {}", m.mount_point, m.fstype, m.server))
            .collect();
        if !hits.is_empty() {
            out.push(Finding {
                id: FindingId::NfsClusteripSocketLb,
                severity: Severity::Warning,
                summary: "NFS is mounted from a Service ClusterIP while Cilium socket-LB is active; the kernel NFS client's \
                          connections can be translated once and then hang when the backend moves"
                    .into(),
                evidence: hits,
                remedy: "mount the NFS server by an address that is not a ClusterIP (its pod or external IP, or a \
                         headless Service), or exclude the host namespace from socket-LB (socketLB.hostNamespaceOnly=true)"
                    .into(),
            });
        }
    }
    out
}

/// A kubelet without a usable CNI configuration.
fn cni_config_missing(snap: &Snapshot, _dp: &Dataplane, _now: Option<i64>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(cni) = snap.cni.get() {
        let kubelet = snap.processes.get().is_some_and(|p| !p.pids("kubelet").is_empty());
        if cni.active.is_none() && kubelet {
            let mut evidence = vec![if cni.present {
                format!("{}: {} config files, none usable", cni.dir.display(), cni.files.len())
            } else {
                format!("{} does not exist", cni.dir.display())
            }];
            evidence.extend(cni.errors.iter().map(|(f, e)| format!("{f}: {e}")));
            out.push(Finding {
                id: FindingId::CniConfigMissing,
                severity: Severity::Critical,
                summary:
                    "the kubelet runs but there is no usable CNI configuration: pods cannot get a network and the \
                          node stays NotReady"
                        .into(),
                evidence,
                remedy: "check the CNI DaemonSet's pod on this node (it writes the config when it starts) and its logs"
                    .into(),
            });
        }
    }
    out
}

/// kube-proxy's `/proxyMode` against the mode its rules show.
fn kube_proxy_mode_mismatch(snap: &Snapshot, dp: &Dataplane, _now: Option<i64>) -> Vec<Finding> {
    let mut out = Vec::new();
    let kp = &dp.kube_proxy;
    if let Some(reported) = &kp.reported_mode {
        let found = kp.mode.is_present().then(|| kp.mode.as_str());
        if found.is_some_and(|f| f != reported) || (found.is_none() && kp.mode == ProxyMode::None) {
            out.push(Finding {
                id: FindingId::KubeProxyModeMismatch,
                severity: Severity::Warning,
                summary: format!(
                    "kube-proxy says it runs in {reported} mode, but its rules show {}",
                    found.unwrap_or("no Service rules")
                ),
                evidence: vec![match snap.kube_proxy_api.get().and_then(|a| a.owner.as_deref()) {
                    Some(owner) => format!("/proxyMode answered {reported} from the socket of {owner}"),
                    None => format!("/proxyMode answered {reported}"),
                }],
                remedy: "the rules of the other mode are leftovers (run kube-proxy --cleanup for them), or kube-proxy \
                         has not synced yet: check its logs"
                    .into(),
            });
        }
    }
    out
}

/// Answers on kube-proxy's ports from a socket no kube-proxy holds.
fn kube_proxy_untrusted_answer(snap: &Snapshot, _dp: &Dataplane, _now: Option<i64>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(api) = snap.kube_proxy_api.get().filter(|a| !a.ignored.is_empty()) {
        out.push(Finding {
            id: FindingId::KubeProxyUntrustedAnswer,
            severity: Severity::Info,
            summary: "something answered on kube-proxy's ports from a socket that is not kube-proxy's; the answer \
                      was ignored"
                .into(),
            evidence: api.ignored.clone(),
            remedy: "find the process listening there (ss -ltnp); kube-proxy's ports are unprivileged, so any local \
                     user can answer on them when kube-proxy does not"
                .into(),
        });
    }
    out
}

/// kube-proxy running while its `/healthz` does not answer 200.
fn kube_proxy_unhealthy(_snap: &Snapshot, dp: &Dataplane, _now: Option<i64>) -> Vec<Finding> {
    let mut out = Vec::new();
    let kp = &dp.kube_proxy;
    if kp.healthz_status.is_some_and(|c| c != 200) && !kp.pids.is_empty() {
        out.push(Finding {
            id: FindingId::KubeProxyUnhealthy,
            severity: Severity::Warning,
            summary: "kube-proxy's /healthz does not answer 200: its rules are not in sync".into(),
            evidence: vec![format!("/healthz answered {}", kp.healthz_status.unwrap_or(0))],
            remedy: "read kube-proxy's logs (kubectl -n kube-system logs -l k8s-app=kube-proxy)".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_contain_their_addresses() {
        let c = parse_cidr("10.96.0.0/12").unwrap();
        let has = |n: &IpNet, a: &str| n.contains(&a.parse::<IpAddr>().unwrap());
        assert!(has(&c, "10.96.0.20") && has(&c, "10.111.255.1"));
        assert!(!has(&c, "10.112.0.1") && !has(&c, "fd00::1"));
        assert!(has(&parse_cidr("fd00::/108").unwrap(), "fd00::20"));
        assert!(parse_cidr("10.96.0.0/33").is_none() && parse_cidr("nope").is_none());
        assert_eq!(parse_cidr("10.0.0.1"), Some("10.0.0.1/32".parse().unwrap()));
    }
}
