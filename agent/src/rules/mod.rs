//! Rules: pure functions from a [`Snapshot`] to a [`Report`]. No I/O here, and no other module builds a report.
//!
//! The decisions in order: `chains` says who owns an iptables chain; `dataplane` reads the snapshot into facts
//! (which kube-proxy mode on which backend, Cilium's datapath); `proxies` finds every Service proxy, one function
//! per proxy; `findings` turns the facts into findings, one function per row of docs/DATAPLANE-FACTS.md's
//! decision tables; `neighbours` checks what fails next to Service routing (certificates, NFS, CNI config,
//! kube-proxy's own API); `coverage` keeps an unread source from looking healthy; `remedy` builds the
//! `source.failed` findings from each failure's kind. [`analyse`] is a collection's report; `churn` compares
//! collections; `gate` checks startup requirements and the node gate; `assemble` is the daemon's report, from a
//! collection's and what the daemon adds besides the snapshot. The words come from `catalogue`.

pub mod assemble;
pub mod chains;
pub mod churn;
pub mod coverage;
pub mod dataplane;
pub mod findings;
pub mod gate;
pub mod neighbours;
pub mod proxies;
pub mod remedy;

use crate::model::{Snapshot, Timestamp};
use crate::report::{verdict, Report, SourceReport};

/// Analyses one snapshot. `generated_at` is passed in so the function stays pure.
pub fn analyse(snap: &Snapshot, generated_at: Timestamp) -> Report {
    let mut facts = dataplane::Facts::of(snap);
    let (mut findings, conflicts) = findings::evaluate(snap, &facts);
    facts.dataplane.conflicts = conflicts;
    // Time-dependent rules judge the snapshot at the time it was taken, wherever it is analysed.
    findings.extend(neighbours::evaluate(snap, &facts.dataplane, snap.collected_at));
    // No healthy verdict rests on a source that was not read.
    findings.extend(coverage::evaluate(snap));
    let sources = snap
        .statuses()
        .into_iter()
        .map(|row| {
            let crate::model::SourceRow { id: name, status, error, failure, duration_ms } = row;
            // Processes named like an agent but not counted are said in the processes source.
            let note = match name {
                crate::model::SourceId::Processes => snap.processes.get().and_then(|p| p.note()),
                _ => None,
            };
            let failure = failure.cloned();
            (
                name,
                SourceReport {
                    status,
                    error: error.map(str::to_string),
                    failure,
                    duration_ms,
                    last_success: None,
                    note,
                },
            )
        })
        .collect();
    Report {
        // The report's layout is this build's, whichever snapshot version it was made from.
        schema_version: crate::model::SCHEMA_VERSION,
        node: snap.node.clone(),
        generated_at,
        sources,
        verdict: verdict(&findings),
        dataplane: facts.dataplane,
        findings,
        certificates: neighbours::certificates(snap),
        certificate_read_errors: snap.certificates.get().map_or(0, |c| c.errors.len() as u64),
        node_gate: None,
        daemon: None,
    }
}
