//! Network links with the BPF programs attached to them (XDP, tc, tcx).

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
    /// (`kube-ipvs0`, `kube-dummy-if`; see [`VIP_LINKS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// Links whose addresses are recorded: the IPVS service VIPs of kube-proxy (`kube-ipvs0`) and kube-router
/// (`kube-dummy-if`), docs/DATAPLANE-FACTS.md sections 2.2 and 10.
pub const VIP_LINKS: &[&str] = &["kube-ipvs0", "kube-dummy-if"];

/// A BPF program on a link's ingress or egress path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcProgram {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `tc` (clsact filter) or `tcx` (bpf_link, kernel >= 6.6).
    pub mechanism: String,
    pub prog_id: u32,
    /// tc: the filter name (Cilium names them `<prog>-<dev>`); tcx: the program name.
    pub name: String,
}

impl LinksState {
    pub fn get(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }
}
