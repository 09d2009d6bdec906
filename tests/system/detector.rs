//! System tests of `routewarden check`: one real world per decision of the detector (network namespace with real
//! rules and links, real BPF programs and pinned maps, real named processes), asserting the report. Each world's
//! snapshot is also compared with its recording in `agent/tests/data/snapshots/`, whose decisions the agent crate
//! checks without root. They need root; without it they skip with a reason, and under CI=true a skip fails.

use routewarden_system_tests::{self as harness, bin, finding, ids, Impostor, World};

const OVERALL: &str = "kube-proxy-iptables-TestOverallIPTablesRules.txt";

const KUBELET_CHAINS: &str = "*mangle
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*nat
:POSTROUTING ACCEPT [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-MARK-DROP - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING
-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
COMMIT
*filter
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
-A INPUT -j KUBE-FIREWALL
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
COMMIT
";

/// kube-proxy IPVS mode's iptables chains (docs/DATAPLANE-FACTS.md 2.2), with stale iptables-mode chains from an
/// earlier run in iptables mode.
const IPVS_CHAINS_WITH_LEFTOVERS: &str = "*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-LOAD-BALANCER - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]
:KUBE-SEP-STALE000000000001 - [0:0]
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A KUBE-SERVICES -m comment --comment \"Kubernetes service cluster ip + port for masquerade purpose\" -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
-A KUBE-SVC-NPX46M4PTMTKRN6Y -j KUBE-SEP-STALE000000000001
-A KUBE-SEP-STALE000000000001 -p tcp -j DNAT --to-destination 192.168.0.2:6443
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SOURCE-RANGES-FIREWALL - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-IPVS-OUT-FILTER - [0:0]
-A INPUT -m comment --comment \"kubernetes health check rules\" -j KUBE-NODE-PORT
-A INPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-FILTER
-A OUTPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-OUT-FILTER
-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD
-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT
COMMIT
";

const IP_VS: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A600001:01BB rr
  -> C0A80002:192B      Masq    1      0          0
UDP  0A60000A:0035 rr
  -> 0AF40001:0035      Masq    1      0          0
TCP  0A60000A:0035 rr
  -> 0AF40001:0035      Masq    1      0          0
";

const CLUSTER_IP: u8 = 0;
const NODEPORT: u8 = 1 << 1;
const EXTERNAL_IP: u8 = 1 << 0;

#[test]
fn conflict_when_kube_proxy_runs_next_to_cilium_socket_lb() {
    let Some(mut w) = World::new("conflict") else { return };
    w.iptables_fixture("nft", OVERALL);
    w.veth("cilium_host", "cilium_net");
    w.socket_lb();
    w.lb4_map(&[([10, 96, 0, 1], 443, CLUSTER_IP), ([10, 96, 0, 10], 53, CLUSTER_IP)]);
    w.process("kube-proxy");
    w.process("cilium-agent");

    let before = w.state();
    let (code, r) = w.check();
    let (text_code, text, _) = w.run("check");
    w.assert_recorded("conflict_when_kube_proxy_runs_next_to_cilium_socket_lb");
    assert_eq!(w.state(), before, "routewarden changed the node's state");

    assert_eq!(code, 2, "{r:#}");
    assert_eq!(text_code, 2);
    assert_eq!(r["verdict"], "critical");
    assert_eq!(r["dataplane"]["kube_proxy"]["mode"], "iptables");
    assert_eq!(r["dataplane"]["kube_proxy"]["backend"], "nft");
    assert_eq!(r["dataplane"]["kube_proxy"]["services"], 5, "svc1..svc5 (svc6 has no endpoints, so no chain): {r:#}");
    assert_eq!(r["dataplane"]["kube_proxy"]["running"], true);
    assert_eq!(r["dataplane"]["cilium"]["socket_lb"], true);
    assert_eq!(r["dataplane"]["cilium"]["kube_proxy_replacement"], true);
    assert_eq!(r["dataplane"]["cilium"]["services"], 2);
    let f = finding(&r, "service-routing.conflict");
    assert_eq!(f["severity"], "critical");
    let evidence = f["evidence"].to_string();
    assert!(evidence.contains("cil_sock4_conne") && evidence.contains("kube-proxy process: pid"), "{evidence}");
    // The kernel keeps 15 characters; the program's BTF (clang -g) gives the function's full name.
    assert!(evidence.contains("cil_sock4_connect (prog id"), "the full name from BTF: {evidence}");
    assert!(f["remedy"].as_str().unwrap().contains("kube-proxy --cleanup"));
    assert!(text.contains("CRITICAL service-routing.conflict"), "{text}");
}

/// Cilium's socket-LB and maps left attached while no cilium-agent runs (an uninstall that did not clean up, a
/// crashed agent) still balance Services from the stale maps: agent-down, and the conflict with a running kube-proxy
/// stays.
#[test]
fn cilium_programs_without_cilium_agent_are_agent_down() {
    let Some(mut w) = World::new("cil-orphan") else { return };
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.veth("cilium_host", "cilium_net");
    w.socket_lb();
    w.lb4_map(&[([10, 96, 0, 1], 443, CLUSTER_IP), ([10, 96, 0, 10], 53, CLUSTER_IP)]);
    let (code, r) = w.check();
    w.assert_recorded("cilium_programs_without_cilium_agent_are_agent_down-alone");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["dataplane"]["cilium"]["agent_running"], false);
    assert_eq!(ids(&r), vec!["service-proxy.agent-down"], "{r:#}");
    let f = finding(&r, "service-proxy.agent-down");
    assert!(f["summary"].as_str().unwrap().contains("no cilium-agent process runs"), "{f:#}");
    assert!(f["evidence"].to_string().contains("cil_sock4_conne"), "{f:#}");

    w.iptables_fixture("nft", OVERALL);
    w.process("kube-proxy");
    let (code, r) = w.check();
    w.assert_recorded("cilium_programs_without_cilium_agent_are_agent_down-with-kube-proxy");
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(ids(&r), vec!["service-routing.conflict", "service-proxy.agent-down"], "{r:#}");
    assert_eq!(finding(&r, "service-routing.conflict")["severity"], "critical");
}

#[test]
fn cilium_without_kpr_next_to_kube_proxy_is_the_supported_overlap() {
    let Some(mut w) = World::new("overlap") else { return };
    w.iptables_fixture("legacy", OVERALL);
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.veth("cilium_host", "cilium_net");
    w.veth("eth0", "eth0peer");
    // KPR off: ClusterIP-only frontends, no socket-LB, no BPF on the native device.
    w.lb4_map(&[([10, 96, 0, 1], 443, CLUSTER_IP)]);
    w.process("kube-proxy");
    w.process("cilium-agent");

    let (code, r) = w.check();
    w.assert_recorded("cilium_without_kpr_next_to_kube_proxy_is_the_supported_overlap");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["verdict"], "ok");
    assert_eq!(ids(&r), vec!["service-routing.overlap"]);
    assert_eq!(finding(&r, "service-routing.overlap")["severity"], "info");
    assert_eq!(r["dataplane"]["kube_proxy"]["backend"], "legacy", "kubelet chains in nft must not count: {r:#}");
    assert_eq!(r["dataplane"]["cilium"]["present"], true);
    assert_eq!(r["dataplane"]["cilium"]["kube_proxy_replacement"], false);
}

#[test]
fn cilium_kpr_alone_with_only_kubelet_chains_is_healthy() {
    let Some(mut w) = World::new("kpr-alone") else { return };
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.iptables_restore("nft", true, "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n");
    w.veth("cilium_host", "cilium_net");
    w.veth("eth0", "eth0peer");
    w.socket_lb();
    w.tc_ingress("eth0");
    w.xdp("eth0");
    w.lb4_map(&[([10, 96, 0, 1], 443, CLUSTER_IP), ([0, 0, 0, 0], 30080, NODEPORT | EXTERNAL_IP)]);
    w.process("cilium-agent");

    let (code, r) = w.check();
    w.assert_recorded("cilium_kpr_alone_with_only_kubelet_chains_is_healthy");
    assert_eq!(code, 0, "{r:#}");
    assert!(ids(&r).is_empty(), "kubelet's KUBE-* chains are not kube-proxy: {r:#}");
    assert_eq!(r["dataplane"]["kube_proxy"]["mode"], "none");
    let c = &r["dataplane"]["cilium"];
    assert_eq!(
        (c["socket_lb"].clone(), c["bpf_nodeport"].clone(), c["xdp_nodeport"].clone()),
        (true.into(), true.into(), true.into()),
        "{r:#}"
    );
    assert_eq!(c["external_services"], 1);
}

/// Cilium with `bpf.enableTCX`: the NIC's program a tcx link, pod devices `lxc*` veth pairs. The report says which
/// attach and device mode the node uses (issue 23). Netkit pod devices (`bpf.datapathMode=netkit`) cannot be made
/// here (this kernel has no CONFIG_NETKIT): `rules::dataplane`'s unit tests decide them from recorded links.
#[test]
fn cilium_kpr_over_tcx_with_pod_devices_is_found_and_its_mode_named() {
    let Some(mut w) = World::new("kpr-tcx-pods") else { return };
    w.veth("cilium_host", "cilium_net");
    w.veth("eth1", "eth1peer");
    w.veth("lxc0a1b2c3d4e5f", "pod0eth0");
    w.veth("lxc_health", "health0eth0");
    w.tcx_ingress("eth1");
    w.socket_lb();
    w.lb4_map(&[([10, 96, 0, 1], 443, CLUSTER_IP), ([0, 0, 0, 0], 30001, NODEPORT)]);
    w.process("cilium-agent");

    let (code, r) = w.check();
    w.assert_recorded("cilium_kpr_over_tcx_with_pod_devices_is_found_and_its_mode_named");
    assert_eq!(code, 0, "{r:#}");
    let c = &r["dataplane"]["cilium"];
    assert_eq!((c["kube_proxy_replacement"].as_bool(), c["bpf_nodeport"].as_bool()), (Some(true), Some(true)));
    assert_eq!((c["attach_mode"].as_str(), c["device_mode"].as_str()), (Some("tcx"), Some("veth")), "{r:#}");
    let (_, text, _) = w.run("check");
    assert!(text.contains("tcx attach, veth devices"), "{text}");
}

#[test]
fn conflict_when_cilium_balances_nodeports_in_bpf_on_the_nic_over_tcx() {
    let Some(mut w) = World::new("conflict-tcx") else { return };
    w.iptables_fixture("legacy", OVERALL);
    w.veth("eth1", "eth1peer");
    w.tcx_ingress("eth1");
    w.lb4_map(&[([10, 96, 0, 1], 443, CLUSTER_IP), ([0, 0, 0, 0], 30001, NODEPORT)]);
    w.process("kube-proxy");
    w.process("cilium-agent");

    let (code, r) = w.check();
    w.assert_recorded("conflict_when_cilium_balances_nodeports_in_bpf_on_the_nic_over_tcx");
    assert_eq!(code, 2, "{r:#}");
    let c = &r["dataplane"]["cilium"];
    assert_eq!((c["socket_lb"].as_bool(), c["bpf_nodeport"].as_bool()), (Some(false), Some(true)), "{r:#}");
    let ev = finding(&r, "service-routing.conflict")["evidence"].to_string();
    assert!(ev.contains("cil_from_netdev (tcx ingress") && ev.contains("on eth1"), "{ev}");
    assert_eq!(r["dataplane"]["kube_proxy"]["backend"], "legacy");
}

#[test]
fn kube_proxy_rules_without_a_process_are_stale() {
    let Some(w) = World::new("stale") else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");

    let (code, r) = w.check();
    w.assert_recorded("kube_proxy_rules_without_a_process_are_stale");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(ids(&r), vec!["kube-proxy.stale-rules"]);
    assert_eq!(r["dataplane"]["kube_proxy"]["stale"], true);
    assert_eq!(r["dataplane"]["kube_proxy"]["running"], false);
    assert!(finding(&r, "kube-proxy.stale-rules")["remedy"].as_str().unwrap().contains("kube-proxy --cleanup"));
}

#[test]
fn a_local_users_process_named_kube_proxy_does_not_make_stale_rules_live() {
    let Some(mut w) = World::new("stale-nobody") else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    // An unprivileged `sleep` renamed kube-proxy turned this into OK.
    w.process_of_nobody("kube-proxy");

    let (code, r) = w.check();
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(ids(&r), vec!["kube-proxy.stale-rules"]);
    assert_eq!(r["dataplane"]["kube_proxy"]["running"], false);
    let note = r["sources"]["processes"]["note"].as_str().unwrap_or_default();
    assert!(note.contains("kube-proxy (pid ") && note.contains("not root"), "{r:#}");
    // kube-proxy run by root still counts: the rules are live.
    w.process("kube-proxy");
    let (code, r) = w.check();
    assert_eq!(r["dataplane"]["kube_proxy"]["running"], true, "{r:#}");
    assert_ne!(code, 1, "{r:#}");
}

/// The snapshot's processes (`counted` or `ignored`) named `comm`.
fn snapshot_processes(w: &World, list: &str, comm: &str) -> Vec<serde_json::Value> {
    let (code, out, err) = w.run("snapshot");
    assert_eq!(code, 0, "{err}");
    let snap: serde_json::Value = serde_json::from_str(&out).unwrap();
    let all = snap["processes"]["data"][list].as_array().cloned().unwrap_or_default();
    all.into_iter().filter(|p| p["comm"] == comm).collect()
}

#[test]
fn a_root_process_named_kube_proxy_that_runs_sleep_or_sits_in_no_runtimes_cgroup_does_not_count() {
    let Some(mut w) = World::new("stale-impostor") else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    // Root's `sleep` started through a symlink named kube-proxy: the name is kube-proxy's, the executable is not.
    w.impostor("kube-proxy", Impostor::Renamed);

    let (code, r) = w.check();
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(ids(&r), vec!["kube-proxy.stale-rules"]);
    assert_eq!(r["dataplane"]["kube_proxy"]["running"], false, "{r:#}");
    let note = r["sources"]["processes"]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("kube-proxy (pid ") && note.contains("its executable is /") && note.contains("sleep"),
        "{r:#}"
    );
    let ignored = snapshot_processes(&w, "ignored", "kube-proxy");
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    assert_eq!(ignored[0]["uid"], 0);
    assert!(ignored[0]["origin"]["exe"].as_str().is_some_and(|e| e.ends_with("/sleep")), "{ignored:?}");
    assert_eq!(ignored[0]["origin"]["kind"]["kind"], "container", "{ignored:?}");

    // kube-proxy's own executable, in a cgroup no runtime or service manager makes.
    let mut w2 = World::new("stale-elsewhere").unwrap();
    w2.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    w2.impostor("kube-proxy", Impostor::Cgroup("tests/agents".into()));
    let (code, r) = w2.check();
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["dataplane"]["kube_proxy"]["running"], false, "{r:#}");
    let note = r["sources"]["processes"]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("its cgroup /") && note.contains("tests/agents is a cgroup of no container runtime"),
        "{r:#}"
    );
}

#[test]
fn agents_in_a_runtimes_container_or_a_systemd_unit_count_with_their_origin() {
    let Some(mut w) = World::new("agents-origin") else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    // As World::process starts them: kube-proxy in a containerd container, the kubelet in kubelet.service.
    w.process("kube-proxy");
    w.process("kubelet");

    let (_, r) = w.check();
    assert_eq!(r["dataplane"]["kube_proxy"]["running"], true, "{r:#}");
    assert!(r["sources"]["processes"]["note"].is_null(), "{r:#}");
    let kp = snapshot_processes(&w, "processes", "kube-proxy");
    assert_eq!(kp.len(), 1, "{kp:?}");
    let o = &kp[0]["origin"];
    assert!(o["exe"].as_str().is_some_and(|e| e.ends_with("/kube-proxy")), "{o}");
    assert_eq!(o["kind"], serde_json::json!({"kind": "container", "runtime": "containerd"}), "{o}");
    assert!(o["cgroup"].as_str().is_some_and(|c| c.contains("/kubepods.slice/kubepods-besteffort.slice/")), "{o}");
    assert!(o["unchecked"].is_null(), "{o}");
    let kubelet = snapshot_processes(&w, "processes", "kubelet");
    assert_eq!(kubelet.len(), 1, "{kubelet:?}");
    assert_eq!(
        kubelet[0]["origin"]["kind"],
        serde_json::json!({"kind": "unit", "manager": "systemd", "unit": "kubelet.service"}),
        "{kubelet:?}"
    );
}

#[test]
fn kube_proxy_alone_is_healthy_with_mode_backend_and_services() {
    let Some(mut w) = World::new("kp-only") else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.veth("eth0", "eth0peer");
    w.process("kube-proxy");

    let (code, r) = w.check();
    w.assert_recorded("kube_proxy_alone_is_healthy_with_mode_backend_and_services");
    assert_eq!(code, 0, "{r:#}");
    assert!(ids(&r).is_empty(), "{r:#}");
    let kp = &r["dataplane"]["kube_proxy"];
    assert_eq!(
        (kp["mode"].as_str(), kp["backend"].as_str(), kp["services"].as_u64()),
        (Some("iptables"), Some("nft"), Some(2))
    );
    assert_eq!(r["dataplane"]["cilium"]["present"], false);
}

#[test]
fn kube_proxy_nftables_mode_is_recognised() {
    let Some(mut w) = World::new("nft-mode") else { return };
    w.nft_fixture("kube-proxy-nftables-TestOverallNFTablesRules.nft");
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.process("kube-proxy");

    let (code, r) = w.check();
    w.assert_recorded("kube_proxy_nftables_mode_is_recognised");
    assert_eq!(code, 0, "{r:#}");
    let kp = &r["dataplane"]["kube_proxy"];
    assert_eq!(kp["mode"], "nftables");
    assert_eq!(kp["backend"], serde_json::Value::Null);
    // Five `service-<hash>-ns/name/proto/port` chains; `service-endpoints-check` is no Service (issue 23).
    assert_eq!(kp["services"], 5, "{r:#}");
}

#[test]
fn kube_proxy_ipvs_mode_with_iptables_mode_leftovers() {
    let Some(mut w) = World::new("ipvs") else { return };
    w.ns("ipset create KUBE-CLUSTER-IP hash:ip,port");
    w.iptables_restore("legacy", false, IPVS_CHAINS_WITH_LEFTOVERS);
    // No dummy module here: a veth carries kube-ipvs0's name; IPVS state comes from the configured ip_vs file.
    w.veth("kube-ipvs0", "ipvspeer");
    std::fs::write(w.dir.path().join("ip_vs"), IP_VS).unwrap();
    w.process("kube-proxy");

    let (code, r) = w.check();
    w.assert_recorded("kube_proxy_ipvs_mode_with_iptables_mode_leftovers");
    assert_eq!(code, 1, "{r:#}");
    // IPVS mode is deprecated (Kubernetes 1.35): an info finding with the way to nftables mode.
    let dep = finding(&r, "kube-proxy.ipvs-deprecated");
    assert_eq!(dep["severity"], "info");
    assert!(dep["remedy"].as_str().unwrap().contains("mode: nftables"), "{dep:#}");
    let kp = &r["dataplane"]["kube_proxy"];
    assert_eq!(
        (kp["mode"].as_str(), kp["backend"].as_str(), kp["services"].as_u64()),
        (Some("ipvs"), Some("legacy"), Some(3))
    );
    let f = finding(&r, "kube-proxy.stale-rules");
    assert!(f["summary"].as_str().unwrap().contains("earlier mode"), "{f:#}");
}

#[test]
fn kube_rules_in_both_backends_are_mixed_backends() {
    let Some(mut w) = World::new("mixed") else { return };
    w.iptables_fixture("legacy", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    w.iptables_fixture("nft", OVERALL);
    // The kubelet writes nft (its hint is there), and so does the node's `iptables` as update-alternatives links it.
    w.iptables_restore("nft", false, "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n");
    let dir = w.dir.path().to_path_buf();
    std::fs::create_dir(dir.join("alternatives")).unwrap();
    std::os::unix::fs::symlink(dir.join("alternatives/iptables"), dir.join("iptables")).unwrap();
    std::os::unix::fs::symlink(dir.join("iptables-nft"), dir.join("alternatives/iptables")).unwrap();
    std::os::unix::fs::symlink("xtables-nft-multi", dir.join("iptables-nft")).unwrap();
    w.process("kube-proxy");

    let (code, r) = w.check();
    w.assert_recorded("kube_rules_in_both_backends_are_mixed_backends");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(ids(&r), vec!["iptables.mixed-backends"]);
    assert_eq!(r["dataplane"]["kube_proxy"]["backend"], "legacy+nft");
    let ev = finding(&r, "iptables.mixed-backends")["evidence"].to_string();
    assert!(ev.contains("iptables-legacy ipv4") && ev.contains("iptables-nft ipv4"), "{ev}");
    // Both backends were read: the remedy says which holds what and which to keep, not "find out".
    let remedy = finding(&r, "iptables.mixed-backends")["remedy"].as_str().unwrap().to_string();
    for want in [
        "iptables-nft holds kube-proxy chains with 5 KUBE-SVC-* (ipv4)",
        "iptables-legacy holds kube-proxy chains with 2 KUBE-SVC-* (ipv4)",
        "the kubelet's KUBE-IPTABLES-HINT is in iptables-nft",
        "the node's `iptables` is iptables-nft (",
        "keep iptables-nft",
        "remove the KUBE-* chains from iptables-legacy",
    ] {
        assert!(remedy.contains(want), "{want:?} not in {remedy}");
    }
    assert!(!remedy.contains("find which backend"), "{remedy}");

    // The node's alternatives point at the other backend than the kubelet's: say so.
    let dir = w.dir.path().to_path_buf();
    std::fs::remove_file(dir.join("iptables-nft")).unwrap();
    std::os::unix::fs::symlink("xtables-legacy-multi", dir.join("iptables-nft")).unwrap();
    let (_, r) = w.check();
    let remedy = finding(&r, "iptables.mixed-backends")["remedy"].as_str().unwrap().to_string();
    assert!(remedy.contains("keep iptables-nft"), "the kubelet's hint decides: {remedy}");
    assert!(remedy.contains("update-alternatives --set iptables /usr/sbin/iptables-nft"), "{remedy}");
}

#[test]
fn nobody_programming_services_is_critical() {
    let Some(w) = World::new("missing") else { return };
    w.iptables_restore("nft", false, KUBELET_CHAINS);

    let (code, r) = w.check();
    w.assert_recorded("nobody_programming_services_is_critical");
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(ids(&r), vec!["service-routing.missing"]);
}

#[test]
fn a_failing_source_is_reported_while_the_others_still_report() {
    let Some(mut w) = World::new("src-failed") else { return };
    w.iptables_restore("legacy", false, KUBELET_CHAINS);
    w.iptables_fixture("nft", OVERALL);
    w.process("kube-proxy");
    // A legacy table over the configured size bound: the kernel reader refuses it before allocating.
    w.config_extra = "iptables_legacy_max_bytes = 64\n".into();

    let (code, r) = w.check();
    w.assert_recorded("a_failing_source_is_reported_while_the_others_still_report");
    assert_eq!(code, 3, "{r:#}");
    assert_eq!(r["sources"]["iptables-legacy"]["status"], "failed");
    let err = r["sources"]["iptables-legacy"]["error"].as_str().unwrap();
    assert!(err.contains("table \"filter\"") && err.contains("over the bound of 64 bytes"), "{err}");
    assert_eq!(ids(&r), vec!["source.failed"]);
    assert_eq!(r["sources"]["nftables"]["status"], "ok");
    assert_eq!(r["dataplane"]["kube_proxy"]["mode"], "iptables");
    assert_eq!(r["dataplane"]["kube_proxy"]["backend"], "nft");
    // The remedy follows the error: the key that raises the bound, not "run as root".
    assert_eq!(r["sources"]["iptables-legacy"]["failure"]["kind"], "over-size-bound", "{r:#}");
    let remedy = finding(&r, "source.failed")["remedy"].as_str().unwrap();
    assert!(remedy.contains("raise `iptables_legacy_max_bytes`") && !remedy.contains("root"), "{remedy}");
}

#[test]
fn a_remedy_follows_the_permission_error_and_is_printed_once_for_every_source_it_fits() {
    let Some(mut w) = World::new("src-perm") else { return };
    w.iptables_restore("legacy", false, KUBELET_CHAINS);
    w.iptables_fixture("nft", OVERALL);
    w.socket_lb();
    // Root without a single capability: the kernel refuses the rule dumps and the BPF listing with EPERM.
    w.wrapper = "setpriv --inh-caps -all --bounding-set -all -- ".into();

    let (code, r) = w.check();
    assert_eq!(code, 3, "{r:#}");
    for s in ["iptables-legacy", "nftables", "bpf"] {
        assert_eq!(r["sources"][s]["status"], "failed", "{s}: {r:#}");
        assert_eq!(r["sources"][s]["failure"]["kind"], "permission-denied", "{s}: {r:#}");
    }
    let remedy = finding(&r, "source.failed")["remedy"].as_str().unwrap();
    assert!(remedy.contains("iptables-legacy and nftables need CAP_NET_ADMIN; bpf needs CAP_SYS_ADMIN"), "{remedy}");

    let (code, text, err) = w.run("check");
    assert_eq!(code, 3, "{text}\n{err}");
    let first = text.lines().next().unwrap_or("");
    assert!(first.ends_with(": UNKNOWN (could not inspect: 3 sources failed)"), "exit 3 is no WARNING: {first}");
    assert_eq!(text.matches("  remedy: ").count(), 1, "one remedy for three sources failing alike:\n{text}");
    assert_eq!(text.matches("WARNING source.failed").count(), 3, "{text}");
    assert!(text.contains("bpf needs CAP_SYS_ADMIN"), "{text}");
}

#[test]
fn unknown_is_never_concluded_absent() {
    let Some(w) = World::new("unknown") else { return };
    w.iptables_fixture("legacy", OVERALL);
    let mut w = w;
    w.config_extra = "iptables_legacy_max_bytes = 64\n".into();

    let (code, r) = w.check();
    w.assert_recorded("unknown_is_never_concluded_absent");
    assert_eq!(code, 3, "{r:#}");
    assert_eq!(r["dataplane"]["kube_proxy"]["mode"], "unknown");
    assert_eq!(ids(&r), vec!["source.failed"], "no service-routing.missing from a failed source: {r:#}");
    assert!(finding(&r, "source.failed")["evidence"].to_string().contains("over the bound of 64 bytes"));
}

#[test]
fn a_snapshot_taken_on_the_node_gives_the_same_report_elsewhere() {
    let Some(mut w) = World::new("snapshot") else { return };
    w.iptables_fixture("nft", OVERALL);
    w.socket_lb();
    w.process("kube-proxy");
    w.process("cilium-agent");

    let (code, snap, err) = w.run("snapshot");
    assert_eq!(code, 0, "{err}");
    let (live_code, live) = w.check();
    w.assert_recorded("a_snapshot_taken_on_the_node_gives_the_same_report_elsewhere");
    let file = w.dir.path().join("node.json");
    std::fs::write(&file, &snap).unwrap();
    // Analysed outside the world, with no access to its namespace, BPF objects or processes.
    let out = std::process::Command::new(bin())
        .args(["check", "--output", "json", "--snapshot"])
        .arg(&file)
        .output()
        .unwrap();
    let offline: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(live_code));
    // `run` starts the world's processes afresh in a pid namespace of their own for each command, so their pids
    // may differ between the snapshot and the live check (the order they start in): compare without them.
    let no_pids = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(kp) = v.get_mut("kube_proxy") {
            kp["pids"] = serde_json::Value::Null;
        }
        let text = v.to_string();
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(i) = rest.find("pid ") {
            out.push_str(&rest[..i + 4]);
            rest = rest[i + 4..].trim_start_matches(|c: char| c.is_ascii_digit());
            out.push('N');
        }
        out.push_str(rest);
        out
    };
    assert_eq!(no_pids(&offline["dataplane"]), no_pids(&live["dataplane"]));
    assert_eq!(no_pids(&offline["findings"]), no_pids(&live["findings"]));
    assert_eq!(ids(&offline), vec!["service-routing.conflict"]);

    // --full adds the raw dumps for people to read; the analysis ignores them.
    let (code, full, err) = w.run("snapshot --full");
    assert_eq!(code, 0, "{err}");
    let full: serde_json::Value = serde_json::from_str(&full).unwrap();
    let dump = full["raw"]["iptables-nft-save"].as_str().unwrap();
    assert!(dump.contains(":KUBE-SVC-") && dump.contains("*nat"), "{dump}");
    assert!(serde_json::from_str::<serde_json::Value>(&snap).unwrap().get("raw").is_none());
}

#[test]
fn the_unit_capabilities_are_the_ones_the_sources_need() {
    let Some(mut w) = World::new("caps") else { return };
    if !harness::tool("setpriv") {
        return;
    }
    w.iptables_fixture("legacy", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    w.socket_lb();
    // An agent with every capability (as kube-proxy's container and the kubelet have): its executable is read.
    w.process("kube-proxy");
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/routewarden.service")).unwrap();
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap()
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect();
    let check = |w: &mut World, caps: &[String]| -> serde_json::Value {
        w.wrapper = format!(
            "setpriv --inh-caps -all --bounding-set -all,{} -- ",
            caps.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(",")
        );
        w.check().1
    };
    let failed = |w: &mut World, caps: &[String]| -> Vec<String> {
        let r = check(w, caps);
        r["sources"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v["status"] == "failed")
            .map(|(k, _)| k.clone())
            .collect()
    };
    assert!(failed(&mut w, &caps).is_empty(), "the unit's capabilities {caps:?} are not enough");
    // The legacy tables are read with IPT_SO_GET_* on a UDP socket, which needs NET_ADMIN but not NET_RAW (the
    // unit keeps NET_RAW for iptables-legacy-save, which `snapshot --full` runs).
    for (cap, sources) in
        [("net_admin", vec!["iptables-legacy", "nftables"]), ("net_raw", vec![]), ("sys_admin", vec!["bpf"])]
    {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != cap).cloned().collect();
        assert_eq!(failed(&mut w, &fewer), sources, "without {cap}");
    }
    // SYS_PTRACE: without it the agents' executables cannot be read, and the processes source says so.
    let r = check(&mut w, &caps);
    assert!(r["sources"]["processes"]["note"].is_null(), "with the unit's capabilities: {:#}", r["sources"]);
    let fewer: Vec<String> = caps.iter().filter(|c| *c != "sys_ptrace").cloned().collect();
    let r = check(&mut w, &fewer);
    let note = r["sources"]["processes"]["note"].as_str().unwrap_or_default();
    assert!(note.contains("kube-proxy (pid ") && note.contains("its executable cannot be read"), "{:#}", r["sources"]);
    assert_eq!(r["dataplane"]["kube_proxy"]["running"], true, "an unread executable does not drop it: {r:#}");
}

#[test]
fn a_hanging_tool_is_killed_at_the_timeout_and_reported() {
    let Some(mut w) = World::new("src-timeout") else { return };
    w.iptables_restore("legacy", false, KUBELET_CHAINS);
    let hang = w.dir.path().join("hanging-save");
    std::fs::write(&hang, "#!/bin/sh\nexec sleep 30\n").unwrap();
    harness::sh(&format!("chmod +x {}", hang.display()));
    w.config_extra = format!("command_timeout_secs = 1\n[binaries]\niptables_legacy_save = \"{}\"\n", hang.display());
    // `check` runs no tool (legacy tables come from the kernel); `snapshot --full` runs the save binaries.
    let start = std::time::Instant::now();
    let (code, out, err) = w.run("snapshot --full");
    assert!(start.elapsed() < std::time::Duration::from_secs(10), "snapshot waited for the hanging tool");
    assert_eq!(code, 0, "{err}");
    let snap: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(snap["iptables_legacy"]["status"], "ok", "{:#}", snap["iptables_legacy"]);
    let dump = snap["raw"]["iptables-legacy-save"].as_str().unwrap();
    assert!(
        dump.starts_with("error:") && dump.contains("hanging-save") && dump.contains("did not finish within 1s"),
        "{dump}"
    );
}

/// Answers `count` requests on a unix socket with `body` as JSON, like the Cilium agent's API (a `check` and a
/// `snapshot` each ask once).
fn cilium_agent(path: &std::path::Path, body: &'static str, count: usize) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    let _ = std::fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(count) {
            let mut s = s.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = write!(s, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}");
        }
    })
}

#[test]
fn the_cilium_agents_configured_kube_proxy_replacement_counts() {
    let Some(mut w) = World::new("agent-kpr") else { return };
    w.iptables_fixture("nft", OVERALL);
    w.veth("cilium_host", "cilium_net");
    w.process("kube-proxy");
    let sock = w.dir.path().join("cilium.sock");
    w.config_extra = format!("cilium_socket = \"{}\"\n", sock.display());

    let on = r#"{"cilium":{"state":"Ok"},"kube-proxy-replacement":{"mode":"True","devices":["eth0"],
        "features":{"nodePort":{"enabled":true,"mode":"SNAT"},"socketLB":{"enabled":true}}}}"#;
    let agent = cilium_agent(&sock, on, 2);
    let (code, r) = w.check();
    w.assert_recorded("the_cilium_agents_configured_kube_proxy_replacement_counts-kpr-true");
    agent.join().unwrap();
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(r["dataplane"]["cilium"]["configured_kpr"], "True");
    assert_eq!(r["dataplane"]["cilium"]["socket_lb"], false, "no socket-LB attached in this world");
    let f = finding(&r, "service-routing.conflict");
    assert!(f["evidence"].to_string().contains("cilium-agent API: kube-proxy replacement True"), "{f:#}");

    let off = r#"{"kube-proxy-replacement":{"mode":"False","features":{"nodePort":{"enabled":false},"socketLB":{"enabled":false}}}}"#;
    let agent = cilium_agent(&sock, off, 2);
    let (code, r) = w.check();
    w.assert_recorded("the_cilium_agents_configured_kube_proxy_replacement_counts-kpr-false");
    agent.join().unwrap();
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(ids(&r), vec!["service-routing.overlap"]);

    // An agent that does not answer is not a failure.
    std::fs::remove_file(&sock).unwrap();
    let (_, r) = w.check();
    w.assert_recorded("the_cilium_agents_configured_kube_proxy_replacement_counts-no-agent");
    assert_eq!(r["sources"]["cilium-agent"]["status"], "ok");
    assert_eq!(r["dataplane"]["cilium"]["configured_kpr"], serde_json::Value::Null);
}

// ---- The other Service proxies (docs/DATAPLANE-FACTS.md section 10): one world per decision. ----

/// Calico's own iptables chains, present in every Calico mode (iptables, nftables, eBPF): never a Service proxy.
const CALICO_CHAINS: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:cali-INPUT - [0:0]
:cali-FORWARD - [0:0]
:cali-OUTPUT - [0:0]
:cali-wl-to-host - [0:0]
-I INPUT 1 -m comment --comment \"cali:Cz_u1IQiXIMmKD4c\" -j cali-INPUT
-I FORWARD 1 -m comment --comment \"cali:wUHhoiAYhphO9Mso\" -j cali-FORWARD
-I OUTPUT 1 -m comment --comment \"cali:tVnHkvAo15HuiPy0\" -j cali-OUTPUT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:cali-PREROUTING - [0:0]
:cali-POSTROUTING - [0:0]
:cali-nat-outgoing - [0:0]
-I PREROUTING 1 -m comment --comment \"cali:6gwbT8clXdHdC1b1\" -j cali-PREROUTING
-I POSTROUTING 1 -m comment --comment \"cali:O3lYWMrLQYEMJtB5\" -j cali-POSTROUTING
COMMIT
";

/// kube-proxy IPVS mode's own chains (docs/DATAPLANE-FACTS.md 2.2), without leftovers.
const IPVS_CHAINS: &str = "*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-LOAD-BALANCER - [0:0]
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A KUBE-SERVICES -m comment --comment \"Kubernetes service cluster ip + port for masquerade purpose\" -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
COMMIT
*filter
:INPUT ACCEPT [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-IPVS-FILTER - [0:0]
-A INPUT -m comment --comment \"kubernetes health check rules\" -j KUBE-NODE-PORT
-A INPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-FILTER
COMMIT
";

/// kube-router's service proxy chains (pkg/controllers/proxy/network_services_controller.go) and its network
/// policy chains (KUBE-ROUTER-INPUT/FORWARD/OUTPUT: policy, not the proxy).
const KUBE_ROUTER_CHAINS: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-ROUTER-SERVICES - [0:0]
:KUBE-ROUTER-INPUT - [0:0]
:KUBE-ROUTER-FORWARD - [0:0]
:KUBE-ROUTER-OUTPUT - [0:0]
-I INPUT 1 -m comment --comment \"handle traffic to IPVS service IPs in custom chain\" -m set --match-set kube-router-svip dst -j KUBE-ROUTER-SERVICES
-A INPUT -m comment --comment \"kube-router netpol\" -j KUBE-ROUTER-INPUT
-A FORWARD -m comment --comment \"kube-router netpol\" -j KUBE-ROUTER-FORWARD
-A OUTPUT -m comment --comment \"kube-router netpol\" -j KUBE-ROUTER-OUTPUT
-A KUBE-ROUTER-SERVICES -m comment --comment \"allow input traffic to ipvs services\" -m set --match-set kube-router-svip-prt dst,dst -j ACCEPT
COMMIT
*nat
:POSTROUTING ACCEPT [0:0]
:KUBE-ROUTER-HAIRPIN - [0:0]
-A POSTROUTING -m comment --comment \"kube-router hairpin chain\" -j KUBE-ROUTER-HAIRPIN
COMMIT
";

/// Three IPVS virtual servers for 10.96.0.1:443/TCP and 10.96.0.10:53 (TCP and UDP).
const IP_VS_CLUSTER_IPS: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A600001:01BB rr
  -> C0A80002:192B      Masq    1      0          0
TCP  0A60000A:0035 rr
  -> 0AF40001:0035      Masq    1      0          0
UDP  0A60000A:0035 rr
  -> 0AF40001:0035      Masq    1      0          0
";

/// Calico's eBPF dataplane as Felix leaves it: `cali_tc_preamble` on the NIC and on a workload device over tcx
/// (the default attach mode of Calico 3.31-3.32), connect-time LB on the cgroup, NAT frontends pinned (a
/// ClusterIP with 2 backends, DNS over UDP with 2, a NodePort with 1), its cali-* chains and kubelet's chains.
fn calico_ebpf_world(w: &mut World) {
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.iptables_restore("nft", false, CALICO_CHAINS);
    w.veth("eth0", "eth0peer");
    w.veth("cali1a2b3c4d5e6", "cali1a2bpeer");
    w.tcx_prog("calico", "cali_tc_preamble", "eth0");
    w.tcx_prog("calico", "cali_tc_preamble", "cali1a2b3c4d5e6");
    w.calico_ctlb();
    w.calico_nat_map(&[([10, 96, 0, 1], 443, 6, 2), ([10, 96, 0, 10], 53, 17, 2), ([255, 255, 255, 255], 30080, 6, 1)]);
    w.process("calico-node");
}

fn proxies(r: &serde_json::Value) -> Vec<(String, String)> {
    r["dataplane"]["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["proxy"].as_str().unwrap().to_string(), p["mode"].as_str().unwrap().to_string()))
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn a_local_users_process_named_calico_node_does_not_hide_that_the_agent_is_down() {
    let Some(mut w) = World::new("calico-nobody") else { return };
    calico_ebpf_world(&mut w);
    // Calico's programs stay attached, calico-node is gone; an unprivileged `sleep` named calico-node hid that.
    w.no_process("calico-node");
    w.process_of_nobody("calico-node");

    let (code, r) = w.check();
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(ids(&r), vec!["service-proxy.agent-down"], "{r:#}");
    assert_eq!(r["dataplane"]["proxies"][0]["agent_running"], false, "{r:#}");
    let note = r["sources"]["processes"]["note"].as_str().unwrap_or_default();
    assert!(note.contains("calico-node (pid ") && note.contains("run by uid 65534"), "{r:#}");
}

#[test]
fn calico_ebpf_alone_is_healthy() {
    let Some(mut w) = World::new("calico-ebpf") else { return };
    calico_ebpf_world(&mut w);

    let (code, r) = w.check();
    let (_, text, _) = w.run("check");
    w.assert_recorded("calico_ebpf_alone_is_healthy");
    assert_eq!(code, 0, "{r:#}");
    assert!(ids(&r).is_empty(), "Calico's eBPF dataplane balances Services: {r:#}");
    assert_eq!(proxies(&r), vec![pair("calico-ebpf", "ebpf")]);
    let p = &r["dataplane"]["proxies"][0];
    assert_eq!(p["services"], 3, "{p:#}");
    assert_eq!(p["agent_running"], true);
    assert_eq!(p["balances"], serde_json::json!(["cluster-ip-from-pods", "cluster-ip-from-host", "external"]));
    let ev = p["evidence"].to_string();
    assert!(
        ev.contains("cali_tc_preamble (tcx ingress") && ev.contains("on eth0") && ev.contains("calico_connect_v4"),
        "{ev}"
    );
    assert!(ev.contains("cali_v4_nat_fe3: 3 NAT frontends (1 NodePort, 3 with backends)"), "{ev}");
    assert!(text.contains("proxy:      calico-ebpf (ebpf mode, 3 services"), "{text}");
}

#[test]
fn conflict_when_kube_proxy_runs_next_to_calico_ebpf() {
    let Some(mut w) = World::new("calico-ebpf-kp") else { return };
    calico_ebpf_world(&mut w);
    // Felix has just deleted kube-proxy's chains (BPFKubeProxyIptablesCleanupEnabled): only the process shows;
    // calico-node holds kube-proxy's health port (calico#10748).
    w.process("kube-proxy");
    w.listener("calico-node", 10256);

    let before = w.state();
    let (code, r) = w.check();
    w.assert_recorded("conflict_when_kube_proxy_runs_next_to_calico_ebpf");
    assert_eq!(w.state(), before, "routewarden changed the node's state");
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(ids(&r), vec!["service-routing.conflict"]);
    let f = finding(&r, "service-routing.conflict");
    assert_eq!(f["severity"], "critical");
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.contains("kube-proxy (runs, with no Service rules right now)")
            && summary.contains("calico-ebpf (ebpf mode"),
        "{summary}"
    );
    let remedy = f["remedy"].as_str().unwrap();
    assert!(
        remedy.contains("BPFKubeProxyIptablesCleanupEnabled") && remedy.contains("delete ds kube-proxy"),
        "{remedy}"
    );
    assert_eq!(
        r["dataplane"]["conflicts"],
        serde_json::json!([{"a": "kube-proxy", "b": "calico-ebpf", "severity": "critical"}])
    );
    let ev = f["evidence"].to_string();
    assert!(ev.contains(":10256 (kube-proxy's health port) is held by calico-node (pid"), "{ev}");
}

/// Felix's BPFKubeProxyIptablesCleanupEnabled=false (our own remedy when kube-proxy must stay): kube-proxy's rules
/// stay next to Calico's programs, shadowed rather than fought over (DATAPLANE-FACTS section 10): a warning.
#[test]
fn kube_proxy_rules_kept_next_to_calico_ebpf_are_a_warning() {
    let Some(mut w) = World::new("calico-ebpf-kp-rules") else { return };
    calico_ebpf_world(&mut w);
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    w.process("kube-proxy");

    let (code, r) = w.check();
    w.assert_recorded("kube_proxy_rules_kept_next_to_calico_ebpf_are_a_warning");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(ids(&r), vec!["service-routing.conflict"]);
    let f = finding(&r, "service-routing.conflict");
    assert_eq!(f["severity"], "warning", "{f:#}");
    assert!(f["summary"].as_str().unwrap().contains("kube-proxy (iptables mode"), "{f:#}");
    assert_eq!(proxies(&r), vec![pair("kube-proxy", "iptables"), pair("calico-ebpf", "ebpf")]);
}

#[test]
fn calico_iptables_mode_next_to_kube_proxy_is_healthy() {
    let Some(mut w) = World::new("calico-iptables") else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.iptables_restore("nft", false, CALICO_CHAINS);
    w.ns("nft add table ip calico && nft add chain ip calico filter-FORWARD");
    w.veth("eth0", "eth0peer");
    w.veth("cali1a2b3c4d5e6", "cali1a2bpeer");
    w.process("kube-proxy");
    w.process("calico-node");

    let (code, r) = w.check();
    w.assert_recorded("calico_iptables_mode_next_to_kube_proxy_is_healthy");
    assert_eq!(code, 0, "{r:#}");
    assert!(ids(&r).is_empty(), "cali-* chains and table ip calico program no Services: {r:#}");
    assert_eq!(proxies(&r), vec![pair("kube-proxy", "iptables")]);
}

#[test]
fn antrea_proxy_all_alone_is_healthy() {
    let Some(mut w) = World::new("antrea-proxyall") else { return };
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.veth("antrea-gw0", "antrea-gw0peer");
    // pkg/agent/route/route_linux.go: the Service CIDR via the virtual Service IP, with a permanent neighbour, and
    // the NodePort DNAT to 169.254.0.252.
    w.ns("ip addr add 10.244.0.1/24 dev antrea-gw0 && \
         ip neigh add 169.254.0.253 lladdr aa:bb:cc:dd:ee:ff dev antrea-gw0 nud permanent && \
         ip route add 10.96.0.0/12 via 169.254.0.253 dev antrea-gw0 onlink && \
         ipset create ANTREA-NODEPORT-IP hash:ip,port && ipset create ANTREA-EXTERNAL-IP hash:ip");
    w.iptables_restore(
        "nft",
        false,
        "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:ANTREA-PREROUTING - [0:0]\n\
         :ANTREA-OUTPUT - [0:0]\n:ANTREA-POSTROUTING - [0:0]\n\
         -A PREROUTING -m comment --comment \"Antrea: jump to Antrea prerouting rules\" -j ANTREA-PREROUTING\n\
         -A OUTPUT -m comment --comment \"Antrea: jump to Antrea output rules\" -j ANTREA-OUTPUT\n\
         -A POSTROUTING -m comment --comment \"Antrea: jump to Antrea postrouting rules\" -j ANTREA-POSTROUTING\n\
         -A ANTREA-PREROUTING -m comment --comment \"Antrea: DNAT external to NodePort packets\" -m set --match-set ANTREA-NODEPORT-IP dst,dst -j DNAT --to-destination 169.254.0.252\n\
         -A ANTREA-OUTPUT -m comment --comment \"Antrea: DNAT local to NodePort packets\" -m set --match-set ANTREA-NODEPORT-IP dst,dst -j DNAT --to-destination 169.254.0.252\n\
         COMMIT\n",
    );
    w.process("antrea-agent");
    // A route and a permanent neighbour elsewhere, which the rules do not read: not kept in the snapshot.
    w.veth("eth0", "eth0peer");
    w.ns("ip addr add 192.0.2.1/24 dev eth0 && ip route add 198.51.100.0/24 via 192.0.2.254 dev eth0 && \
         ip neigh add 192.0.2.254 lladdr 02:00:00:00:00:01 dev eth0 nud permanent");

    let (_, snapshot, _) = w.run("snapshot");
    assert!(snapshot.contains("169.254.0.253"), "{snapshot}");
    assert!(!snapshot.contains("198.51.100.0") && !snapshot.contains("192.0.2.254"), "{snapshot}");
    let (code, r) = w.check();
    w.assert_recorded("antrea_proxy_all_alone_is_healthy");
    assert_eq!(code, 0, "{r:#}");
    assert!(ids(&r).is_empty(), "{r:#}");
    assert_eq!(proxies(&r), vec![pair("antrea", "proxy-all")]);
    let ev = r["dataplane"]["proxies"][0]["evidence"].to_string();
    assert!(ev.contains("route 10.96.0.0/12 via 169.254.0.253 dev antrea-gw0"), "{ev}");
    assert!(ev.contains("permanent neighbour 169.254.0.253 on antrea-gw0"), "{ev}");
}

#[test]
fn antrea_proxy_without_proxy_all_next_to_kube_proxy_is_the_supported_overlap() {
    let Some(mut w) = World::new("antrea-overlap") else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.iptables_restore(
        "nft",
        false,
        "*nat\n:POSTROUTING ACCEPT [0:0]\n:ANTREA-POSTROUTING - [0:0]\n\
         -A POSTROUTING -m comment --comment \"Antrea: jump to Antrea postrouting rules\" -j ANTREA-POSTROUTING\nCOMMIT\n",
    );
    w.veth("antrea-gw0", "antrea-gw0peer");
    w.ns("ip addr add 10.244.0.1/24 dev antrea-gw0");
    w.process("kube-proxy");
    w.process("antrea-agent");

    let (code, r) = w.check();
    w.assert_recorded("antrea_proxy_without_proxy_all_next_to_kube_proxy_is_the_supported_overlap");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(ids(&r), vec!["service-routing.overlap"]);
    let f = finding(&r, "service-routing.overlap");
    assert_eq!(f["severity"], "info");
    assert!(f["summary"].as_str().unwrap().contains("antrea (antrea-proxy mode)"), "{f:#}");
    assert_eq!(proxies(&r), vec![pair("kube-proxy", "iptables"), pair("antrea", "antrea-proxy")]);
    assert_eq!(r["dataplane"]["conflicts"], serde_json::json!([]));
}

#[test]
fn ovn_kubernetes_alone_is_healthy() {
    let Some(mut w) = World::new("ovn-k") else { return };
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    // go-controller/pkg/node/gateway_iptables.go: the Service chains, and an egress chain that is no proxy.
    w.iptables_restore(
        "nft",
        false,
        "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:OVN-KUBE-NODEPORT - [0:0]\n\
         :OVN-KUBE-EXTERNALIP - [0:0]\n:OVN-KUBE-ETP - [0:0]\n:OVN-KUBE-ITP - [0:0]\n:OVN-KUBE-SNAT-MGMTPORT - [0:0]\n\
         :OVN-KUBE-EGRESS-SVC - [0:0]\n\
         -A PREROUTING -j OVN-KUBE-ETP\n-A PREROUTING -j OVN-KUBE-EXTERNALIP\n-A PREROUTING -j OVN-KUBE-NODEPORT\n\
         -A OUTPUT -j OVN-KUBE-EXTERNALIP\n-A OUTPUT -j OVN-KUBE-NODEPORT\n-A OUTPUT -j OVN-KUBE-ITP\n\
         -A POSTROUTING -o ovn-k8s-mp0 -j OVN-KUBE-SNAT-MGMTPORT\n-A POSTROUTING -j OVN-KUBE-EGRESS-SVC\n\
         -A OVN-KUBE-NODEPORT -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j DNAT --to-destination 10.96.0.20:80\n\
         COMMIT\n",
    );
    w.veth("ovn-k8s-mp0", "ovnmp0peer");
    w.veth("eth0", "eth0peer");
    w.process("ovnkube");

    let (code, r) = w.check();
    w.assert_recorded("ovn_kubernetes_alone_is_healthy");
    assert_eq!(code, 0, "{r:#}");
    assert!(ids(&r).is_empty(), "{r:#}");
    assert_eq!(proxies(&r), vec![pair("ovn-kubernetes", "ovn")]);
    let ev = r["dataplane"]["proxies"][0]["evidence"].to_string();
    assert!(ev.contains("OVN-KUBE-NODEPORT") && !ev.contains("OVN-KUBE-EGRESS-SVC"), "{ev}");
}

/// kube-router's service proxy: IPVS virtual servers whose VIPs sit on kube-dummy-if (a veth here: the dummy
/// module is not available on every test machine), its ipsets and chains.
fn kube_router_world(w: &mut World) {
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.ns("ipset create kube-router-svip hash:ip && ipset create kube-router-svip-prt hash:ip,port && \
         ipset create kube-router-local-ips hash:ip");
    w.iptables_restore("nft", false, KUBE_ROUTER_CHAINS);
    w.veth("kube-dummy-if", "kubedummypeer");
    w.ns("ip addr add 10.96.0.1/32 dev kube-dummy-if && ip addr add 10.96.0.10/32 dev kube-dummy-if");
    w.ip_vs(IP_VS_CLUSTER_IPS);
    w.process("kube-router");
}

#[test]
fn kube_router_alone_is_healthy() {
    let Some(mut w) = World::new("kube-router") else { return };
    kube_router_world(&mut w);

    let (code, r) = w.check();
    w.assert_recorded("kube_router_alone_is_healthy");
    assert_eq!(code, 0, "{r:#}");
    assert!(ids(&r).is_empty(), "{r:#}");
    assert_eq!(proxies(&r), vec![pair("kube-router", "ipvs")]);
    assert_eq!(r["dataplane"]["proxies"][0]["services"], 3);
    assert_eq!(r["dataplane"]["kube_proxy"]["mode"], "none", "kube-router's IPVS is not kube-proxy's: {r:#}");
    let ev = r["dataplane"]["proxies"][0]["evidence"].to_string();
    assert!(ev.contains("KUBE-ROUTER-SERVICES") && !ev.contains("KUBE-ROUTER-INPUT"), "{ev}");
}

/// kube-router 2.x writes network policy to nftables (tables `kube-router-filter-ipv4`/`-ipv6`, kops#18708): real
/// tables with its chains next to its IPVS service proxy are neither a second proxy nor kube-proxy's leftovers.
#[test]
fn kube_router_2_policy_tables_in_nftables_are_no_service_routing() {
    let Some(mut w) = World::new("kube-router-nft") else { return };
    kube_router_world(&mut w);
    for (family, name) in [("ip", "kube-router-filter-ipv4"), ("ip6", "kube-router-filter-ipv6")] {
        w.ns(&format!(
            "nft add table {family} {name} && nft add chain {family} {name} INPUT '{{ type filter hook input priority 0; }}' \
             && nft add chain {family} {name} FORWARD '{{ type filter hook forward priority 0; }}' \
             && nft add chain {family} {name} OUTPUT '{{ type filter hook output priority 0; }}'"
        ));
    }

    let (code, r) = w.check();
    assert_eq!(code, 0, "{r:#}");
    assert!(ids(&r).is_empty(), "{r:#}");
    assert_eq!(proxies(&r), vec![pair("kube-router", "ipvs")]);
    assert_eq!(r["dataplane"]["kube_proxy"]["mode"], "none", "{r:#}");
}

#[test]
fn conflict_when_kube_router_runs_next_to_kube_proxy_ipvs() {
    let Some(mut w) = World::new("kube-router-kp") else { return };
    kube_router_world(&mut w);
    w.ns("ipset create KUBE-CLUSTER-IP hash:ip,port");
    w.iptables_restore("legacy", false, IPVS_CHAINS);
    // The same ClusterIPs on kube-ipvs0 (a veth here, as for kube-dummy-if).
    w.veth("kube-ipvs0", "ipvspeer");
    w.ns("ip addr add 10.96.0.1/32 dev kube-ipvs0 && ip addr add 10.96.0.10/32 dev kube-ipvs0");
    w.process("kube-proxy");

    let before = w.state();
    let (code, r) = w.check();
    w.assert_recorded("conflict_when_kube_router_runs_next_to_kube_proxy_ipvs");
    assert_eq!(w.state(), before, "routewarden changed the node's state");
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(ids(&r), vec!["kube-proxy.ipvs-deprecated", "service-routing.conflict"]);
    let f = finding(&r, "service-routing.conflict");
    assert_eq!(f["severity"], "critical");
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.contains("kube-proxy (ipvs mode, 3 services)")
            && summary.contains("kube-router (ipvs mode, 3 services)"),
        "{summary}"
    );
    assert!(f["remedy"].as_str().unwrap().contains("--run-service-proxy=false"));
    assert_eq!(
        r["dataplane"]["conflicts"],
        serde_json::json!([{"a": "kube-proxy", "b": "kube-router", "severity": "critical"}])
    );
}

/// kube-router kept as CNI/BGP agent with --run-service-proxy=false next to kube-proxy: kube-dummy-if (with an
/// old address) and its service chains are left, but no IPVS virtual server uses them. No second proxy.
#[test]
fn kube_router_leftovers_next_to_kube_proxy_are_no_proxy() {
    let Some(mut w) = World::new("kube-router-left") else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.ns("ipset create kube-router-svip hash:ip && ipset create kube-router-svip-prt hash:ip,port && \
         ipset create kube-router-local-ips hash:ip");
    w.iptables_restore("nft", false, KUBE_ROUTER_CHAINS);
    w.veth("kube-dummy-if", "kubedummypeer");
    w.ns("ip addr add 10.96.0.1/32 dev kube-dummy-if");
    w.ip_vs("IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n");
    w.process("kube-proxy");
    w.process("kube-router");

    let (code, r) = w.check();
    w.assert_recorded("kube_router_leftovers_next_to_kube_proxy_are_no_proxy");
    assert_eq!(code, 0, "{r:#}");
    assert!(ids(&r).is_empty(), "{r:#}");
    assert_eq!(proxies(&r), vec![pair("kube-proxy", "iptables")]);
}

#[test]
fn a_machine_without_a_kubelet_is_not_a_kubernetes_node_yet() {
    let Some(mut w) = World::new("no-kubelet") else { return };
    w.no_kubelet();
    w.veth("eth0", "eth0peer");

    let (code, r) = w.check();
    let (_, text, _) = w.run("check");
    w.assert_recorded("a_machine_without_a_kubelet_is_not_a_kubernetes_node_yet");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["verdict"], "ok");
    assert_eq!(ids(&r), vec!["service-routing.missing"]);
    let f = finding(&r, "service-routing.missing");
    assert_eq!(f["severity"], "info");
    assert!(f["summary"].as_str().unwrap().starts_with("not a Kubernetes node (yet)"), "{f:#}");
    assert!(text.contains("INFO service-routing.missing: not a Kubernetes node (yet)"), "{text}");

    // A local user's process named `kubelet` does not make it a node (it paged CRITICAL): still info, and said.
    w.process_of_nobody("kubelet");
    let (code, r) = w.check();
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(finding(&r, "service-routing.missing")["severity"], "info");
    let note = r["sources"]["processes"]["note"].as_str().unwrap_or_default();
    assert!(note.contains("kubelet (pid ") && note.contains("run by uid 65534, not root"), "{r:#}");

    // The same machine with a kubelet process (and still no configuration file) is a node: it pages.
    w.process("kubelet");
    let (code, r) = w.check();
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(finding(&r, "service-routing.missing")["severity"], "critical");
}

#[test]
fn stale_calico_pins_with_nothing_attached_are_no_proxy() {
    let Some(mut w) = World::new("calico-stale") else { return };
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.iptables_restore("nft", false, CALICO_CHAINS);
    w.veth("eth0", "eth0peer");
    // BPF mode was switched off: the NAT map is still pinned, its programs are loaded nowhere or unattached.
    w.calico_nat_map(&[([10, 96, 0, 1], 443, 6, 2)]);
    w.calico_unattached();
    w.process("calico-node");

    let (code, r) = w.check();
    w.assert_recorded("stale_calico_pins_with_nothing_attached_are_no_proxy");
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(ids(&r), vec!["service-routing.missing"]);
    assert_eq!(r["dataplane"]["proxies"], serde_json::json!([]));
    let ev = finding(&r, "service-routing.missing")["evidence"].to_string();
    assert!(ev.contains("cali_v4_nat_fe3: 1 NAT frontends") && ev.contains("stale pins, not a proxy"), "{ev}");
}

/// LoxiLB as its loader leaves a node (docs/DATAPLANE-FACTS.md section 11.1): `tc_packet_func_fast` (section
/// `tc_packet_hook0`) on tc ingress of the interface it manages and of its own TAP `llb0`, `xdp_packet_func` in
/// generic XDP on `llb0`, and the `loxilb` process.
fn loxilb_world(w: &mut World) {
    w.iptables_restore("nft", false, KUBELET_CHAINS);
    w.veth("eth0", "eth0peer");
    w.ns("ip tuntap add llb0 mode tap && ip link set llb0 up");
    w.tc_sec("loxilb", "tc_packet_hook0", "eth0", "ingress");
    w.tc_sec("loxilb", "tc_packet_hook0", "llb0", "ingress");
    w.xdp_sec("loxilb", "xdp_packet_hook", "llb0");
    w.process("loxilb");
}

/// LoxiLB alone on a Kubernetes node: it does not replace kube-proxy by itself (DATAPLANE-FACTS section 11.1), so
/// ClusterIP traffic goes nowhere: partial, not an all-clear.
#[test]
fn loxilb_alone_on_a_node_is_partial() {
    let Some(mut w) = World::new("loxilb") else { return };
    loxilb_world(&mut w);

    let before = w.state();
    let (code, r) = w.check();
    let (_, text, _) = w.run("check");
    w.assert_recorded("loxilb_alone_on_a_node_is_partial");
    assert_eq!(w.state(), before, "routewarden changed the node's state");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(ids(&r), vec!["service-routing.partial"], "{r:#}");
    assert!(finding(&r, "service-routing.partial")["remedy"].as_str().unwrap().contains("--ipvs-compat"), "{r:#}");
    assert_eq!(proxies(&r), vec![pair("loxilb", "ebpf")]);
    let p = &r["dataplane"]["proxies"][0];
    assert_eq!(p["agent_running"], true, "{p:#}");
    assert_eq!(p["balances"], serde_json::json!(["external"]), "llb0 is LoxiLB's own TAP: {p:#}");
    let ev = p["evidence"].to_string();
    assert!(
        ev.contains("tc_packet_func_ (tc ingress") && ev.contains("on eth0") && ev.contains("xdp_packet_func (xdp"),
        "{ev}"
    );
    assert!(ev.contains("loxilb process: pid"), "{ev}");
    assert!(text.contains("proxy:      loxilb (ebpf mode"), "{text}");
}

/// LoxiLB on a machine that is only a load balancer (no kubelet, as its external mode runs it): healthy.
#[test]
fn loxilb_alone_on_a_load_balancer_machine_is_healthy() {
    let Some(mut w) = World::new("loxilb-lb") else { return };
    loxilb_world(&mut w);
    w.no_kubelet();

    let (code, r) = w.check();
    w.assert_recorded("loxilb_alone_on_a_load_balancer_machine_is_healthy");
    assert_eq!(code, 0, "{r:#}");
    assert!(ids(&r).is_empty(), "{r:#}");
    assert_eq!(proxies(&r), vec![pair("loxilb", "ebpf")]);
}

/// LoxiLB's service-proxy mode runs next to kube-proxy in IPVS mode and imports its IPVS services (--ipvs-compat,
/// loxilbdocs service-proxy-flannel.md): the supported overlap, never a conflict.
#[test]
fn loxilb_next_to_kube_proxy_ipvs_is_the_supported_overlap() {
    let Some(mut w) = World::new("loxilb-kp-ipvs") else { return };
    loxilb_world(&mut w);
    w.ns("ipset create KUBE-CLUSTER-IP hash:ip,port");
    w.iptables_restore("legacy", false, IPVS_CHAINS);
    w.veth("kube-ipvs0", "ipvspeer");
    w.ns("ip addr add 10.96.0.1/32 dev kube-ipvs0 && ip addr add 10.96.0.10/32 dev kube-ipvs0");
    w.ip_vs(IP_VS_CLUSTER_IPS);
    w.process("kube-proxy");

    let (code, r) = w.check();
    w.assert_recorded("loxilb_next_to_kube_proxy_ipvs_is_the_supported_overlap");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(ids(&r), vec!["kube-proxy.ipvs-deprecated", "service-routing.overlap"], "{r:#}");
    let f = finding(&r, "service-routing.overlap");
    assert_eq!(f["severity"], "info");
    let summary = f["summary"].as_str().unwrap();
    assert!(summary.contains("kube-proxy (ipvs mode") && summary.contains("--ipvs-compat"), "{summary}");
    assert_eq!(r["dataplane"]["conflicts"], serde_json::json!([]));
    assert_eq!(proxies(&r), vec![pair("kube-proxy", "ipvs"), pair("loxilb", "ebpf")]);
}

/// Two eBPF datapaths on the same device rewrite the same packets: LoxiLB next to Calico's eBPF dataplane.
#[test]
fn conflict_when_loxilb_runs_next_to_calico_ebpf() {
    let Some(mut w) = World::new("loxilb-calico") else { return };
    calico_ebpf_world(&mut w);
    w.ns("ip tuntap add llb0 mode tap && ip link set llb0 up");
    w.tc_sec("loxilb", "tc_packet_hook0", "eth0", "ingress");
    w.xdp_sec("loxilb", "xdp_packet_hook", "llb0");
    w.process("loxilb");

    let (code, r) = w.check();
    w.assert_recorded("conflict_when_loxilb_runs_next_to_calico_ebpf");
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(ids(&r), vec!["service-routing.conflict"], "{r:#}");
    let f = finding(&r, "service-routing.conflict");
    assert_eq!(f["severity"], "critical");
    assert!(f["summary"].as_str().unwrap().contains("both balance external"), "{f:#}");
    assert_eq!(
        r["dataplane"]["conflicts"],
        serde_json::json!([{"a": "calico-ebpf", "b": "loxilb", "severity": "critical"}])
    );
}
