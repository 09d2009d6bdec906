//! Network links with the BPF programs attached to them (XDP, tc, tcx).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LinksState {
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Link kind (`veth`, `dummy`, `vxlan`, ...); `None` for physical devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Id of the XDP program attached, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_prog_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<TcProgram>,
    /// Addresses on the link (without prefix length), only for the links whose addresses tell who owns a VIP
    /// (`kube-ipvs0`, `kube-dummy-if`; see [`VIP_LINKS`]). Serialised as the strings they always were
    /// (`"10.96.0.1"`); a snapshot with anything else there does not load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
}

/// Links whose addresses are recorded: the IPVS service VIPs of kube-proxy (`kube-ipvs0`) and kube-router
/// (`kube-dummy-if`), docs/DATAPLANE-FACTS.md sections 2.2 and 10.
pub const VIP_LINKS: &[&str] = &["kube-ipvs0", "kube-dummy-if"];

/// A BPF program on a link's ingress or egress path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcProgram {
    pub direction: Direction,
    pub mechanism: Mechanism,
    pub prog_id: u32,
    /// tc: the filter name (Cilium names them `<prog>-<dev>`); tcx: the program name.
    pub name: String,
}

/// The path of a link a tc or tcx program sits on, serialised as `ingress` or `egress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a program is attached to a link, serialised as `tc` or `tcx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// A bpf filter on the link's clsact qdisc.
    Tc,
    /// A tcx bpf_link (kernel >= 6.6).
    Tcx,
}

impl Mechanism {
    pub const fn as_str(self) -> &'static str {
        match self {
            Mechanism::Tc => "tc",
            Mechanism::Tcx => "tcx",
        }
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LinksState {
    pub fn get(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Typed addresses and attachment kinds serialise as the strings they replaced: the links, IPVS and routes of
    /// every recorded snapshot load and serialise back to the recorded JSON, so a fresh snapshot of the same world
    /// gives the same text.
    #[test]
    fn recorded_links_ipvs_and_routes_serialise_as_recorded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/snapshots");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let recorded: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let snap: crate::model::Snapshot = serde_json::from_value(recorded.clone()).unwrap();
            let again = serde_json::to_value(&snap).unwrap();
            for slot in ["links", "ipvs", "routes"] {
                if recorded.get(slot).is_some() {
                    assert_eq!(again[slot], recorded[slot], "{slot} of {}", path.display());
                    seen += 1;
                }
            }
        }
        assert!(seen > 100, "only {seen} slots compared");
        let p = TcProgram { direction: Direction::Egress, mechanism: Mechanism::Tcx, prog_id: 7, name: "x".into() };
        let text = r#"{"direction":"egress","mechanism":"tcx","prog_id":7,"name":"x"}"#;
        assert_eq!(serde_json::to_string(&p).unwrap(), text);
        assert_eq!(format!("{} {}", Mechanism::Tc, Direction::Ingress), "tc ingress");
    }
}
