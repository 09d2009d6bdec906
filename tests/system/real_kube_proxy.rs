//! Decision worlds from what a real kube-proxy (v1.30.5) programmed and what its `--cleanup` left behind
//! (agent/tests/data/fixtures/real-kube-proxy-1.30.5/, issue 23), loaded with the real iptables-restore and nft.

use std::path::Path;

use routewarden_system_tests::{finding, ids, World, FIXTURES};

const DIR: &str = "real-kube-proxy-1.30.5";

fn text(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(DIR).join(name)).unwrap()
}

fn restore(w: &World, backend: &str, v4: &str, v6: &str) {
    w.iptables_restore(backend, false, &text(v4));
    w.iptables_restore(backend, true, &text(v6));
}

/// After the documented remedy (kube-proxy gone, then `kube-proxy --cleanup`) only KUBE-PROXY-CANARY, KUBE-FIREWALL
/// and KUBE-MARK-MASQ remain: no Service routing, so no stale-rules warning telling the operator to run the cleanup
/// they just ran.
#[test]
fn real_kube_proxy_cleanup_leaves_only_harmless_markers() {
    let Some(w) = World::new("rkp-cleanup") else { return };
    restore(
        &w,
        "nft",
        "iptables-nft-mode.n40.after-cleanup.iptables-save.txt",
        "iptables-nft-mode.n40.after-cleanup.ip6tables-save.txt",
    );
    let (_, r) = w.check();
    w.assert_recorded("real_kube_proxy_cleanup_leaves_only_harmless_markers");
    assert!(!ids(&r).contains(&"kube-proxy.stale-rules".to_string()), "{r:#}");
    assert!(!ids(&r).contains(&"iptables.mixed-backends".to_string()), "{r:#}");
    assert_eq!(r["dataplane"]["kube_proxy"]["mode"], "none", "{r:#}");
}

/// The node: Cilium's kube-proxy replacement took over, kube-proxy was removed and `--cleanup` ran. Healthy,
/// no findings (it used to warn `kube-proxy.stale-rules` and say "run kube-proxy --cleanup").
#[test]
fn real_kube_proxy_cleanup_next_to_cilium_kpr_is_healthy() {
    let Some(mut w) = World::new("rkp-cleanup-kpr") else { return };
    restore(
        &w,
        "nft",
        "iptables-nft-mode.n40.after-cleanup.iptables-save.txt",
        "iptables-nft-mode.n40.after-cleanup.ip6tables-save.txt",
    );
    w.veth("cilium_host", "cilium_net");
    w.veth("eth0", "eth0peer");
    w.socket_lb();
    w.tc_ingress("eth0");
    w.lb4_map(&[([10, 96, 0, 1], 443, 0)]);
    w.process("cilium-agent");
    let (code, r) = w.check();
    w.assert_recorded("real_kube_proxy_cleanup_next_to_cilium_kpr_is_healthy");
    assert_eq!(code, 0, "{r:#}");
    assert!(ids(&r).is_empty(), "{r:#}");
}

/// The same kube-proxy killed without the cleanup: its 42 Service ports' rules are real stale Service routing.
#[test]
fn real_kube_proxy_killed_without_cleanup_leaves_stale_rules() {
    let Some(w) = World::new("rkp-killed") else { return };
    restore(&w, "nft", "iptables-nft-mode.n40.iptables-save.txt", "iptables-nft-mode.n40.ip6tables-save.txt");
    let (code, r) = w.check();
    w.assert_recorded("real_kube_proxy_killed_without_cleanup_leaves_stale_rules");
    assert_eq!(code, 1, "{r:#}");
    let f = finding(&r, "kube-proxy.stale-rules");
    assert!(f["remedy"].as_str().unwrap().contains("kube-proxy --cleanup"), "{f:#}");
    assert_eq!(r["dataplane"]["kube_proxy"]["services"], 42, "{r:#}");
}

/// Real iptables mode on the legacy backend, kube-proxy running: healthy, 42 Service ports.
#[test]
fn real_kube_proxy_iptables_legacy_mode_is_healthy() {
    let Some(mut w) = World::new("rkp-legacy") else { return };
    restore(
        &w,
        "legacy",
        "iptables-legacy-mode.n40.iptables-legacy-save.txt",
        "iptables-legacy-mode.n40.ip6tables-legacy-save.txt",
    );
    w.process("kube-proxy");
    let (code, r) = w.check();
    w.assert_recorded("real_kube_proxy_iptables_legacy_mode_is_healthy");
    assert_eq!(code, 0, "{r:#}");
    let kp = &r["dataplane"]["kube_proxy"];
    assert_eq!(
        (kp["mode"].as_str(), kp["backend"].as_str(), kp["services"].as_u64()),
        (Some("iptables"), Some("legacy"), Some(42))
    );
}

/// Real nftables mode: the service count is the `service-<HASH>-<ns>/<name>/<proto>/<port>` chains kube-proxy
/// balances (42), not 43: the fixed `service-endpoints-check` chain shares the prefix.
#[test]
fn real_kube_proxy_nftables_mode_counts_the_service_ports_it_balances() {
    let Some(mut w) = World::new("rkp-nft") else { return };
    w.ns(&format!("nft -f {}", Path::new(FIXTURES).join(DIR).join("nftables-mode.n40.nft-list-ruleset.txt").display()));
    w.process("kube-proxy");
    let (code, r) = w.check();
    w.assert_recorded("real_kube_proxy_nftables_mode_counts_the_service_ports_it_balances");
    assert_eq!(code, 0, "{r:#}");
    let kp = &r["dataplane"]["kube_proxy"];
    assert_eq!((kp["mode"].as_str(), kp["services"].as_u64()), (Some("nftables"), Some(42)), "{r:#}");
}
