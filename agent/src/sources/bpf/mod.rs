//! eBPF state: loaded programs, programs attached to the cgroup v2 roots (socket-LB), and Cilium's pinned
//! service maps with their frontends counted by Service type.

pub mod parse;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::sys::bpf::{self, BpfError, Prog};
pub use parse::{FrontendCounts, LbFamily};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BpfState {
    pub programs: Vec<Program>,
    pub cgroups: Vec<CgroupHooks>,
    pub lb_maps: Vec<LbMap>,
    /// Pinned maps that exist but could not be read (other layout, permissions): (path, error). The rest of the
    /// source still reports.
    #[serde(default)]
    pub map_errors: Vec<(PathBuf, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub id: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub tag: String,
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
    /// Addresses of the ClusterIP frontends (at most `parse::MAX_ADDRESSES`).
    #[serde(default)]
    pub cluster_ips: Vec<String>,
}

impl BpfState {
    pub fn program(&self, id: u32) -> Option<&Program> {
        self.programs.iter().find(|p| p.id == id)
    }
}

/// Pinned service maps with the `lb4_key`/`lb6_key` -> `lb4_service` layout decoded here (the `_v2` maps; the
/// pre-v2 maps of very old Cilium releases have another layout and are not read).
const LB_MAPS: &[(&str, LbFamily)] =
    &[("cilium_lb4_services_v2", LbFamily::V4), ("cilium_lb6_services_v2", LbFamily::V6)];

pub fn fetch(settings: &Settings) -> Result<BpfState, BpfError> {
    let programs = bpf::loaded_programs()?
        .into_iter()
        .map(|Prog { id, kind, name, tag }| Program { id, kind, name, tag })
        .collect();

    let mut cgroups = Vec::new();
    for root in &settings.cgroup_roots {
        let path = settings.host_path(root);
        // Only real cgroup v2 directories: a v1 hierarchy or a missing mount point has nothing to query.
        if !path.join("cgroup.controllers").exists() {
            continue;
        }
        let mut hooks = Vec::new();
        for &(attach, name) in bpf::SOCK_ATTACH_TYPES {
            let ids = bpf::cgroup_attached(&path, attach)?;
            if !ids.is_empty() {
                hooks.push((name.to_string(), ids));
            }
        }
        cgroups.push(CgroupHooks { path, hooks });
    }

    let globals = settings.host_path(&settings.bpffs).join("tc/globals");
    let mut lb_maps = Vec::new();
    let mut map_errors = Vec::new();
    for &(name, family) in LB_MAPS {
        let path = globals.join(name);
        if !path.exists() {
            continue;
        }
        let read = match family {
            LbFamily::V4 => bpf::pinned_entries::<12, 12>(&path)
                .map(|e| parse::count_frontends(family, e.iter().map(|(k, v)| (&k[..], &v[..])))),
            LbFamily::V6 => bpf::pinned_entries::<24, 12>(&path)
                .map(|e| parse::count_frontends(family, e.iter().map(|(k, v)| (&k[..], &v[..])))),
        };
        match read {
            Ok((entries, frontends, cluster_ips)) => lb_maps.push(LbMap { path, entries, frontends, cluster_ips }),
            Err(e) => map_errors.push((path, crate::snapshot::error_chain(&e))),
        }
    }
    Ok(BpfState { programs, cgroups, lb_maps, map_errors })
}
