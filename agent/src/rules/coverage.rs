//! Coverage: no healthy verdict rests on a source that was not read. A source that is disabled, or says `ok`
//! without data, is unknown, like a failed one (which `source.failed` already reports): the sources that decide
//! who programs Service routing make the verdict a warning, the others are named as not looked at. Pure. The texts
//! are the catalogue's (`catalogue::coverage_incomplete`).

use crate::catalogue::coverage_incomplete as text;
use crate::model::{Snapshot, SourceId, SourceStatus};
use crate::report::{Finding, FindingId, Severity};

/// The sources the dataplane decision rests on.
const DECISIVE: [SourceId; 6] =
    [SourceId::IptablesLegacy, SourceId::Nftables, SourceId::Links, SourceId::Ipvs, SourceId::Bpf, SourceId::Processes];

/// Each collected source that was not read, and why: (source, [`text::DISABLED`] or [`text::OK_WITHOUT_DATA`]).
fn not_read(snap: &Snapshot) -> Vec<(SourceId, &'static str)> {
    fn why<T>(s: &crate::model::Source<T>) -> Option<&'static str> {
        match s.status {
            SourceStatus::Disabled => Some(text::DISABLED),
            SourceStatus::Ok if s.data.is_none() => Some(text::OK_WITHOUT_DATA),
            _ => None,
        }
    }
    let slots = [
        (SourceId::IptablesLegacy, why(&snap.iptables_legacy)),
        (SourceId::Nftables, why(&snap.nftables)),
        (SourceId::Links, why(&snap.links)),
        (SourceId::Ipvs, why(&snap.ipvs)),
        (SourceId::Bpf, why(&snap.bpf)),
        (SourceId::Processes, why(&snap.processes)),
        (SourceId::Certificates, why(&snap.certificates)),
        (SourceId::Mounts, why(&snap.mounts)),
        (SourceId::Cni, why(&snap.cni)),
        (SourceId::KubeProxyApi, why(&snap.kube_proxy_api)),
        (SourceId::CiliumAgent, why(&snap.cilium_agent)),
    ];
    slots.into_iter().filter_map(|(id, why)| why.map(|w| (id, w))).collect()
}

/// The `coverage.incomplete` finding: a warning when a decisive source was not read, info when only others were.
pub fn evaluate(snap: &Snapshot) -> Vec<Finding> {
    let missing = not_read(snap);
    if missing.is_empty() {
        return Vec::new();
    }
    let decisive: Vec<&str> =
        missing.iter().filter(|(id, _)| DECISIVE.contains(id)).map(|(id, _)| id.as_str()).collect();
    let others: Vec<&str> =
        missing.iter().filter(|(id, _)| !DECISIVE.contains(id)).map(|(id, _)| id.as_str()).collect();
    let (severity, summary) = if decisive.is_empty() {
        (Severity::Info, text::others(&others))
    } else {
        (Severity::Warning, text::decisive(&missing.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>()))
    };
    vec![Finding {
        id: FindingId::CoverageIncomplete,
        severity,
        summary,
        evidence: missing.iter().map(|(id, why)| text::evidence(*id, why)).collect(),
        remedy: text::REMEDY.into(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{verdict, Verdict};

    /// A recorded real world with every source read: kube-proxy alone, healthy.
    fn healthy() -> Snapshot {
        let text =
            include_str!("../../tests/data/snapshots/kube_proxy_alone_is_healthy_with_mode_backend_and_services.json");
        serde_json::from_str(text).unwrap()
    }

    fn bare() -> Snapshot {
        healthy()
    }

    #[test]
    fn every_source_read_says_nothing() {
        assert_eq!(evaluate(&bare()), Vec::new());
        assert_eq!(crate::rules::analyse(&healthy(), crate::model::Timestamp::from_unix(0)).verdict, Verdict::Ok);
    }

    #[test]
    fn disabling_every_source_or_only_nftables_is_not_healthy() {
        let mut only_nft = healthy();
        only_nft.nftables = crate::model::Source::disabled();
        let mut all = healthy();
        all.iptables_legacy = crate::model::Source::disabled();
        all.nftables = crate::model::Source::disabled();
        all.links = crate::model::Source::disabled();
        all.ipvs = crate::model::Source::disabled();
        all.bpf = crate::model::Source::disabled();
        all.processes = crate::model::Source::disabled();
        all.certificates = crate::model::Source::disabled();
        all.mounts = crate::model::Source::disabled();
        all.cni = crate::model::Source::disabled();
        all.kube_proxy_api = crate::model::Source::disabled();
        all.cilium_agent = crate::model::Source::disabled();
        let mut empty = healthy();
        empty.processes.data = None;
        for snap in [only_nft, all, empty] {
            let r = crate::rules::analyse(&snap, crate::model::Timestamp::from_unix(0));
            assert_ne!(r.verdict, Verdict::Ok, "{:?}", r.findings);
            assert_ne!(r.exit_code(), 0);
            assert!(r.finding(&FindingId::CoverageIncomplete).is_some_and(|f| f.summary.contains("not looked at")));
        }
    }

    #[test]
    fn a_disabled_or_empty_decisive_source_keeps_the_verdict_from_ok_and_is_named() {
        let mut s = bare();
        s.nftables = crate::model::Source::disabled();
        s.ipvs.data = None;
        let f = evaluate(&s);
        assert_eq!(verdict(&f), Verdict::Warning);
        assert!(f[0].summary.contains("not looked at: nftables, ipvs"), "{f:?}");
        assert_eq!(f[0].evidence, ["source nftables: disabled", "source ipvs: ok without data"]);
    }

    #[test]
    fn other_sources_not_read_are_named_without_a_warning() {
        let mut s = bare();
        s.certificates = crate::model::Source::disabled();
        let f = evaluate(&s);
        assert_eq!((f[0].severity, f[0].summary.as_str()), (Severity::Info, "not looked at: certificates"));
    }
}
