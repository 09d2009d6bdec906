//! eBPF state: loaded programs, programs attached to the cgroup v2 roots (socket-LB), Cilium's pinned
//! service maps with their frontends counted by Service type, and Calico's NAT frontend maps.

pub mod parse;

use crate::config::Config;
use crate::model::bpf::{BpfState, CalicoNatMap, CgroupHooks, LbMap, Program};
use crate::model::error_chain;
use crate::sys::bpf::{self, BpfError, Prog};
use parse::LbFamily;

/// Pinned service maps with the `lb4_key`/`lb6_key` -> `lb4_service` layout decoded here (the `_v2` maps; the
/// pre-v2 maps of very old Cilium releases have another layout and are not read).
const LB_MAPS: &[(&str, LbFamily)] =
    &[("cilium_lb4_services_v2", LbFamily::V4), ("cilium_lb6_services_v2", LbFamily::V6)];

/// Calico's NAT frontend maps (version 3 of `cali_v4_nat_fe`; Calico pins them whole, its map names are at most
/// 15 characters), in the same `tc/globals` directory as Cilium's.
const CALICO_NAT_MAPS: [(&str, LbFamily); 2] = [("cali_v4_nat_fe3", LbFamily::V4), ("cali_v6_nat_fe3", LbFamily::V6)];

pub fn fetch(config: &Config) -> Result<BpfState, BpfError> {
    let programs = bpf::loaded_programs()?
        .into_iter()
        .map(|Prog { id, kind, name, tag, full_name }| Program { id, kind, name, tag, full_name })
        .collect();

    let mut cgroups = Vec::new();
    for root in &config.cgroup_roots {
        let path = config.host_path(root);
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

    let globals = config.host_path(&config.bpffs).join("tc/globals");
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
            Err(e) => map_errors.push((path, error_chain(&e))),
        }
    }
    let mut calico_nat_maps = Vec::new();
    for (name, family) in CALICO_NAT_MAPS {
        let path = globals.join(name);
        if !path.exists() {
            continue;
        }
        let read = match family {
            LbFamily::V4 => bpf::pinned_lpm_entries::<{ parse::CALICO_V4_KEY_DATA }, { parse::CALICO_VALUE }>(&path)
                .map(|e| parse::count_calico_frontends(family, e.iter().map(|(_, k, v)| (&k[..], &v[..])))),
            LbFamily::V6 => bpf::pinned_lpm_entries::<{ parse::CALICO_V6_KEY_DATA }, { parse::CALICO_VALUE }>(&path)
                .map(|e| parse::count_calico_frontends(family, e.iter().map(|(_, k, v)| (&k[..], &v[..])))),
        };
        match read {
            Ok((frontends, node_ports, with_backends)) => {
                calico_nat_maps.push(CalicoNatMap { path, frontends, node_ports, with_backends })
            }
            Err(e) => map_errors.push((path, error_chain(&e))),
        }
    }
    Ok(BpfState { programs, cgroups, lb_maps, map_errors, calico_nat_maps })
}
