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
            Outcome::Satisfied => format!("satisfied after {}:\n", human_duration(self.waited_ms)),
            Outcome::TimedOut => format!("timed out after {}; still missing:\n", human_duration(self.waited_ms)),
            Outcome::CannotInspect => "cannot inspect:\n".to_string(),
        };
        for r in &self.requirements {
            let mark = if r.satisfied { "ok     " } else { "MISSING" };
            out.push_str(&format!("  {mark} {}: {}\n", r.requirement, r.detail));
        }
        out
    }
}

/// A duration as people read it: `5m 0s`, `1h 2m 3s`, `42s`, `850 ms` (under a second).
pub fn human_duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// A configuration that reads only what the requirements need.
pub fn narrowed(config: &Config, reqs: &[Requirement]) -> Config {
    let mut c = config.clone();
    for id in SourceId::COLLECTED {
        if !reqs.iter().any(|r| r.sources().contains(&id)) && c.enabled(id) {
            c.disabled_sources.insert(id);
        }
    }
    c
}

/// Evaluates every requirement against one collection; nftables is read again only when its generation moved
/// since `nft`'s last read.
pub fn evaluate(config: &Config, reqs: &[Requirement], nft: &mut sources::nftables::Reuse) -> Vec<(String, Check)> {
    let snap = sources::collect_reusing(config, nft);
    let report = rules::analyse(&snap, snap.collected_at);
    reqs.iter().map(|r| (r.to_string(), check(r, &snap, &report))).collect()
}

/// The unit the kubelet runs as.
const KUBELET_UNIT: &str = "kubelet.service";
/// How long `systemctl show` may take.
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(5);
/// The most `systemctl show -p Before` output read.
const SYSTEMCTL_MAX: usize = 1 << 20;

/// Whether a requirement is met only once kube-proxy has run: `kube-proxy`, a kube-proxy chain
/// (`chain:filter/KUBE-FORWARD`) or its nftables table (`nft-table:ip/kube-proxy`).
pub fn needs_kube_proxy(r: &Requirement) -> bool {
    use crate::rules::chains::{owner, Owner};
    match r {
        Requirement::KubeProxy => true,
        Requirement::Chain { table, chain } => {
            matches!(owner(table, chain), Owner::KubeProxy | Owner::KubeProxyIptables | Owner::KubeProxyIpvs)
        }
        Requirement::NftTable { name, .. } => name == "kube-proxy",
        _ => false,
    }
}

/// The warning `wait` prints when it would deadlock the node: a requirement needs kube-proxy while this wait runs
/// inside the kubelet's unit (an ExecStartPre=) or in a unit the kubelet is ordered after (`before` is the unit's
/// `Before=` list). The kubelet starts kube-proxy, so the kubelet would wait for ever. `None` when that cannot
/// happen or cannot be told.
pub fn kubelet_deadlock(reqs: &[Requirement], unit: &str, before: &[&str]) -> Option<String> {
    let needing: Vec<String> = reqs.iter().filter(|r| needs_kube_proxy(r)).map(Requirement::to_string).collect();
    if needing.is_empty() {
        return None;
    }
    let how = if unit == KUBELET_UNIT {
        format!("runs inside {KUBELET_UNIT} (an ExecStartPre=)")
    } else if before.contains(&KUBELET_UNIT) {
        format!("runs in {unit}, which {KUBELET_UNIT} is ordered after (Before={KUBELET_UNIT})")
    } else {
        return None;
    };
    Some(format!(
        "DEADLOCK: this wait for {} {how}; the kubelet starts kube-proxy, so the kubelet would wait for ever and \
         kube-proxy never start. Do not order the kubelet after a wait for kube-proxy (docs/gate.md)",
        needing.join(", ")
    ))
}

/// Says [`kubelet_deadlock`]'s warning once on stderr when systemd started this wait and `systemctl show` tells
/// the ordering within its deadline; says nothing when it cannot tell.
fn warn_kubelet_deadlock(config: &Config, reqs: &[Requirement]) {
    if !reqs.iter().any(needs_kube_proxy) {
        return;
    }
    let Some(unit) = crate::sys::host::own_systemd_unit() else { return };
    let before = if unit == KUBELET_UNIT {
        String::new()
    } else {
        let args = ["show", "-p", "Before", "--value", unit.as_str()];
        match crate::sys::exec::run_capped(&config.binaries.systemctl, &args, SYSTEMCTL_TIMEOUT, SYSTEMCTL_MAX) {
            Ok(out) => String::from_utf8_lossy(&out).into_owned(),
            Err(e) => {
                log::debug!("cannot tell the ordering of {unit}: {}", crate::model::error_chain(&e));
                return;
            }
        }
    };
    let before: Vec<&str> = before.split_whitespace().collect();
    if let Some(w) = kubelet_deadlock(reqs, &unit, &before) {
        log::warn!("{w}");
    }
}

pub fn wait(config: &Config, opts: &WaitOptions) -> WaitResult {
    warn_kubelet_deadlock(config, &opts.requirements);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_for_kube_proxy_that_the_kubelet_is_ordered_after_is_a_deadlock() {
        let kp: Vec<Requirement> = vec!["kube-proxy".parse().unwrap()];
        let unit = "routewarden-wait@kube\\x2dproxy.service";
        let w = kubelet_deadlock(&kp, unit, &["multi-user.target", "kubelet.service"]).unwrap();
        assert!(w.contains("the kubelet starts kube-proxy") && w.contains("Before=kubelet.service"), "{w}");
        let w = kubelet_deadlock(&kp, "kubelet.service", &[]).unwrap();
        assert!(w.contains("ExecStartPre="), "{w}");
        // kube-proxy's own chain and table need kube-proxy too; the kubelet's chain and Cilium do not.
        for r in ["chain:filter/KUBE-FORWARD", "nft-table:ip/kube-proxy"] {
            assert!(kubelet_deadlock(&[r.parse().unwrap()], "kubelet.service", &[]).is_some(), "{r}");
        }
        for r in ["chain:filter/KUBE-FIREWALL", "cilium-lb", "link:eth0"] {
            assert!(kubelet_deadlock(&[r.parse().unwrap()], "kubelet.service", &[]).is_none(), "{r}");
        }
        // Ordered after the kubelet, or not ordered against it: no deadlock.
        assert!(kubelet_deadlock(&kp, unit, &["multi-user.target"]).is_none());
        assert!(kubelet_deadlock(&kp, unit, &[]).is_none());
    }

    #[test]
    fn the_unit_is_read_from_the_cgroup_v2_path() {
        use crate::sys::host::unit_of_cgroup;
        let unit = unit_of_cgroup("0::/system.slice/routewarden-wait@kube\\x2dproxy.service\n");
        assert_eq!(unit.as_deref(), Some("routewarden-wait@kube\\x2dproxy.service"));
        assert_eq!(unit_of_cgroup("0::/system.slice/kubelet.service/init.scope\n").as_deref(), Some("init.scope"));
        assert_eq!(unit_of_cgroup("0::/\n"), None);
        assert_eq!(unit_of_cgroup("12:cpu:/x.service\n"), None, "cgroup v1 lines are not read");
    }

    #[test]
    fn waits_are_told_in_human_durations() {
        let r = WaitResult {
            outcome: Outcome::TimedOut,
            waited_ms: 300_017,
            requirements: vec![RequirementState {
                requirement: "kube-proxy".into(),
                satisfied: false,
                detail: "no Service rules".into(),
            }],
        };
        assert!(r.text().starts_with("timed out after 5m 0s; still missing:\n"), "{}", r.text());
        assert_eq!(human_duration(850), "850 ms");
        assert_eq!(human_duration(42_999), "42s");
        assert_eq!(human_duration(3_723_000), "1h 2m 3s");
    }
}
