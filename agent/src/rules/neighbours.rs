//! Failures next to Service routing: certificates expiring or expired, NFS mounts to a ClusterIP under Cilium
//! socket-LB, a missing CNI configuration, and kube-proxy's own view disagreeing with its rules. Pure. The texts are
//! the catalogue's (`crate::catalogue`).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::catalogue as text;
use crate::model::{Snapshot, Timestamp};
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

/// One row of the neighbours' decision table: the findings it raises for a snapshot, its dataplane and the
/// snapshot's collection time.
type Check = fn(&Snapshot, &Dataplane, Timestamp) -> Vec<Finding>;

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

/// `now` is the snapshot's collection time (`collected_at`): certificates are judged as of then.
pub fn evaluate(snap: &Snapshot, dp: &Dataplane, now: Timestamp) -> Vec<Finding> {
    CHECKS.iter().flat_map(|check| check(snap, dp, now)).collect()
}

/// Certificates expired, not yet valid, or expiring within the configured days.
fn certificate_expiry(snap: &Snapshot, _dp: &Dataplane, now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let now = now.unix_signed();
    if let Some(certs) = snap.certificates.get() {
        let mut expired = Vec::new();
        let mut critical = Vec::new();
        let mut warning = Vec::new();
        for c in &certs.certificates {
            let what = text::certificate_expired::certificate(&c.path, &c.location, &c.subject, &c.issuer);
            let left = c.not_after - now;
            if left < 0 {
                expired.push(text::certificate_expired::expired(&what, Timestamp::from_unix_signed(c.not_after)));
            } else if c.not_before > now {
                expired
                    .push(text::certificate_expired::not_yet_valid(&what, Timestamp::from_unix_signed(c.not_before)));
            } else if left < (certs.critical_days as i64).saturating_mul(DAY) {
                critical.push(text::certificate_expiring::expires(
                    &what,
                    Timestamp::from_unix_signed(c.not_after),
                    left / DAY,
                ));
            } else if left < (certs.warning_days as i64).saturating_mul(DAY) {
                warning.push(text::certificate_expiring::expires(
                    &what,
                    Timestamp::from_unix_signed(c.not_after),
                    left / DAY,
                ));
            }
        }
        if !expired.is_empty() {
            out.push(Finding {
                id: FindingId::CertificateExpired,
                severity: Severity::Critical,
                summary: text::certificate_expired::summary(expired.len()),
                evidence: expired,
                remedy: text::certificate_expired::REMEDY.into(),
            });
        }
        for (sev, list) in [(Severity::Critical, critical), (Severity::Warning, warning)] {
            if !list.is_empty() {
                out.push(Finding {
                    id: FindingId::CertificateExpiring,
                    severity: sev,
                    summary: text::certificate_expiring::summary(list.len()),
                    evidence: list,
                    remedy: text::certificate_expiring::REMEDY.into(),
                });
            }
        }
    }
    out
}

/// Certificate files that could not be read or parsed.
fn certificates_unreadable(snap: &Snapshot, _dp: &Dataplane, _now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(certs) = snap.certificates.get() {
        if !certs.errors.is_empty() {
            out.push(Finding {
                id: FindingId::CertificateUnreadable,
                severity: Severity::Warning,
                summary: text::certificate_unreadable::summary(certs.errors.len()),
                evidence: certs.errors.iter().map(|(p, e)| text::certificate_unreadable::evidence(p, e)).collect(),
                remedy: text::certificate_unreadable::REMEDY.into(),
            });
        }
    }
    out
}

/// NFS mounted from a ClusterIP while Cilium's socket-LB translates connections.
fn nfs_to_a_clusterip_under_socket_lb(snap: &Snapshot, dp: &Dataplane, _now: Timestamp) -> Vec<Finding> {
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
            .map(|m| text::nfs_clusterip_socket_lb::mounted(&m.mount_point, &m.fstype, &m.server))
            .collect();
        if !hits.is_empty() {
            out.push(Finding {
                id: FindingId::NfsClusteripSocketLb,
                severity: Severity::Warning,
                summary: text::nfs_clusterip_socket_lb::SUMMARY.into(),
                evidence: hits,
                remedy: text::nfs_clusterip_socket_lb::REMEDY.into(),
            });
        }
    }
    out
}

/// A kubelet without a usable CNI configuration.
fn cni_config_missing(snap: &Snapshot, _dp: &Dataplane, _now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(cni) = snap.cni.get() {
        let kubelet = snap.processes.get().is_some_and(|p| !p.pids("kubelet").is_empty());
        if cni.active.is_none() && kubelet {
            let mut evidence = vec![if cni.present {
                text::cni_config_missing::none_usable(&cni.dir, cni.files.len())
            } else {
                text::cni_config_missing::absent(&cni.dir)
            }];
            evidence.extend(cni.errors.iter().map(|(f, e)| text::cni_config_missing::file_error(f, e)));
            out.push(Finding {
                id: FindingId::CniConfigMissing,
                severity: Severity::Critical,
                summary: text::cni_config_missing::SUMMARY.into(),
                evidence,
                remedy: text::cni_config_missing::REMEDY.into(),
            });
        }
    }
    out
}

/// kube-proxy's `/proxyMode` against the mode its rules show.
fn kube_proxy_mode_mismatch(snap: &Snapshot, dp: &Dataplane, _now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let kp = &dp.kube_proxy;
    if let Some(reported) = &kp.reported_mode {
        let found = kp.mode.is_present().then(|| kp.mode.as_str());
        if found.is_some_and(|f| f != reported) || (found.is_none() && kp.mode == ProxyMode::None) {
            out.push(Finding {
                id: FindingId::KubeProxyModeMismatch,
                severity: Severity::Warning,
                summary: text::mode_mismatch::summary(reported, found),
                evidence: vec![text::mode_mismatch::answered(
                    reported,
                    snap.kube_proxy_api.get().and_then(|a| a.owner.as_deref()),
                )],
                remedy: text::mode_mismatch::REMEDY.into(),
            });
        }
    }
    out
}

/// Answers on kube-proxy's ports from a socket no kube-proxy holds.
fn kube_proxy_untrusted_answer(snap: &Snapshot, _dp: &Dataplane, _now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(api) = snap.kube_proxy_api.get().filter(|a| !a.ignored.is_empty()) {
        out.push(Finding {
            id: FindingId::KubeProxyUntrustedAnswer,
            severity: Severity::Info,
            summary: text::untrusted_answer::SUMMARY.into(),
            evidence: api.ignored.clone(),
            remedy: text::untrusted_answer::REMEDY.into(),
        });
    }
    out
}

/// kube-proxy running while its `/healthz` does not answer 200.
fn kube_proxy_unhealthy(_snap: &Snapshot, dp: &Dataplane, _now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let kp = &dp.kube_proxy;
    if kp.healthz_status.is_some_and(|c| c != 200) && !kp.pids.is_empty() {
        out.push(Finding {
            id: FindingId::KubeProxyUnhealthy,
            severity: Severity::Warning,
            summary: text::unhealthy::SUMMARY.into(),
            evidence: vec![text::unhealthy::answered(kp.healthz_status.unwrap_or(0))],
            remedy: text::unhealthy::REMEDY.into(),
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

    #[test]
    fn certificate_dates_are_written_as_rfc3339_as_of_the_collection() {
        let now: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
        let cert = |cn: &str, not_before: i64, not_after: i64| {
            serde_json::json!({"path": format!("/pki/{cn}.crt"), "location": "pem", "subject": format!("CN={cn}"),
                "issuer": "CN=ca", "not_before": not_before, "not_after": not_after})
        };
        let snap: Snapshot = serde_json::from_value(serde_json::json!({
            "schema_version": 2, "node": "n", "collected_at": "2026-01-01T00:00:00Z",
            "iptables_legacy": {"status": "disabled"}, "nftables": {"status": "disabled"},
            "links": {"status": "disabled"}, "ipvs": {"status": "disabled"}, "bpf": {"status": "disabled"},
            "processes": {"status": "disabled"},
            "certificates": {"status": "ok", "duration_ms": 0, "data": {"warning_days": 28, "critical_days": 7,
                "errors": [], "certificates": [
                    cert("old", now - 400 * DAY, now - 1),
                    cert("early", now + DAY, now + 400 * DAY),
                    cert("soon", now - DAY, now + 3 * DAY + 5),
                    cert("later", now - DAY, now + 20 * DAY),
                    cert("ancient", -DAY, -1),
                    // Past what RFC 3339 writes (a crafted file, or a snapshot edited by hand): no panic.
                    cert("far", i64::MAX, i64::MAX),
                ]}}
        }))
        .unwrap();
        let findings = evaluate(&snap, &Dataplane::default(), snap.collected_at);
        let evidence: Vec<(Severity, &str)> =
            findings.iter().flat_map(|f| f.evidence.iter().map(|e| (f.severity, e.as_str()))).collect();
        assert_eq!(
            evidence,
            [
                (Severity::Critical, "/pki/old.crt (pem): CN=old, issued by CN=ca: expired 2025-12-31T23:59:59Z"),
                (
                    Severity::Critical,
                    "/pki/early.crt (pem): CN=early, issued by CN=ca: not valid before 2026-01-02T00:00:00Z"
                ),
                (
                    Severity::Critical,
                    "/pki/ancient.crt (pem): CN=ancient, issued by CN=ca: expired 1970-01-01T00:00:00Z"
                ),
                (
                    Severity::Critical,
                    "/pki/far.crt (pem): CN=far, issued by CN=ca: not valid before 9999-12-31T23:59:59Z"
                ),
                (
                    Severity::Critical,
                    "/pki/soon.crt (pem): CN=soon, issued by CN=ca: expires 2026-01-04T00:00:05Z (3 days)"
                ),
                (
                    Severity::Warning,
                    "/pki/later.crt (pem): CN=later, issued by CN=ca: expires 2026-01-21T00:00:00Z (20 days)"
                ),
            ]
        );
    }
}
