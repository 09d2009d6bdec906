//! Remedies that follow what was read: `source.failed` findings (built here, for the snapshot's sources and the
//! daemon's journal) whose remedy follows the actual error ([`Failure`]), sources that failed the same way sharing
//! one remedy text naming them all (so `check`'s text can print it once); and `iptables.mixed-backends`' choice of
//! the backend to keep. The texts are the catalogue's (`catalogue::source_failed`, `catalogue::mixed_backends`).

use crate::catalogue::mixed_backends as text;
use crate::model::iptables::CommandBackend;
use crate::model::{Backend, Failure, Family, Snapshot, SourceId, SourceStatus};
use crate::report::{Finding, FindingId, Severity};
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
            source_failed(*id, error, &crate::catalogue::source_failed::remedy(failure, &group))
        })
        .collect()
}

/// The `source.failed` finding for a source that could not be read; `remedy` says what usually helps.
pub fn source_failed(source: SourceId, error: &str, remedy: &str) -> Finding {
    use crate::catalogue::source_failed as text;
    Finding {
        id: FindingId::SourceFailed,
        severity: Severity::Warning,
        summary: text::summary(source),
        evidence: vec![if error.is_empty() { text::NO_ERROR.to_string() } else { error.to_string() }],
        remedy: remedy.to_string(),
    }
}

/// `iptables.mixed-backends`' remedy from what was read: which backend holds which kube-proxy chains, where the
/// kubelet's KUBE-IPTABLES-HINT is, and which backend the node's `iptables` command writes; then which set to remove.
pub fn mixed_backends(snap: &Snapshot, backends: &[BackendSignals]) -> String {
    let mut parts = Vec::new();
    for b in [Backend::Nft, Backend::Legacy] {
        let of: Vec<&BackendSignals> = backends.iter().filter(|s| s.backend == b && s.signals.kube_proxy()).collect();
        if of.is_empty() {
            continue;
        }
        let svc: u32 = of.iter().map(|s| s.signals.svc_chains).sum();
        let families: Vec<Family> = of.iter().map(|s| s.family).collect();
        parts.push(text::holds(b, svc, &families));
    }
    let hints: Vec<Backend> = {
        let mut h: Vec<Backend> = backends.iter().filter(|s| s.has_hint).map(|s| s.backend).collect();
        h.dedup();
        h
    };
    parts.push(text::hint(&hints));
    let command = snap.iptables_legacy.get().and_then(|s| s.command.as_ref());
    let command_backend = command.map(|c| match c.backend {
        CommandBackend::Legacy => Backend::Legacy,
        CommandBackend::Nft => Backend::Nft,
    });
    if let Some(c) = command {
        parts.push(text::command(c));
    }
    let hint = match hints.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    let action = match hint.or(command_backend) {
        Some(keep) => {
            let misdirected = match (hint, command_backend) {
                (Some(h), Some(c)) if h != c => Some((c, h)),
                _ => None,
            };
            text::keep(keep, misdirected)
        }
        None => text::FIND_WHICH.to_string(),
    };
    text::remedy(&parts, &action)
}
