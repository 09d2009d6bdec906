//! The startup gate: requirements such as `chain:filter/KUBE-FORWARD` or `no-conflict`, parsed from text and
//! checked against a snapshot and its report. Pure; `wait` and the daemon's `[gate]` drive it.

use std::fmt;
use std::str::FromStr;

use crate::model::{Snapshot, SourceId, SourceStatus};
use crate::report::{FindingId, Report};

/// One thing that must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// An iptables chain in either backend and either family: `chain:TABLE/CHAIN`.
    Chain { table: String, chain: String },
    /// An nftables table: `nft-table:FAMILY/NAME`.
    NftTable { family: String, name: String },
    /// kube-proxy runs and its Service rules are programmed (any mode, at least one Service): what `check` calls
    /// healthy. Rules without the process are stale and never meet it.
    KubeProxy,
    /// Cilium load-balances Services (socket-LB attached or a populated service map).
    CiliumLb,
    /// No `service-routing.conflict` finding.
    NoConflict,
    /// Some Service proxy programs Services and its agent runs (what `check` calls programmed).
    ServiceProxy,
    /// A network link: `link:NAME`.
    Link(String),
    /// A loaded BPF program (kernel names are cut to 15 characters; either form matches): `bpf-prog:NAME`.
    BpfProg(String),
}

pub const FORMS: &str =
    "chain:TABLE/CHAIN, nft-table:FAMILY/NAME, kube-proxy, cilium-lb, no-conflict, service-proxy, link:NAME, \
     bpf-prog:NAME";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown requirement {given:?}: {why} (valid: {FORMS})")]
pub struct RequirementError {
    pub given: String,
    pub why: &'static str,
}

impl FromStr for Requirement {
    type Err = RequirementError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| RequirementError { given: s.to_string(), why };
        let pair = |rest: &str| -> Result<(String, String), RequirementError> {
            match rest.split_once('/') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains('/') => Ok((a.into(), b.into())),
                _ => Err(err("expected two names separated by one '/'")),
            }
        };
        match s.split_once(':') {
            Some(("chain", rest)) => pair(rest).map(|(table, chain)| Requirement::Chain { table, chain }),
            Some(("nft-table", rest)) => pair(rest).map(|(family, name)| Requirement::NftTable { family, name }),
            Some(("link", name)) if !name.is_empty() => Ok(Requirement::Link(name.into())),
            Some(("bpf-prog", name)) if !name.is_empty() => Ok(Requirement::BpfProg(name.into())),
            Some(("link" | "bpf-prog", _)) => Err(err("the name is empty")),
            Some(_) => Err(err("no such kind")),
            None => match s {
                "kube-proxy" => Ok(Requirement::KubeProxy),
                "cilium-lb" => Ok(Requirement::CiliumLb),
                "no-conflict" => Ok(Requirement::NoConflict),
                "service-proxy" => Ok(Requirement::ServiceProxy),
                _ => Err(err("no such requirement")),
            },
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Chain { table, chain } => write!(f, "chain {table}/{chain}"),
            Requirement::NftTable { family, name } => write!(f, "nft-table {family}/{name}"),
            Requirement::KubeProxy => write!(f, "kube-proxy"),
            Requirement::CiliumLb => write!(f, "cilium-lb"),
            Requirement::NoConflict => write!(f, "no-conflict"),
            Requirement::ServiceProxy => write!(f, "service-proxy"),
            Requirement::Link(n) => write!(f, "link {n}"),
            Requirement::BpfProg(n) => write!(f, "bpf-prog {n}"),
        }
    }
}

impl Requirement {
    /// Sources this requirement reads (others can stay disabled while waiting).
    pub fn sources(&self) -> &'static [SourceId] {
        use SourceId::*;
        match self {
            Requirement::Chain { .. } => &[IptablesLegacy, Nftables, Processes],
            Requirement::NftTable { .. } => &[Nftables],
            Requirement::KubeProxy => &[IptablesLegacy, Nftables, Links, Ipvs, Processes, KubeProxyApi],
            Requirement::CiliumLb => &[Bpf, Links, Processes, CiliumAgent],
            Requirement::NoConflict | Requirement::ServiceProxy => {
                &[IptablesLegacy, Nftables, Links, Ipvs, Bpf, Processes, KubeProxyApi, CiliumAgent, Routes]
            }
            Requirement::Link(_) => &[Links],
            Requirement::BpfProg(_) => &[Bpf],
        }
    }

    /// Whether a source without change events (iptables-legacy, BPF) decides it: then waiting has to poll.
    pub fn needs_polling(&self) -> bool {
        self.sources()
            .iter()
            .any(|s| matches!(s, SourceId::IptablesLegacy | SourceId::Bpf | SourceId::Processes | SourceId::Ipvs))
    }
}

/// The state of one requirement in one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Met(String),
    /// Not (yet) there: what was seen instead.
    Missing(String),
    /// A source it needs failed.
    Unknown(String),
}

pub fn check(req: &Requirement, snap: &Snapshot, report: &Report) -> Check {
    // Routes only tell Antrea's mode: without Antrea on the node, their failure decides nothing.
    let antrea = report.dataplane.proxies.iter().any(|p| p.proxy == crate::report::ProxyKind::Antrea);
    for name in req.sources() {
        if *name == SourceId::Routes && !antrea {
            continue;
        }
        if let Some(src) = report.sources.get(name) {
            if src.status == SourceStatus::Failed && *name != SourceId::Processes {
                return Check::Unknown(format!("source {name} failed: {}", src.error.as_deref().unwrap_or("")));
            }
        }
    }
    let kp_running = match report.dataplane.kube_proxy.running {
        Some(true) => " (kube-proxy running)",
        Some(false) => " (kube-proxy not running)",
        None => "",
    };
    match req {
        Requirement::Chain { table, chain } => {
            let mut found = Vec::new();
            if let Some(l) = snap.iptables_legacy.get() {
                if l.ipv4.has_chain(table, chain) || l.ipv6.has_chain(table, chain) {
                    found.push("iptables-legacy");
                }
            }
            if let Some(n) = snap.nftables.get() {
                let nft = |family| crate::model::nftables::Chains::Nft(n, family);
                if nft("ip").has_chain(table, chain) || nft("ip6").has_chain(table, chain) {
                    found.push("iptables-nft");
                }
            }
            if found.is_empty() {
                Check::Missing(format!("not in iptables-nft or iptables-legacy{kp_running}"))
            } else {
                Check::Met(format!("in {}", found.join(" and ")))
            }
        }
        Requirement::NftTable { family, name } => match snap.nftables.get().and_then(|n| n.table(family, name)) {
            Some(t) => Check::Met(format!("{} chains", t.chains.len())),
            None => Check::Missing("no such nftables table".into()),
        },
        Requirement::KubeProxy => {
            // `check`'s meaning: kube-proxy runs and its Service rules are programmed. Rules without the process
            // are stale (`kube-proxy.stale-rules`), never a reason to release dependents.
            let kp = &report.dataplane.kube_proxy;
            // The sources this requirement reads did not fail (checked above); others (BPF) are not read while
            // waiting, which is all an `unknown` mode can mean here: `check` calls that state "none".
            let mode = match kp.mode {
                crate::report::ProxyMode::Unknown => "none",
                mode => mode.as_str(),
            };
            let processes_failed =
                report.sources.get(&SourceId::Processes).is_some_and(|s| s.status == SourceStatus::Failed);
            match kp.running {
                Some(true) if kp.mode.is_present() && kp.services > 0 => {
                    Check::Met(format!("{mode} mode, {} services{kp_running}", kp.services))
                }
                None if processes_failed => Check::Unknown(format!(
                    "kube-proxy mode {mode}, {} services, but whether kube-proxy runs is unknown: source processes \
                     failed: {}",
                    kp.services,
                    report.sources.get(&SourceId::Processes).and_then(|s| s.error.as_deref()).unwrap_or("")
                )),
                Some(false) if kp.mode.is_present() => Check::Missing(format!(
                    "kube-proxy NOT running; its {mode} mode rules ({} services) are stale (kube-proxy.stale-rules)",
                    kp.services
                )),
                _ => Check::Missing(format!("kube-proxy mode {mode}, {} services{kp_running}", kp.services)),
            }
        }
        Requirement::CiliumLb => {
            let c = &report.dataplane.cilium;
            if c.socket_lb == Some(true) || c.services.unwrap_or(0) > 0 {
                Check::Met(format!("socket-LB {:?}, {} services", c.socket_lb, c.services.unwrap_or(0)))
            } else {
                Check::Missing("no Cilium socket-LB program attached and no populated service map".into())
            }
        }
        Requirement::NoConflict => match report.finding(&FindingId::ServiceRoutingConflict) {
            Some(f) => Check::Missing(f.summary.clone()),
            None => Check::Met("no conflict".into()),
        },
        Requirement::ServiceProxy => {
            let programs = |p: &&crate::report::ServiceProxy| !p.balances.is_empty() || p.services.unwrap_or(0) > 0;
            let proxies: Vec<_> = report.dataplane.proxies.iter().filter(programs).collect();
            if let Some(p) = proxies.iter().find(|p| p.agent_running == Some(true)) {
                Check::Met(format!("{} programs Services, its agent running", p.proxy.as_str()))
            } else if proxies.iter().any(|p| p.agent_running.is_none()) {
                Check::Unknown("a proxy's rules are there but whether its agent runs could not be read".into())
            } else if let Some(p) = proxies.first() {
                Check::Missing(format!("{} rules without a running agent (stale)", p.proxy.as_str()))
            } else {
                Check::Missing("no Service proxy programs Services".into())
            }
        }
        Requirement::Link(name) => match snap.links.get().and_then(|l| l.get(name)) {
            Some(l) => Check::Met(format!("index {}", l.index)),
            None => Check::Missing("no such link".into()),
        },
        Requirement::BpfProg(name) => {
            let short: String = name.chars().take(15).collect();
            // The full name from BTF when there is one; else the kernel's, which may be the requested name cut.
            let named = |p: &&crate::model::bpf::Program| match &p.full_name {
                Some(full) => full == name || p.name == *name,
                None => p.name == *name || p.name == short,
            };
            match snap.bpf.get().and_then(|b| b.programs.iter().find(named)) {
                Some(p) => Check::Met(format!("prog id {}", p.id)),
                None => Check::Missing("no loaded program with that name".into()),
            }
        }
    }
}

/// The node gate in one collection (`[kubernetes] taint`, `/readyz?gate=1`): unlike READY it is no latch, a
/// conflict closes it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeGate {
    Met,
    /// Requirements that do not hold, each with what was seen instead.
    Unmet(Vec<String>),
    /// A source a requirement reads failed, or coverage is incomplete: no one can tell, so nothing changes.
    Unknown(Vec<String>),
}

impl NodeGate {
    /// As the report shows it, with the taint's state where the exporter keeps one.
    pub fn report(&self, taint: Option<&str>) -> crate::report::NodeGateReport {
        use crate::report::GateState;
        let (state, why) = match self {
            NodeGate::Met => (GateState::Met, Vec::new()),
            NodeGate::Unmet(w) => (GateState::Unmet, w.clone()),
            NodeGate::Unknown(w) => (GateState::Unknown, w.clone()),
        };
        crate::report::NodeGateReport { state, why, taint: taint.map(str::to_string) }
    }
}

/// The requirements of the node gate: `[gate] requirements`, or `no-conflict` and `service-proxy` when those are
/// empty.
pub fn node_gate_requirements(configured: &[Requirement]) -> Vec<Requirement> {
    if configured.is_empty() {
        vec![Requirement::NoConflict, Requirement::ServiceProxy]
    } else {
        configured.to_vec()
    }
}

pub fn node_gate(requirements: &[Requirement], snap: &Snapshot, report: &Report) -> NodeGate {
    let (mut unmet, mut unknown) = (Vec::new(), Vec::new());
    for r in requirements {
        match check(r, snap, report) {
            Check::Met(_) => {}
            Check::Missing(d) => unmet.push(format!("{r}: {d}")),
            Check::Unknown(d) => unknown.push(format!("{r}: {d}")),
        }
    }
    if let Some(f) = report.finding(&FindingId::CoverageIncomplete) {
        unknown.push(format!("coverage incomplete: {}", f.summary));
    }
    if !unknown.is_empty() {
        NodeGate::Unknown(unknown)
    } else if !unmet.is_empty() {
        NodeGate::Unmet(unmet)
    } else {
        NodeGate::Met
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_explains_mistakes() {
        assert_eq!(
            "chain:filter/KUBE-FORWARD".parse(),
            Ok(Requirement::Chain { table: "filter".into(), chain: "KUBE-FORWARD".into() })
        );
        assert_eq!(
            "nft-table:ip/kube-proxy".parse(),
            Ok(Requirement::NftTable { family: "ip".into(), name: "kube-proxy".into() })
        );
        assert_eq!("no-conflict".parse(), Ok(Requirement::NoConflict));
        assert_eq!("bpf-prog:cil_sock4_connect".parse(), Ok(Requirement::BpfProg("cil_sock4_connect".into())));
        let e = "chain:KUBE-FORWARD".parse::<Requirement>().unwrap_err().to_string();
        assert!(e.contains("two names") && e.contains("nft-table:FAMILY/NAME"), "{e}");
        let e = "kubeproxy".parse::<Requirement>().unwrap_err().to_string();
        assert!(e.contains("\"kubeproxy\"") && e.contains("kube-proxy, cilium-lb"), "{e}");
        assert!("link:".parse::<Requirement>().is_err());
        assert!("route:x".parse::<Requirement>().is_err());
    }

    /// A failed routes source makes no-conflict unknown only where Antrea is, whose mode routes tell.
    #[test]
    fn no_conflict_depends_on_routes_only_with_antrea() {
        let at = |name: &str| {
            let path = format!("{}/tests/data/snapshots/{name}.json", env!("CARGO_MANIFEST_DIR"));
            let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            v["routes"] = serde_json::json!({"status": "failed", "error": "netlink: denied"});
            let snap: Snapshot = serde_json::from_value(v).unwrap();
            let report = crate::rules::analyse(&snap, crate::model::Timestamp::from_unix(0));
            check(&Requirement::NoConflict, &snap, &report)
        };
        assert_eq!(at("kube_proxy_alone_is_healthy_with_mode_backend_and_services"), Check::Met("no conflict".into()));
        assert!(matches!(at("antrea_proxy_all_alone_is_healthy"), Check::Unknown(_)));
    }
}
