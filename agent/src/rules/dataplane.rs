//! Reads a snapshot into facts: which kube-proxy mode programs Services, on which backend, whether it runs,
//! what Cilium does, and (through `rules::proxies`) every other Service proxy. Unknown stays unknown: a failed source never turns into "absent".

use crate::model::bpf::FrontendCounts;
use crate::model::links::{Direction, Link, LinksState, Mechanism};
use crate::model::{Backend, Family, Snapshot};
use crate::report::{AttachMode, Dataplane, DeviceMode, ProxyMode};
use crate::rules::chains::Signals;

/// Signals of one iptables backend and family.
#[derive(Debug, Clone)]
pub struct BackendSignals {
    pub backend: Backend,
    pub family: Family,
    pub signals: Signals,
    pub has_canary: bool,
    /// The kubelet's `KUBE-IPTABLES-HINT` (mangle): the backend the kubelet writes, which kube-proxy's
    /// iptables-wrapper follows.
    pub has_hint: bool,
}

/// Everything the findings need, with human-readable evidence collected along the way.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub dataplane: Dataplane,
    pub backends: Vec<BackendSignals>,
    /// kube-proxy iptables-mode chains found while the current mode is IPVS or nftables.
    pub other_mode_leftovers: u32,
    /// Evidence lines for kube-proxy and Cilium.
    pub kube_proxy_evidence: Vec<String>,
    pub cilium_evidence: Vec<String>,
    /// Whether every source that can show Service routing was read.
    pub complete: bool,
    /// Every Service proxy, the kubelet, and what looks like a proxy but is not (`rules::proxies`).
    pub proxies: crate::rules::proxies::ProxyFacts,
}

/// A per-Service-port chain of kube-proxy's nftables mode: `service-<HASH>-<namespace>/<name>/<protocol>/<port>`
/// (`servicePortChainName` in pkg/proxy/nftables/proxier.go), not the fixed `service-endpoints-check` chain that
/// shares the prefix (docs/DATAPLANE-FACTS.md section 3).
fn is_nft_service_chain(chain: &str) -> bool {
    chain.strip_prefix("service-").is_some_and(|rest| rest.contains('/'))
}

impl Facts {
    pub fn of(snap: &Snapshot) -> Facts {
        let mut f = Facts {
            complete: snap.iptables_legacy.get().is_some()
                && snap.nftables.get().is_some()
                && snap.links.get().is_some()
                && snap.ipvs.get().is_some()
                && snap.bpf.get().is_some(),
            ..Facts::default()
        };

        for (backend, family, rs) in snap.iptables_backends() {
            let signals = Signals::of(rs);
            let has_canary = ["mangle", "nat", "filter"].iter().any(|t| rs.has_chain(t, "KUBE-PROXY-CANARY"));
            let has_hint = rs.has_chain("mangle", "KUBE-IPTABLES-HINT");
            f.backends.push(BackendSignals { backend, family, signals, has_canary, has_hint });
        }
        f.kube_proxy(snap);
        f.cilium(snap);
        f.dataplane.cni = snap
            .cni
            .get()
            .and_then(|c| c.active.as_ref())
            .map(|a| crate::report::Cni { owner: a.owner.clone(), file: a.file.clone() });
        f.proxies = crate::rules::proxies::detect(
            snap,
            &f.dataplane.kube_proxy,
            &f.kube_proxy_evidence,
            &f.dataplane.cilium,
            &f.cilium_evidence,
        );
        f.dataplane.proxies = f.proxies.proxies.clone();
        f.complete &= !f.proxies.incomplete;
        f
    }

    fn kube_proxy(&mut self, snap: &Snapshot) {
        let kp = &mut self.dataplane.kube_proxy;
        let ev = &mut self.kube_proxy_evidence;

        // iptables mode: KUBE-SVC-* chains or the kube-proxy canary, in the backend with the most services.
        let ipt_backends: Vec<&BackendSignals> =
            self.backends.iter().filter(|b| b.signals.iptables_mode_chains > 0).collect();
        let ipt_services: u32 = ipt_backends.iter().map(|b| b.signals.svc_chains).max().unwrap_or(0);
        for b in &ipt_backends {
            ev.push(format!(
                "iptables-{} {}: {} KUBE-SVC-* chains in nat{}",
                b.backend,
                b.family,
                b.signals.svc_chains,
                if b.has_canary { ", KUBE-PROXY-CANARY present" } else { "" }
            ));
        }

        // IPVS mode: its own chains or the kube-ipvs0 dummy link.
        let ipvs_link = snap.links.get().and_then(|l| l.get("kube-ipvs0")).is_some();
        let ipvs_backends: Vec<&BackendSignals> =
            self.backends.iter().filter(|b| b.signals.ipvs_mode_chains > 0).collect();
        let ipvs_servers = snap.ipvs.get().map(|i| i.virtual_servers).unwrap_or(0);
        let ipvs = ipvs_link || !ipvs_backends.is_empty();
        if ipvs {
            ev.push(format!(
                "IPVS: {}{} virtual servers{}",
                if ipvs_link { "link kube-ipvs0, " } else { "" },
                ipvs_servers,
                if ipvs_backends.is_empty() { String::new() } else { ", KUBE-IPVS-*/KUBE-NODE-PORT chains".into() }
            ));
        }

        // nftables mode: `table ip kube-proxy` / `table ip6 kube-proxy`; one `service-*` chain per Service port.
        let nft_tables: Vec<_> = snap
            .nftables
            .get()
            .map(|n| {
                n.tables.iter().filter(|t| t.name == "kube-proxy" && (t.family == "ip" || t.family == "ip6")).collect()
            })
            .unwrap_or_default();
        let nft_services =
            nft_tables.iter().map(|t| t.chains.iter().filter(|c| is_nft_service_chain(c)).count()).max().unwrap_or(0);
        let nft_services = u32::try_from(nft_services).unwrap_or(u32::MAX);
        for t in &nft_tables {
            ev.push(format!("nftables table {} kube-proxy: {} chains", t.family, t.chains.len()));
        }

        let ipt_backend_names = |bs: &[&BackendSignals]| {
            let legacy = bs.iter().any(|b| b.backend == Backend::Legacy);
            let nft = bs.iter().any(|b| b.backend == Backend::Nft);
            match (legacy, nft) {
                (true, true) => Some("legacy+nft".to_string()),
                (true, false) => Some(Backend::Legacy.to_string()),
                (false, true) => Some(Backend::Nft.to_string()),
                (false, false) => None,
            }
        };
        if !nft_tables.is_empty() && (nft_services > 0 || (!ipvs && ipt_backends.is_empty())) {
            kp.mode = ProxyMode::Nftables;
            kp.services = nft_services;
            self.other_mode_leftovers = ipt_backends.iter().map(|b| b.signals.iptables_mode_chains).sum();
        } else if ipvs {
            kp.mode = ProxyMode::Ipvs;
            kp.services = ipvs_servers;
            kp.backend = ipt_backend_names(&ipvs_backends);
            self.other_mode_leftovers = ipt_backends.iter().map(|b| b.signals.iptables_mode_chains).sum();
        } else if !ipt_backends.is_empty() {
            kp.mode = ProxyMode::Iptables;
            kp.services = ipt_services;
            kp.backend = ipt_backend_names(&ipt_backends);
        } else if !self.complete {
            kp.mode = ProxyMode::Unknown;
        }

        if let Some(procs) = snap.processes.get() {
            kp.pids = procs.pids("kube-proxy");
            // k3s runs kube-proxy inside its own process.
            let embedded = ["k3s-server", "k3s-agent", "k3s"].iter().any(|c| !procs.pids(c).is_empty());
            kp.running = Some(!kp.pids.is_empty() || embedded);
            if !kp.pids.is_empty() {
                ev.push(format!("kube-proxy process: pid {}", procs.pids_text("kube-proxy")));
            } else if embedded {
                ev.push("k3s process runs (kube-proxy embedded)".into());
            }
        }
        if let Some(api) = snap.kube_proxy_api.get() {
            kp.reported_mode = api.proxy_mode.clone();
            kp.healthz_status = api.healthz_status;
            if let Some(mode) = &api.proxy_mode {
                ev.push(format!("kube-proxy answers /proxyMode: {mode}"));
                // It answered, so it runs, whatever the process table says (k3s and RKE2 embed it).
                kp.running = Some(true);
            }
        }
        kp.stale = kp.mode.is_present() && kp.running == Some(false);
    }

    fn cilium(&mut self, snap: &Snapshot) {
        let c = &mut self.dataplane.cilium;
        let ev = &mut self.cilium_evidence;
        let links = snap.links.get();
        let bpf = snap.bpf.get();

        let cilium_links: Vec<&str> = links
            .map(|l| l.links.iter().map(|l| l.name.as_str()).filter(|n| n.starts_with("cilium_")).collect())
            .unwrap_or_default();
        if !cilium_links.is_empty() {
            ev.push(format!("links {}", cilium_links.join(", ")));
        }
        let cilium_chains: u32 = self.backends.iter().map(|b| b.signals.cilium_chains).sum();
        if cilium_chains > 0 {
            ev.push(format!("{cilium_chains} CILIUM_* iptables chains"));
        }
        if let Some(procs) = snap.processes.get() {
            let pids = procs.pids("cilium-agent");
            c.agent_running = Some(!pids.is_empty());
            if !pids.is_empty() {
                ev.push(format!("cilium-agent process: pid {}", procs.pids_text("cilium-agent")));
            }
        }

        if let Some(bpf) = bpf {
            // Socket-LB: a cil_sock* program on a connect hook of a cgroup v2 root.
            let mut sock = Vec::new();
            for cg in &bpf.cgroups {
                for (hook, ids) in &cg.hooks {
                    for id in ids {
                        let name = bpf.program(*id).map(|p| p.display_name()).unwrap_or("");
                        if name.starts_with("cil_sock") && hook.starts_with("connect") {
                            sock.push(format!("{name} (prog id {id}) on {hook} of {}", cg.path.display()));
                        }
                    }
                }
            }
            c.socket_lb = Some(!sock.is_empty());
            ev.extend(sock);

            let mut fronts = FrontendCounts::default();
            for m in &bpf.lb_maps {
                fronts.add(&m.frontends);
                ev.push(format!(
                    "{}: {} service frontends ({} NodePort/ExternalIP/LoadBalancer/HostPort)",
                    m.path.display(),
                    m.frontends.total(),
                    m.frontends.external()
                ));
            }
            for (path, err) in &bpf.map_errors {
                ev.push(format!("could not read {}: {err}", path.display()));
            }
            if !bpf.lb_maps.is_empty() {
                c.services = Some(fronts.total());
                c.external_services = Some(fronts.external());
            }

            if let Some(links) = links {
                let prog_name = |id: u32, fallback: &str| {
                    bpf.program(id).map(|p| p.display_name().to_string()).unwrap_or_else(|| fallback.to_string())
                };
                let mut nodeport = false;
                let mut xdp = false;
                for l in links.links.iter().filter(|l| is_native(l)) {
                    for p in l.programs.iter().filter(|p| p.direction == Direction::Ingress) {
                        let name = prog_name(p.prog_id, &p.name);
                        if name.starts_with("cil_from_netdev") && fronts.external() > 0 {
                            nodeport = true;
                            ev.push(format!("{name} ({} ingress, prog id {}) on {}", p.mechanism, p.prog_id, l.name));
                        }
                    }
                    if let Some(id) = l.xdp_prog_id {
                        let name = prog_name(id, "");
                        if name.starts_with("cil_xdp") {
                            xdp = true;
                            ev.push(format!("{name} (XDP, prog id {id}) on {}", l.name));
                        }
                    }
                }
                c.bpf_nodeport = Some(nodeport);
                c.xdp_nodeport = Some(xdp);
            }
        }

        let agent = snap.cilium_agent.get().filter(|a| a.reachable);
        if let Some(a) = agent {
            c.configured_kpr = a.kpr_mode.clone();
            c.agent_running = Some(true);
            ev.push(format!(
                "cilium-agent API: kube-proxy replacement {} (NodePort {}, socket-LB {})",
                a.kpr_mode.as_deref().unwrap_or("not reported"),
                a.node_port.map_or("?", |b| if b { "on" } else { "off" }),
                a.socket_lb.map_or("?", |b| if b { "on" } else { "off" })
            ));
        }
        let configured = agent.and_then(|a| a.configured_kpr());
        // The datapath proves what routes now; the agent's configuration counts too (it may be re-attaching).
        let any_true = [c.socket_lb, c.bpf_nodeport, c.xdp_nodeport, configured].contains(&Some(true));
        let all_known = c.socket_lb.is_some() && c.bpf_nodeport.is_some() && c.xdp_nodeport.is_some();
        c.kube_proxy_replacement = if any_true {
            Some(true)
        } else if all_known {
            Some(false)
        } else {
            None
        };
        let present = agent.is_some()
            || !cilium_links.is_empty()
            || cilium_chains > 0
            || c.agent_running == Some(true)
            || c.services.is_some()
            || any_true;
        c.present = if present || (links.is_some() && bpf.is_some()) { Some(present) } else { None };
        if let (Some(true), Some(links)) = (c.present, links) {
            let name = |id: u32, fallback: &str| {
                bpf.and_then(|b| b.program(id)).map(|p| p.name.clone()).unwrap_or_else(|| fallback.to_string())
            };
            c.attach_mode = attach_mode(links, &name);
            c.device_mode = device_mode(links);
            if let Some(m) = c.device_mode {
                let pods = links.links.iter().filter(|l| is_pod_device(l)).count();
                ev.push(format!("{pods} pod devices (lxc*): {}", m.as_str()));
            }
        }
    }
}

/// How Cilium's programs are attached: the mechanisms of every `cil_*` program on a link.
fn attach_mode(links: &LinksState, name: &dyn Fn(u32, &str) -> String) -> Option<AttachMode> {
    let (mut tc, mut tcx) = (false, false);
    for p in links.links.iter().flat_map(|l| &l.programs) {
        if name(p.prog_id, &p.name).starts_with("cil_") {
            match p.mechanism {
                Mechanism::Tcx => tcx = true,
                Mechanism::Tc => tc = true,
            }
        }
    }
    match (tc, tcx) {
        (true, true) => Some(AttachMode::Both),
        (true, false) => Some(AttachMode::Tc),
        (false, true) => Some(AttachMode::Tcx),
        (false, false) => None,
    }
}

/// Cilium's host-side pod devices: `lxc` + a hash of the endpoint, for veth and netkit alike (cilium
/// `pkg/datapath/connector/netkit.go` `SetupNetkit`: `lxcIfName := Endpoint2IfName(id)`), and `lxc_health`.
fn is_pod_device(l: &Link) -> bool {
    l.name.starts_with("lxc") && matches!(l.kind.as_deref(), Some("veth" | "netkit"))
}

/// The kind of Cilium's pod devices, from the link kinds of `lxc*` devices.
fn device_mode(links: &LinksState) -> Option<DeviceMode> {
    let kinds: Vec<&str> = links.links.iter().filter(|l| is_pod_device(l)).filter_map(|l| l.kind.as_deref()).collect();
    match (kinds.contains(&"veth"), kinds.contains(&"netkit")) {
        (true, true) => Some(DeviceMode::Both),
        (true, false) => Some(DeviceMode::Veth),
        (false, true) => Some(DeviceMode::Netkit),
        (false, false) => None,
    }
}

/// A link that carries node traffic (not one of Cilium's own devices, a pod veth, or loopback).
fn is_native(l: &Link) -> bool {
    !(l.name.starts_with("cilium_") || l.name.starts_with("lxc") || l.name == "lo")
}

#[cfg(test)]
mod tests {
    /// Netkit pod devices (Cilium's `bpf.datapathMode=netkit`), which this machine's kernel cannot make: the links
    /// of a real tcx world with the pod devices' kind as rtnetlink reports a netkit pair (`IFLA_INFO_KIND` "netkit").
    #[test]
    fn netkit_pod_devices_are_named_and_a_move_from_veth_shows_both() {
        use crate::report::{AttachMode, DeviceMode};
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/snapshots/cilium_kpr_over_tcx_with_pod_devices_is_found_and_its_mode_named.json"
        );
        let snap: crate::model::Snapshot = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let decide = |kinds: [&str; 2]| {
            let mut s = snap.clone();
            let links = s.links.data.as_mut().unwrap();
            let mut pods = links.links.iter_mut().filter(|l| l.name.starts_with("lxc"));
            for k in kinds {
                pods.next().unwrap().kind = Some(k.to_string());
            }
            let r = crate::rules::analyse(&s, crate::model::Timestamp::from_unix(0));
            (r.dataplane.cilium.attach_mode, r.dataplane.cilium.device_mode, r.dataplane.cilium.kube_proxy_replacement)
        };
        assert_eq!(decide(["veth", "veth"]), (Some(AttachMode::Tcx), Some(DeviceMode::Veth), Some(true)));
        assert_eq!(decide(["netkit", "netkit"]), (Some(AttachMode::Tcx), Some(DeviceMode::Netkit), Some(true)));
        assert_eq!(decide(["netkit", "veth"]), (Some(AttachMode::Tcx), Some(DeviceMode::Both), Some(true)));
        // An lxc* device of another kind (a bridge someone named so) is no pod device.
        assert_eq!(decide(["bridge", "bridge"]).1, None);
    }

    /// Issue 23: `service-endpoints-check` made the count one more than the service ports kube-proxy balances.
    #[test]
    fn only_per_service_port_chains_count_as_services() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/fixtures/real-kube-proxy-1.30.5/nftables-mode.n40.nft-list-ruleset.txt"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let chains: Vec<&str> =
            text.lines().filter_map(|l| l.trim().strip_prefix("chain ")?.split(' ').next()).collect();
        let v4 = text.split("table ip6 ").next().unwrap_or("");
        let v4_chains = v4.lines().filter_map(|l| l.trim().strip_prefix("chain ")?.split(' ').next());
        assert_eq!(v4_chains.filter(|c| super::is_nft_service_chain(c)).count(), 42);
        assert!(chains.contains(&"service-endpoints-check"));
        assert!(!super::is_nft_service_chain("service-endpoints-check"));
        assert!(super::is_nft_service_chain("service-ULMVA6XW-ns1/svc1/tcp/p80"));
    }
}
