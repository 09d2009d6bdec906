//! Every Service proxy on the node, from what the kernel shows (docs/DATAPLANE-FACTS.md sections 7 and 10):
//! kube-proxy and Cilium from the facts `dataplane` already read, Calico's eBPF dataplane, kube-router's service
//! proxy, Antrea (proxyAll or AntreaProxy), OVN-Kubernetes and LoxiLB from attachments, maps, links, routes, chains,
//! nftables tables and processes; and whether a kubelet runs or is installed. Pure.
//!
//! `detect` is a conductor: one function per proxy says what it found (the proxy, notes on look-alikes, whether a
//! source it needed failed), in the order the notes are reported.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::bpf::BpfState;
use crate::model::links::{Direction, LinksState};
use crate::model::nftables::NftablesState;
use crate::model::procs::ProcessState;
use crate::model::Snapshot;
use crate::report::{
    Cilium, HealthPortHolder, KubeProxy, ProxyKind, ProxyMode, ServiceProxy, ServiceProxyMode, Traffic,
};

/// What the proxies need besides the report's view: whether a kubelet is there, and notes for people (stale
/// pins) that prove no proxy.
#[derive(Debug, Clone, Default)]
pub struct ProxyFacts {
    pub proxies: Vec<ServiceProxy>,
    /// Whether a kubelet runs or is configured here; `None` when processes could not be read.
    pub kubelet: Option<bool>,
    pub kubelet_evidence: Vec<String>,
    /// Things that look like a proxy and are not (stale Calico pins with nothing attached).
    pub not_proxies: Vec<String>,
    /// A source needed to tell a proxy's mode failed (routes for Antrea): the proxies' view is incomplete.
    pub incomplete: bool,
}

/// The chains the other proxies create, by prefix (KUBE-ROUTER-INPUT/FORWARD/OUTPUT are kube-router's policy
/// controller, OVN-KUBE-EGRESS-* egress features: neither balances Services).
const KUBE_ROUTER_PROXY_CHAINS: &[&str] = &["KUBE-ROUTER-SERVICES", "KUBE-ROUTER-HAIRPIN"];
const OVN_SERVICE_CHAINS: &[&str] = &["OVN-KUBE-NODEPORT", "OVN-KUBE-EXTERNALIP", "OVN-KUBE-ETP", "OVN-KUBE-ITP"];

/// Antrea's virtual Service IPs, the gateway of its Service CIDR route per enabled family (`VirtualServiceIPv4`
/// and `VirtualServiceIPv6` in `pkg/agent/config`; the NodePort DNAT address 169.254.0.252 is another one).
const ANTREA_VIRTUAL_SERVICE_IPS: &[IpAddr] = &[
    IpAddr::V4(Ipv4Addr::new(169, 254, 0, 253)),
    IpAddr::V6(Ipv6Addr::new(0xfc01, 0, 0, 0, 0, 0xaabb, 0xccdd, 0xeeff)),
];

/// Processes that embed kube-proxy (k3s, rke2) and so hold its health port themselves.
const EMBEDDED_KUBE_PROXY: &[&str] =
    &["kube-proxy", "k3s", "k3s-server", "k3s-agent", "rke2", "rke2-server", "rke2-agent"];

/// Every Service proxy and the kubelet, from the snapshot and what `dataplane` read of kube-proxy and Cilium.
pub fn detect(
    snap: &Snapshot,
    kp: &KubeProxy,
    kp_evidence: &[String],
    cil: &Cilium,
    cil_evidence: &[String],
) -> ProxyFacts {
    let node = Node::of(snap);
    let (kubelet, kubelet_evidence) = kubelet(node.procs);
    let mut out = ProxyFacts { kubelet, kubelet_evidence, ..ProxyFacts::default() };
    let found = [
        Found::proxy(kube_proxy(&node, kp, kp_evidence)),
        Found::proxy(cilium(cil, cil_evidence)),
        calico_ebpf(&node),
        kube_router(&node),
        antrea(&node),
        Found::proxy(ovn_kubernetes(&node)),
        Found::proxy(loxilb(&node)),
    ];
    for f in found {
        out.proxies.extend(f.proxy);
        out.not_proxies.extend(f.not_proxies);
        out.incomplete |= f.incomplete;
    }
    out.proxies.sort_by_key(|p| p.proxy);
    out
}

/// The parts of a snapshot the proxies' checks read, borrowed once (`None`: the source failed or is disabled).
struct Node<'a> {
    snap: &'a Snapshot,
    links: Option<&'a LinksState>,
    bpf: Option<&'a BpfState>,
    procs: Option<&'a ProcessState>,
    nft: Option<&'a NftablesState>,
    /// The other proxies' iptables chains, from `iptables_chains`.
    chains: Vec<(String, String)>,
}

impl<'a> Node<'a> {
    fn of(snap: &'a Snapshot) -> Self {
        Node {
            snap,
            links: snap.links.get(),
            bpf: snap.bpf.get(),
            procs: snap.processes.get(),
            nft: snap.nftables.get(),
            chains: iptables_chains(snap),
        }
    }

    /// Whether a process named `comm` runs; `None` when processes could not be read.
    fn running(&self, comm: &str) -> Option<bool> {
        self.procs.map(|p| !p.pids(comm).is_empty())
    }

    /// `<comm> process: pid N, M` when it runs.
    fn pid_note(&self, comm: &str) -> Option<String> {
        let procs = self.procs?;
        (!procs.pids(comm).is_empty()).then(|| format!("{comm} process: pid {}", procs.pids_text(comm)))
    }

    /// The chains of `chains` whose name is one of `names`, as `iptables-<backend> <family> <table>/<chain>`.
    fn chains_named(&self, names: &[&str]) -> Vec<&String> {
        self.chains.iter().filter(|(_, c)| names.contains(&c.as_str())).map(|(w, _)| w).collect()
    }
}

/// What one proxy's check found: the proxy when it is there, notes on what looks like it and is not, and whether a
/// source it needed failed.
#[derive(Debug, Default)]
struct Found {
    proxy: Option<ServiceProxy>,
    not_proxies: Vec<String>,
    incomplete: bool,
}

impl Found {
    /// A check that only ever finds the proxy or nothing.
    fn proxy(proxy: Option<ServiceProxy>) -> Self {
        Found { proxy, ..Found::default() }
    }
}

/// The kubelet: a `kubelet` process, k3s or MicroK8s (`kubelite`) embedding it, or its configuration files (a node
/// that has not joined yet still has them). `None` and no evidence when processes could not be read.
fn kubelet(procs: Option<&ProcessState>) -> (Option<bool>, Vec<String>) {
    let Some(p) = procs else { return (None, Vec::new()) };
    let mut evidence = Vec::new();
    let k3s: Vec<u32> = ["k3s-server", "k3s-agent", "k3s", "kubelite"].iter().flat_map(|c| p.pids(c)).collect();
    if !p.pids("kubelet").is_empty() {
        evidence.push(format!("kubelet process: pid {}", p.pids_text("kubelet")));
    }
    if !k3s.is_empty() {
        evidence.push(format!("k3s or MicroK8s process (kubelet embedded): pid {}", join(&k3s)));
    }
    for f in &p.kubelet_files {
        evidence.push(format!("kubelet configuration {f}"));
    }
    (Some(!evidence.is_empty()), evidence)
}

/// kube-proxy, in the mode `dataplane` read from its rules (section 7 rows K1 process or `/proxyMode`, K3 iptables,
/// K6 nftables, K7 IPVS with its VIPs on `kube-ipvs0`), and P1: another process holding its health port (Calico and
/// Cilium bind it too, calico#10748). A k3s process alone with no rules is not counted (k3s may run with
/// --disable-kube-proxy).
fn kube_proxy(node: &Node, kp: &KubeProxy, kp_evidence: &[String]) -> Option<ServiceProxy> {
    if !(kp.mode.is_present() || !kp.pids.is_empty() || kp.reported_mode.is_some()) {
        return None;
    }
    let mode = match kp.mode {
        ProxyMode::Iptables => ServiceProxyMode::Iptables,
        ProxyMode::Nftables => ServiceProxyMode::Nftables,
        ProxyMode::Ipvs => ServiceProxyMode::Ipvs,
        ProxyMode::None => ServiceProxyMode::NoRules,
        ProxyMode::Unknown => ServiceProxyMode::Unknown,
    };
    let mut evidence = kp_evidence.to_vec();
    // A socket whose process is not visible (another pid namespace) says nothing; k3s and rke2 embed kube-proxy.
    let health_port_held_by = node.procs.and_then(|p| p.healthz_port.as_ref()).and_then(|h| match (&h.comm, h.pid) {
        (Some(comm), Some(pid)) if !EMBEDDED_KUBE_PROXY.contains(&comm.as_str()) => {
            Some(HealthPortHolder { port: h.port, comm: comm.clone(), pid })
        }
        _ => None,
    });
    evidence.extend(health_port_held_by.as_ref().map(ToString::to_string));
    match kp.mode {
        ProxyMode::None => {
            evidence.push("no kube-proxy Service rules right now (deleted by another writer, or not synced yet)".into())
        }
        ProxyMode::Unknown => evidence.push("a rules source could not be read: kube-proxy's mode is unknown".into()),
        _ => {}
    }
    let services = match (kp.mode, vips_on(node.links, "kube-ipvs0")) {
        (ProxyMode::Ipvs, Some(vips)) => Some(ipvs_vips_in(node.snap, vips)),
        (m, _) if m.is_present() => Some(kp.services),
        _ => None,
    };
    Some(ServiceProxy {
        proxy: ProxyKind::KubeProxy,
        mode,
        balances: Traffic::ALL.to_vec(),
        services,
        agent_running: kp.running,
        evidence,
        health_port_held_by,
    })
}

/// Cilium, from what `dataplane` read (section 7 rows C2-C6): kube-proxy replacement, or per-packet ClusterIP
/// balancing for pods with KPR off (C2, the X2 overlap). What it balances: ClusterIPs from pods with service
/// entries or socket-LB (C4), from the host with socket-LB, external traffic with BPF NodePort on the NIC (C3) or
/// XDP (C5); KPR reported with no datapath seen yet balances all three.
fn cilium(cil: &Cilium, cil_evidence: &[String]) -> Option<ServiceProxy> {
    let kpr = cil.kube_proxy_replacement == Some(true);
    if !(kpr || (cil.present == Some(true) && cil.services.unwrap_or(0) > 0)) {
        return None;
    }
    let mut balances = Vec::new();
    let datapath = [cil.socket_lb, cil.bpf_nodeport, cil.xdp_nodeport].contains(&Some(true));
    if cil.services.unwrap_or(0) > 0 || cil.socket_lb == Some(true) || (kpr && !datapath) {
        balances.push(Traffic::ClusterIpFromPods);
    }
    if cil.socket_lb == Some(true) || (kpr && !datapath) {
        balances.push(Traffic::ClusterIpFromHost);
    }
    if cil.bpf_nodeport == Some(true) || cil.xdp_nodeport == Some(true) || (kpr && !datapath) {
        balances.push(Traffic::External);
    }
    Some(ServiceProxy {
        proxy: ProxyKind::Cilium,
        mode: if kpr { ServiceProxyMode::KubeProxyReplacement } else { ServiceProxyMode::PodClusterIp },
        balances,
        services: cil.services,
        agent_running: cil.agent_running,
        evidence: cil_evidence.to_vec(),
        health_port_held_by: None,
    })
}

/// kube-router's service proxy (section 10, row kube-router): it balances when IPVS virtual servers have their VIPs
/// on `kube-dummy-if`. The link and its chains (`KUBE-ROUTER-SERVICES`, `KUBE-ROUTER-HAIRPIN`) alone are
/// leftovers, noted as no proxy: kube-router runs on as CNI, BGP or policy agent with --run-service-proxy=false.
/// With those signs and links or IPVS unread, the view is incomplete.
fn kube_router(node: &Node) -> Found {
    let dummy = node.links.and_then(|l| l.get("kube-dummy-if"));
    let chains = node.chains_named(KUBE_ROUTER_PROXY_CHAINS);
    let services = match (node.links, node.snap.ipvs.get()) {
        (Some(_), Some(_)) => {
            Some(vips_on(node.links, "kube-dummy-if").map(|v| ipvs_vips_in(node.snap, v)).unwrap_or(0))
        }
        _ => None,
    };
    let signs = dummy.is_some() || !chains.is_empty();
    match services {
        None if signs => Found {
            incomplete: true,
            not_proxies: vec![
                "kube-dummy-if or kube-router's service chains are there, but links or IPVS could not be read: \
                 whether kube-router balances Services is unknown"
                    .into(),
            ],
            ..Found::default()
        },
        Some(0) if signs => Found {
            not_proxies: vec![format!(
                "kube-router leftovers ({}), but no IPVS virtual server on a kube-dummy-if address: its service \
                 proxy is off (--run-service-proxy=false) or gone, not a proxy",
                dummy
                    .map(|_| "link kube-dummy-if".to_string())
                    .into_iter()
                    .chain(chains.iter().map(|c| format!("chain {c}")))
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
            ..Found::default()
        },
        Some(n) if n > 0 => {
            let mut evidence = Vec::new();
            if let Some(d) = dummy {
                evidence.push(format!(
                    "link kube-dummy-if{} with {} addresses",
                    d.kind.as_deref().map(|k| format!(" ({k})")).unwrap_or_default(),
                    d.addresses.len()
                ));
            }
            evidence.push(format!("{n} IPVS virtual servers on kube-router's VIPs"));
            evidence.extend(chains.iter().map(|c| format!("chain {c}")));
            evidence.extend(node.pid_note("kube-router"));
            Found::proxy(Some(ServiceProxy {
                proxy: ProxyKind::KubeRouter,
                mode: ServiceProxyMode::Ipvs,
                balances: Traffic::ALL.to_vec(),
                services: Some(n),
                agent_running: node.running("kube-router"),
                evidence,
                health_port_held_by: None,
            }))
        }
        _ => Found::default(),
    }
}

/// Antrea (section 10, row Antrea `proxyAll`): listed when `antrea-gw0`, its nftables table `antrea` or an
/// `antrea-agent` process is there. proxyAll routes the Service CIDR via its virtual IP on `antrea-gw0` (with a
/// permanent neighbour), or has the table's `*-proxy-all` chains; without it AntreaProxy alone balances pod
/// ClusterIP traffic in OVS, which the kernel does not show (like Cilium without KPR). Routes unread and no
/// proxy-all chain: the mode is unknown and the view incomplete.
fn antrea(node: &Node) -> Found {
    let gw = node.links.and_then(|l| l.get("antrea-gw0"));
    let antrea_chains = node.chains.iter().filter(|(_, c)| c.starts_with("ANTREA-")).count();
    let antrea_nft = node.nft.and_then(|n| n.tables.iter().find(|t| t.name == "antrea"));
    let antrea_agent = node.running("antrea-agent");
    if gw.is_none() && antrea_nft.is_none() && antrea_agent != Some(true) {
        return Found::default();
    }
    let mut incomplete = false;
    let mut evidence = Vec::new();
    if gw.is_some() {
        evidence.push("link antrea-gw0".to_string());
    }
    if antrea_chains > 0 {
        evidence.push(format!("{antrea_chains} ANTREA-* iptables chains"));
    }
    // Whether proxyAll is on: `None` while routes could not be read and nothing else tells.
    let mut proxy_all = None;
    let virtual_ip = |a: &IpAddr| ANTREA_VIRTUAL_SERVICE_IPS.contains(a);
    match node.snap.routes.get() {
        Some(r) => {
            proxy_all = Some(false);
            for route in r.routes.iter().filter(|r| virtual_ip(&r.gateway) && r.device.as_deref() == Some("antrea-gw0"))
            {
                proxy_all = Some(true);
                evidence.push(format!("route {} via {} dev antrea-gw0", route.destination, route.gateway));
            }
            for n in r.neighbours.iter().filter(|n| virtual_ip(&n.address) && n.device.as_deref() == Some("antrea-gw0"))
            {
                evidence.push(format!("permanent neighbour {} on antrea-gw0", n.address));
            }
        }
        None => {
            incomplete = true;
            evidence.push("routes could not be read: whether proxyAll is on is unknown".into());
        }
    }
    if let Some(t) = antrea_nft {
        let pa: Vec<&String> = t.chains.iter().filter(|c| c.ends_with("-proxy-all")).collect();
        if !pa.is_empty() {
            proxy_all = Some(true);
        }
        evidence.push(format!(
            "nftables table {} antrea{}",
            t.family,
            pa.iter().map(|c| format!(", chain {c}")).collect::<String>()
        ));
    }
    evidence.extend(node.pid_note("antrea-agent"));
    if proxy_all != Some(true) {
        evidence.push("AntreaProxy balances ClusterIP traffic from pods in OVS flows (on by default)".into());
    }
    let (mode, balances) = match proxy_all {
        Some(true) => (ServiceProxyMode::ProxyAll, Traffic::ALL.to_vec()),
        Some(false) => (ServiceProxyMode::AntreaProxy, vec![Traffic::ClusterIpFromPods]),
        None => (ServiceProxyMode::Unknown, vec![Traffic::ClusterIpFromPods]),
    };
    Found {
        proxy: Some(ServiceProxy {
            proxy: ProxyKind::Antrea,
            mode,
            balances,
            services: None,
            agent_running: antrea_agent,
            evidence,
            health_port_held_by: None,
        }),
        incomplete,
        not_proxies: Vec::new(),
    }
}

/// OVN-Kubernetes (section 10, row OVN-Kubernetes): its Service chains (`OVN-KUBE-NODEPORT`, `-EXTERNALIP`, `-ETP`,
/// `-ITP`; not `OVN-KUBE-EGRESS-*`) or its nftables table `inet ovn-kubernetes`, or its management port
/// `ovn-k8s-mp0` with `ovnkube` running.
fn ovn_kubernetes(node: &Node) -> Option<ServiceProxy> {
    let mp0 = node.links.and_then(|l| l.get("ovn-k8s-mp0")).is_some();
    let ovn_chains = node.chains_named(OVN_SERVICE_CHAINS);
    let ovn_nft = node.nft.and_then(|n| n.table("inet", "ovn-kubernetes"));
    let ovnkube = node.running("ovnkube");
    if ovn_chains.is_empty() && ovn_nft.is_none() && !(mp0 && ovnkube == Some(true)) {
        return None;
    }
    let mut evidence = Vec::new();
    if mp0 {
        evidence.push("management port ovn-k8s-mp0".to_string());
    }
    evidence.extend(ovn_chains.iter().map(|c| format!("chain {c}")));
    if let Some(t) = ovn_nft {
        evidence.push(format!("nftables table inet ovn-kubernetes ({} chains)", t.chains.len()));
    }
    evidence.extend(node.pid_note("ovnkube"));
    Some(ServiceProxy {
        proxy: ProxyKind::OvnKubernetes,
        mode: ServiceProxyMode::Ovn,
        balances: Traffic::ALL.to_vec(),
        services: None,
        agent_running: ovnkube,
        evidence,
        health_port_held_by: None,
    })
}

/// LoxiLB's eBPF datapath (docs/DATAPLANE-FACTS.md section 11.1): `tc_packet_func_fast` (section
/// `tc_packet_hook0`, stored as `tc_packet_func_`) on tc ingress/egress of the interfaces it manages, and
/// `xdp_packet_func` on XDP of its own TAP `llb0` (and of every interface with `--rss-enable`). Its programs on
/// `llb0` alone balance no Service traffic. Its pinned maps (`/opt/loxilb/dp/bpf/`) are not read.
fn loxilb(node: &Node) -> Option<ServiceProxy> {
    let (links, bpf) = (node.links, node.bpf);
    let name = |id: u32, fallback: &str| {
        bpf.and_then(|b| b.program(id)).map(|p| p.name.clone()).unwrap_or_else(|| fallback.to_string())
    };
    let mut evidence = Vec::new();
    let mut balances = Vec::new();
    for l in links.map(|l| l.links.as_slice()).unwrap_or_default() {
        let mut on_link = false;
        for p in &l.programs {
            let n = name(p.prog_id, &p.name);
            if n.starts_with("tc_packet_func") {
                evidence.push(format!("{n} ({} {}, prog id {}) on {}", p.mechanism, p.direction, p.prog_id, l.name));
                on_link |= p.direction == Direction::Ingress;
            }
        }
        if let Some(id) = l.xdp_prog_id {
            let n = name(id, "");
            if n.starts_with("xdp_packet_func") {
                evidence.push(format!("{n} (xdp, prog id {id}) on {}", l.name));
                on_link = true;
            }
        }
        // Packets arriving at the node pass an ingress hook of the device they enter by; a pod's packets enter
        // the host by the host side of its veth (a data device by name is the node's, whatever its kind).
        if on_link && l.name != "llb0" {
            let pod_side = l.kind.as_deref() == Some("veth") && !is_data_device(&l.name);
            let t = if pod_side { Traffic::ClusterIpFromPods } else { Traffic::External };
            if !balances.contains(&t) {
                balances.push(t);
            }
        }
    }
    if evidence.is_empty() {
        return None;
    }
    balances.sort();
    evidence.extend(node.pid_note("loxilb"));
    Some(ServiceProxy {
        proxy: ProxyKind::Loxilb,
        mode: ServiceProxyMode::Ebpf,
        balances,
        services: None,
        agent_running: node.running("loxilb"),
        evidence,
        health_port_held_by: None,
    })
}

/// Calico's eBPF dataplane (section 10, row Calico eBPF): `cali_tc_preamble` attached on a device, or connect-time
/// load balancing on a cgroup; the NAT frontends of its pinned maps counted. Pinned NAT maps alone (nothing
/// attached) are stale and noted as no proxy.
fn calico_ebpf(node: &Node) -> Found {
    let (links, bpf) = (node.links, node.bpf);
    let name = |id: u32, fallback: &str| {
        bpf.and_then(|b| b.program(id)).map(|p| p.display_name().to_string()).unwrap_or_else(|| fallback.to_string())
    };
    let mut evidence = Vec::new();
    let mut balances = Vec::new();
    let add = |t: Traffic, b: &mut Vec<Traffic>| {
        if !b.contains(&t) {
            b.push(t);
        }
    };
    for l in links.map(|l| l.links.as_slice()).unwrap_or_default() {
        for p in &l.programs {
            // The kernel keeps 15 characters: cali_tc_preambl.
            let n = name(p.prog_id, &p.name);
            if !n.starts_with("cali_tc_preambl") {
                continue;
            }
            evidence.push(format!("{n} ({} {}, prog id {}) on {}", p.mechanism, p.direction, p.prog_id, l.name));
            if is_data_device(&l.name) {
                add(Traffic::External, &mut balances);
            } else if l.name.starts_with("cali")
                || l.name.starts_with("bpfin.cali")
                || l.name.starts_with("bpfout.cali")
            {
                add(Traffic::ClusterIpFromPods, &mut balances);
            }
        }
    }
    for cg in bpf.map(|b| b.cgroups.as_slice()).unwrap_or_default() {
        for (hook, ids) in &cg.hooks {
            for id in ids {
                let n = name(*id, "");
                if ["calico_connect", "calico_sendmsg", "calico_recvmsg"].iter().any(|p| n.starts_with(p)) {
                    evidence.push(format!("{n} (prog id {id}) on {hook} of {}", cg.path.display()));
                    add(Traffic::ClusterIpFromHost, &mut balances);
                    add(Traffic::ClusterIpFromPods, &mut balances);
                }
            }
        }
    }
    let maps = bpf.map(|b| b.calico_nat_maps.as_slice()).unwrap_or_default();
    let frontends: u32 = maps.iter().map(|m| m.frontends).sum();
    let map_notes: Vec<String> = maps
        .iter()
        .map(|m| {
            format!(
                "{}: {} NAT frontends ({} NodePort, {} with backends)",
                m.path.display(),
                m.frontends,
                m.node_ports,
                m.with_backends
            )
        })
        .collect();
    if evidence.is_empty() {
        let mut found = Found::default();
        if frontends > 0 {
            found.not_proxies = map_notes
                .into_iter()
                .map(|n| format!("{n}, but no Calico program is attached (tc, tcx, cgroup): stale pins, not a proxy"))
                .collect();
        }
        return found;
    }
    balances.sort();
    evidence.extend(map_notes);
    evidence.extend(node.pid_note("calico-node"));
    Found::proxy(Some(ServiceProxy {
        proxy: ProxyKind::CalicoEbpf,
        mode: ServiceProxyMode::Ebpf,
        balances,
        services: (!maps.is_empty()).then_some(frontends),
        agent_running: node.running("calico-node"),
        evidence,
        health_port_held_by: None,
    }))
}

/// Felix's default data-device pattern `^((en|wl|ww|sl|ib)[Popsx].*|(eth|wlan|wwan|bond).*)`.
fn is_data_device(name: &str) -> bool {
    let b = name.as_bytes();
    let two = ["en", "wl", "ww", "sl", "ib"].iter().any(|p| name.starts_with(p))
        && b.get(2).is_some_and(|c| b"Popsx".contains(c));
    two || ["eth", "wlan", "wwan", "bond"].iter().any(|p| name.starts_with(p))
}

/// The addresses on link `name`, when the link exists and has some.
fn vips_on<'a>(links: Option<&'a LinksState>, name: &str) -> Option<&'a [IpAddr]> {
    let l = links?.get(name)?;
    (!l.addresses.is_empty()).then_some(l.addresses.as_slice())
}

/// IPVS virtual servers whose address is one of `vips`.
fn ipvs_vips_in(snap: &Snapshot, vips: &[IpAddr]) -> u32 {
    let vips: std::collections::HashSet<&IpAddr> = vips.iter().collect();
    let n = snap.ipvs.get().map(|i| i.vips.iter().filter(|v| vips.contains(v)).count()).unwrap_or(0);
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Every iptables chain of both backends and families as (`iptables-<backend> <family> <table>/<chain>`, chain).
fn iptables_chains(snap: &Snapshot) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (backend, family, rs) in snap.iptables_backends() {
        // Sorted and each once, as the per-backend maps these were once read from gave them.
        let found: std::collections::BTreeSet<(&str, &str)> = rs
            .all()
            .filter(|(_, chain)| ["ANTREA-", "OVN-KUBE-", "KUBE-ROUTER-"].iter().any(|p| chain.starts_with(p)))
            .collect();
        for (table, chain) in found {
            out.push((format!("iptables-{backend} {family} {table}/{chain}"), chain.to_string()));
        }
    }
    out
}

fn join(pids: &[u32]) -> String {
    pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{FindingId, Report, Severity};

    /// A snapshot recorded by the system tests (`agent/tests/data/snapshots`), changed by `edit`, analysed.
    fn analysed(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Report {
        let path = format!("{}/tests/data/snapshots/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut v);
        crate::rules::analyse(&serde_json::from_value(v).unwrap(), crate::model::Timestamp::from_unix(0))
    }

    fn ids(r: &Report) -> Vec<(String, Severity)> {
        r.findings.iter().map(|f| (f.id.to_string(), f.severity)).collect()
    }

    fn modes(r: &Report) -> Vec<(ProxyKind, ServiceProxyMode)> {
        r.dataplane.proxies.iter().map(|p| (p.proxy, p.mode)).collect()
    }

    #[test]
    fn a_stale_kube_proxy_nftables_table_on_a_calico_node_is_said_to_mislead_calico() {
        let stale = |comms: &[&str]| {
            analysed("kube_proxy_nftables_mode_is_recognised", |v| {
                v["processes"]["data"]["processes"] = comms
                    .iter()
                    .enumerate()
                    .map(|(i, c)| serde_json::json!({"comm": c, "pid": 200 + i}))
                    .collect::<Vec<_>>()
                    .into();
            })
        };
        let r = stale(&["calico-node"]);
        let f = r.finding(&FindingId::KubeProxyStaleRules).unwrap();
        assert!(f.evidence.iter().any(|e| e.contains("calico-node runs (pid 200)") && e.contains("NFTablesMode=Auto")));
        assert!(f.remedy.contains("NFTablesMode"), "{f:?}");
        // Without Calico the finding says nothing about it.
        let r = stale(&[]);
        let f = r.finding(&FindingId::KubeProxyStaleRules).unwrap();
        assert!(!f.evidence.iter().any(|e| e.contains("NFTablesMode")) && !f.remedy.contains("NFTablesMode"));
    }

    #[test]
    fn kube_routers_nftables_policy_tables_are_no_service_routing() {
        // kube-router 2.x writes network policy to nftables tables kube-router-filter-ipv4/-ipv6 (kops#18708); its
        // service proxy is still IPVS. The tables are neither a proxy nor kube-proxy's leftovers.
        let with_tables = |v: &mut serde_json::Value| {
            let tables = v["nftables"]["data"]["tables"].as_array_mut().unwrap();
            for (family, name) in [("ip", "kube-router-filter-ipv4"), ("ip6", "kube-router-filter-ipv6")] {
                tables.push(
                    serde_json::json!({"family": family, "name": name, "chains": ["INPUT", "FORWARD", "OUTPUT"]}),
                );
            }
        };
        let r = analysed("kube_router_alone_is_healthy", with_tables);
        assert_eq!(modes(&r), vec![(ProxyKind::KubeRouter, ServiceProxyMode::Ipvs)]);
        assert_eq!(ids(&r), vec![]);
        assert_eq!(r.dataplane.kube_proxy.mode, ProxyMode::None, "{:?}", r.dataplane.kube_proxy);
        // Its service proxy off: only the policy tables remain, and nobody programs Services.
        let r = analysed("kube_router_alone_is_healthy", |v| {
            with_tables(v);
            v["ipvs"]["data"] = serde_json::json!({"loaded": true, "virtual_servers": 0});
        });
        assert_eq!(modes(&r), vec![]);
        assert_eq!(ids(&r), vec![("service-routing.missing".to_string(), Severity::Critical)]);
    }

    #[test]
    fn kube_router_leftovers_without_ipvs_services_on_its_vips_are_no_proxy() {
        // kube-router runs on (BGP, policy) with --run-service-proxy=false: kube-dummy-if and its chains stay.
        let r = analysed("kube_router_alone_is_healthy", |v| {
            v["ipvs"]["data"] = serde_json::json!({"loaded": true, "virtual_servers": 0});
        });
        assert_eq!(modes(&r), vec![], "{r:#?}");
        let missing = r.finding(&FindingId::ServiceRoutingMissing).unwrap();
        assert!(missing.evidence.iter().any(|e| e.contains("kube-router leftovers")), "{missing:?}");
        // Next to kube-proxy in IPVS mode (its VIPs on kube-ipvs0 only), the leftovers are no conflict.
        let r = analysed("conflict_when_kube_router_runs_next_to_kube_proxy_ipvs", |v| {
            let links = v["links"]["data"]["links"].as_array_mut().unwrap();
            for l in links.iter_mut().filter(|l| l["name"] == "kube-dummy-if") {
                l["addresses"] = serde_json::json!([]);
            }
        });
        assert_eq!(modes(&r), vec![(ProxyKind::KubeProxy, ServiceProxyMode::Ipvs)]);
        assert_eq!(ids(&r), vec![("kube-proxy.ipvs-deprecated".to_string(), Severity::Info)]);
        // IPVS unread: unknown, neither a proxy nor "nobody programs Services".
        let r = analysed("kube_router_alone_is_healthy", |v| {
            v["ipvs"] = serde_json::json!({"status": "failed", "error": "reading /proc/net/ip_vs: denied"});
        });
        assert_eq!(ids(&r).into_iter().map(|(id, _)| id).collect::<Vec<_>>(), vec!["source.failed"], "{r:#?}");
    }

    #[test]
    fn antreas_proxy_all_is_unknown_when_routes_fail_never_absent() {
        let fail =
            |v: &mut serde_json::Value| v["routes"] = serde_json::json!({"status": "failed", "error": "netlink"});
        let r = analysed("antrea_proxy_all_alone_is_healthy", fail);
        assert_eq!(modes(&r), vec![(ProxyKind::Antrea, ServiceProxyMode::Unknown)]);
        let ids = ids(&r);
        assert!(ids.iter().all(|(id, _)| id == "source.failed"), "no partial, no missing: {ids:?}");
        let r = analysed("antrea_proxy_without_proxy_all_next_to_kube_proxy_is_the_supported_overlap", fail);
        assert!(r.finding(&FindingId::ServiceRoutingOverlap).is_none(), "{r:#?}");
        assert!(r.findings.iter().all(|f| f.id == FindingId::SourceFailed), "{:?}", r.findings);
    }

    #[test]
    fn antreas_ipv6_virtual_service_ip_proves_proxy_all() {
        let r = analysed("antrea_proxy_all_alone_is_healthy", |v| {
            v["routes"]["data"] = serde_json::json!({
                "neighbours": [{"address": "fc01::aabb:ccdd:eeff", "device": "antrea-gw0"}],
                "routes": [{"destination": "fd00:10:96::/112", "device": "antrea-gw0",
                            "gateway": "fc01::aabb:ccdd:eeff", "table": 254}]});
        });
        assert_eq!(modes(&r), vec![(ProxyKind::Antrea, ServiceProxyMode::ProxyAll)]);
        assert_eq!(ids(&r), vec![]);
    }

    #[test]
    fn k3s_holding_the_health_port_is_kube_proxy_itself() {
        for (comm, held) in [("k3s-agent", false), ("rke2-server", false), ("calico-node", true)] {
            let r = analysed("conflict_when_kube_proxy_runs_next_to_calico_ebpf", |v| {
                v["processes"]["data"]["healthz_port"]["comm"] = serde_json::json!(comm);
            });
            let ev = &r.dataplane.proxies[0].evidence;
            assert_eq!(ev.iter().any(|e| e.contains("is held by")), held, "{comm}: {ev:?}");
        }
    }

    #[test]
    fn microk8s_kubelite_is_a_kubelet() {
        let r = analysed("a_machine_without_a_kubelet_is_not_a_kubernetes_node_yet", |v| {
            v["processes"]["data"]["processes"] = serde_json::json!([{"comm": "kubelite", "pid": 9}]);
        });
        assert_eq!(ids(&r), vec![("service-routing.missing".to_string(), Severity::Critical)]);
    }

    #[test]
    fn calico_programs_without_calico_node_warn_that_the_agent_is_down() {
        let r = analysed("calico_ebpf_alone_is_healthy", |v| {
            v["processes"]["data"]["processes"].as_array_mut().unwrap().retain(|p| p["comm"] != "calico-node");
        });
        assert_eq!(ids(&r), vec![("service-proxy.agent-down".to_string(), Severity::Warning)]);
        assert!(r.findings[0].summary.contains("no calico-node process"), "{:?}", r.findings[0]);
        // Processes unread: nothing is said about the agent.
        let r = analysed("calico_ebpf_alone_is_healthy", |v| {
            v["processes"] = serde_json::json!({"status": "failed", "error": "proc"});
        });
        assert!(r.finding(&FindingId::ServiceProxyAgentDown).is_none(), "{:?}", r.findings);
    }

    /// LoxiLB from a recorded world (its tc and XDP programs, its process), changed: without the `loxilb` process
    /// its programs are agent-down; programs named otherwise, or its programs only on llb0, are no LoxiLB traffic.
    #[test]
    fn loxilb_is_told_by_its_attached_programs_and_its_process() {
        const LB: &str = "loxilb_alone_on_a_load_balancer_machine_is_healthy";
        let r = analysed(LB, |_| {});
        assert_eq!(modes(&r), vec![(ProxyKind::Loxilb, ServiceProxyMode::Ebpf)]);
        assert_eq!(r.dataplane.proxies[0].balances, vec![Traffic::External]);
        assert!(ids(&r).is_empty(), "{:?}", r.findings);
        let r = analysed(LB, |v| {
            v["processes"]["data"]["processes"].as_array_mut().unwrap().retain(|p| p["comm"] != "loxilb");
        });
        assert_eq!(ids(&r), vec![("service-proxy.agent-down".to_string(), Severity::Warning)]);
        assert!(r.findings[0].summary.contains("no loxilb process"), "{:?}", r.findings[0]);
        // Other programs on the same hooks of a node: not LoxiLB, and nobody programs Services.
        let r = analysed("loxilb_alone_on_a_node_is_partial", |v| {
            for p in v["bpf"]["data"]["programs"].as_array_mut().unwrap() {
                p["name"] = "my_filter".into();
            }
        });
        assert!(modes(&r).is_empty(), "{:?}", r.dataplane.proxies);
        assert_eq!(ids(&r), vec![("service-routing.missing".to_string(), Severity::Critical)]);
        // Only on llb0, LoxiLB's own TAP: listed, balancing nothing.
        let r = analysed(LB, |v| {
            for l in v["links"]["data"]["links"].as_array_mut().unwrap() {
                if l["name"] == "eth0" {
                    l.as_object_mut().unwrap().remove("programs");
                }
            }
        });
        assert_eq!(modes(&r), vec![(ProxyKind::Loxilb, ServiceProxyMode::Ebpf)]);
        assert!(r.dataplane.proxies[0].balances.is_empty(), "{:?}", r.dataplane.proxies);
    }

    /// LoxiLB alone on a node (a kubelet is configured) is partial: it does not replace kube-proxy on its own.
    #[test]
    fn loxilb_without_kube_proxy_on_a_node_is_partial_and_not_an_all_clear() {
        let r = analysed("loxilb_alone_on_a_node_is_partial", |_| {});
        assert_eq!(ids(&r), vec![("service-routing.partial".to_string(), Severity::Warning)]);
        // A kube-proxy next to it: the supported overlap, nothing partial.
        let r = analysed("loxilb_next_to_kube_proxy_ipvs_is_the_supported_overlap", |_| {});
        assert!(r.finding(&FindingId::ServiceRoutingPartial).is_none(), "{:?}", r.findings);
    }

    /// OVN-Kubernetes from a recorded world (its Service chains, `ovn-k8s-mp0`, `ovnkube`), changed: its Service
    /// chains gone (its egress and management-port SNAT chains stay, which balance nothing), it is told by its
    /// nftables table alone (newer releases) or by its management port with `ovnkube` running; the port alone is
    /// no proxy.
    #[test]
    fn ovn_kubernetes_is_told_by_its_chains_its_nftables_table_or_its_port_with_ovnkube() {
        const OVN: &str = "ovn_kubernetes_alone_is_healthy";
        let without_service_chains = |v: &mut serde_json::Value| {
            for t in v["nftables"]["data"]["tables"].as_array_mut().unwrap() {
                t["chains"].as_array_mut().unwrap().retain(|c| !OVN_SERVICE_CHAINS.contains(&c.as_str().unwrap()));
            }
        };
        let no_processes = |v: &mut serde_json::Value| v["processes"]["data"]["processes"] = serde_json::json!([]);
        let r = analysed(OVN, |v| {
            without_service_chains(v);
            no_processes(v);
            v["nftables"]["data"]["tables"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"family": "inet", "name": "ovn-kubernetes", "chains": ["mgmtport-snat"]}));
        });
        assert_eq!(modes(&r), vec![(ProxyKind::OvnKubernetes, ServiceProxyMode::Ovn)]);
        let p = &r.dataplane.proxies[0];
        assert_eq!(p.agent_running, Some(false));
        assert_eq!(p.evidence, ["management port ovn-k8s-mp0", "nftables table inet ovn-kubernetes (1 chains)"]);
        let r = analysed(OVN, without_service_chains);
        assert_eq!(modes(&r), vec![(ProxyKind::OvnKubernetes, ServiceProxyMode::Ovn)]);
        assert_eq!(r.dataplane.proxies[0].evidence, ["management port ovn-k8s-mp0", "ovnkube process: pid 101"]);
        let r = analysed(OVN, |v| {
            without_service_chains(v);
            no_processes(v);
        });
        assert_eq!(modes(&r), vec![], "{:?}", r.dataplane.proxies);
    }

    #[test]
    fn felix_data_devices() {
        for yes in ["eth0", "ens3", "enp0s3", "eno1", "wlp2s0", "bond0", "wlan0"] {
            assert!(is_data_device(yes), "{yes}");
        }
        for no in ["cali1234", "lo", "kube-ipvs0", "antrea-gw0", "en", "enX", "veth1"] {
            assert!(!is_data_device(no), "{no}");
        }
    }
}
