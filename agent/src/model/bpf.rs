//! eBPF state: loaded programs, cgroup attachments, and Cilium's service maps counted by Service type.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BpfState {
    pub programs: Vec<Program>,
    pub cgroups: Vec<CgroupHooks>,
    pub lb_maps: Vec<LbMap>,
    /// Pinned maps that exist but could not be read (other layout, permissions): (path, error). The rest of the
    /// source still reports.
    #[serde(default)]
    pub map_errors: Vec<(PathBuf, String)>,
    /// Calico's pinned NAT frontend maps (`cali_v4_nat_fe3`, `cali_v6_nat_fe3`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calico_nat_maps: Vec<CalicoNatMap>,
}

/// One pinned Calico NAT frontend map (lpm_trie `calico_nat_v4_key` -> `calico_nat_v4_value`,
/// docs/DATAPLANE-FACTS.md section 10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalicoNatMap {
    pub path: PathBuf,
    /// Frontends: one entry per (address, port, protocol, source range).
    pub frontends: u32,
    /// Frontends on Calico's NodePort address 255.255.255.255.
    pub node_ports: u32,
    /// Frontends with at least one backend.
    pub with_backends: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub id: u32,
    #[serde(rename = "type")]
    pub kind: String,
    /// The kernel's name, cut to 15 characters.
    pub name: String,
    pub tag: String,
    /// The full name from the program's BTF when the kernel's is cut (`cil_sock4_connect` for `cil_sock4_conne`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
}

impl Program {
    /// The name to show people: the full one when BTF gave it, else the kernel's.
    pub fn display_name(&self) -> &str {
        self.full_name.as_deref().unwrap_or(&self.name)
    }
}

/// Programs attached directly to one cgroup, per attach point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupHooks {
    pub path: PathBuf,
    /// (attach point such as `connect4`, program ids)
    pub hooks: Vec<(String, Vec<u32>)>,
}

/// One pinned Cilium service map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbMap {
    pub path: PathBuf,
    pub entries: u32,
    pub frontends: FrontendCounts,
    /// Addresses of the ClusterIP frontends (at most `parse::MAX_ADDRESSES`), sorted. Serialised as the strings
    /// they always were (`"10.96.0.1"`); a snapshot with anything else there does not load.
    #[serde(default)]
    pub cluster_ips: Vec<IpAddr>,
}

impl BpfState {
    pub fn program(&self, id: u32) -> Option<&Program> {
        self.programs.iter().find(|p| p.id == id)
    }
}

/// Service frontends in a map, by the Service type their flags say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontendCounts {
    pub cluster_ip: u32,
    pub node_port: u32,
    pub external_ip: u32,
    pub load_balancer: u32,
    pub host_port: u32,
}

impl FrontendCounts {
    pub fn total(&self) -> u32 {
        self.cluster_ip + self.node_port + self.external_ip + self.load_balancer + self.host_port
    }

    /// Frontends for traffic arriving from outside (what kube-proxy replacement handles in BPF).
    pub fn external(&self) -> u32 {
        self.node_port + self.external_ip + self.load_balancer + self.host_port
    }

    pub fn add(&mut self, o: &FrontendCounts) {
        self.cluster_ip += o.cluster_ip;
        self.node_port += o.node_port;
        self.external_ip += o.external_ip;
        self.load_balancer += o.load_balancer;
        self.host_port += o.host_port;
    }
}
