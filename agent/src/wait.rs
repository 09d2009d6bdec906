//! `routewarden wait`: blocks until every requirement holds. Wakes on netlink link and nftables change events;
//! polls only what has no events (iptables-legacy, BPF, processes). Reads only the sources the requirements need.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Config;
use crate::model::SourceId;
use crate::rules::gate::{check, Check, Requirement};
use crate::sys::events::EventSocket;
use crate::{rules, sources};

pub struct WaitOptions {
    pub requirements: Vec<Requirement>,
    pub timeout: Option<Duration>,
    /// Interval for sources without events.
    pub poll: Duration,
    /// How often to say what is still missing.
    pub report_every: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Satisfied,
    TimedOut,
    CannotInspect,
}

#[derive(Debug, Serialize)]
pub struct RequirementState {
    pub requirement: String,
    pub satisfied: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct WaitResult {
    pub outcome: Outcome,
    pub waited_ms: u64,
    pub requirements: Vec<RequirementState>,
}

impl WaitResult {
    /// 0 satisfied, 1 timed out, 3 cannot inspect.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Satisfied => 0,
            Outcome::TimedOut => 1,
            Outcome::CannotInspect => 3,
        }
    }

    pub fn text(&self) -> String {
        let mut out = match self.outcome {
            Outcome::Satisfied => format!("satisfied after {} ms:\n", self.waited_ms),
            Outcome::TimedOut => format!("timed out after {} ms; still missing:\n", self.waited_ms),
            Outcome::CannotInspect => "cannot inspect:\n".to_string(),
        };
        for r in &self.requirements {
            let mark = if r.satisfied { "ok     " } else { "MISSING" };
            out.push_str(&format!("  {mark} {}: {}\n", r.requirement, r.detail));
        }
        out
    }
}

/// A configuration that reads only what the requirements need.
pub fn narrowed(config: &Config, reqs: &[Requirement]) -> Config {
    let mut c = config.clone();
    for id in SourceId::COLLECTED {
        if !reqs.iter().any(|r| r.sources().contains(&id)) && c.enabled(id.as_str()) {
            c.disabled_sources.push(id.as_str().to_string());
        }
    }
    c
}

/// Evaluates every requirement against one collection; nftables is read again only when its generation moved
/// since `nft`'s last read.
pub fn evaluate(config: &Config, reqs: &[Requirement], nft: &mut sources::nftables::Reuse) -> Vec<(String, Check)> {
    let snap = sources::collect_reusing(config, nft);
    let report = rules::analyse(&snap, String::new());
    reqs.iter().map(|r| (r.to_string(), check(r, &snap, &report))).collect()
}

pub fn wait(config: &Config, opts: &WaitOptions) -> WaitResult {
    let start = Instant::now();
    // Subscribe before the first look, so a change between looking and listening is not lost.
    let (tx, rx) = mpsc::channel::<()>();
    for sock in [EventSocket::links(), EventSocket::nftables()].into_iter().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            while sock.wait().is_ok() {
                if tx.send(()).is_err() {
                    return;
                }
            }
        });
    }
    let config = narrowed(config, &opts.requirements);
    let polling = opts.requirements.iter().any(Requirement::needs_polling);
    let mut next_report = start;
    let mut nft = sources::nftables::Reuse::default();
    loop {
        let checks = evaluate(&config, &opts.requirements, &mut nft);
        let elapsed = start.elapsed();
        let all_met = checks.iter().all(|(_, c)| matches!(c, Check::Met(_)));
        let unknown = checks.iter().any(|(_, c)| matches!(c, Check::Unknown(_)));
        let timed_out = opts.timeout.is_some_and(|t| elapsed >= t);
        if all_met || unknown || timed_out {
            let outcome = if all_met {
                Outcome::Satisfied
            } else if unknown {
                Outcome::CannotInspect
            } else {
                Outcome::TimedOut
            };
            return WaitResult { outcome, waited_ms: elapsed.as_millis() as u64, requirements: states(checks) };
        }
        if Instant::now() >= next_report {
            for (req, c) in &checks {
                if let Check::Missing(detail) = c {
                    log::info!("waiting for {req}: {detail}");
                }
            }
            next_report = Instant::now() + opts.report_every;
        }
        let mut pause = if polling { opts.poll } else { opts.report_every };
        if let Some(t) = opts.timeout {
            pause = pause.min(t.saturating_sub(start.elapsed()));
        }
        if rx.recv_timeout(pause).is_ok() {
            while rx.try_recv().is_ok() {}
        }
    }
}

fn states(checks: Vec<(String, Check)>) -> Vec<RequirementState> {
    checks
        .into_iter()
        .map(|(requirement, c)| {
            let (satisfied, detail) = match c {
                Check::Met(d) => (true, d),
                Check::Missing(d) | Check::Unknown(d) => (false, d),
            };
            RequirementState { requirement, satisfied, detail }
        })
        .collect()
}
