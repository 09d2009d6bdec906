//! Parser tests on the real rule dumps in `tests/data/fixtures/`: every dump parses and the chain inventory is
//! pinned as a snapshot. (The system tests load the same dumps into a namespace and check that the real
//! `iptables-save` of both backends parses to the same inventory.)

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use expect_test::expect;
use routewarden::model::iptables::Ruleset;
use routewarden::rules::chains::{owner, Owner};
use routewarden::sources::iptables::parse_save;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(crate::support::FIXTURES).join(name)).unwrap()
}

/// One line per table: chain count, rules, and chains by owner.
fn summary(rs: &Ruleset) -> String {
    let mut out = String::new();
    for (table, chains) in &rs.tables {
        let mut owners: BTreeMap<String, usize> = BTreeMap::new();
        for name in chains.keys() {
            *owners.entry(format!("{:?}", owner(table, name))).or_default() += 1;
        }
        let rules: u32 = chains.values().filter_map(|c| c.rules).sum();
        let _ = writeln!(out, "{table}: {} chains, {rules} rules, {owners:?}", chains.len());
    }
    out
}

#[test]
fn every_iptables_fixture_parses() {
    let mut all = String::new();
    let mut names: Vec<String> = std::fs::read_dir(crate::support::FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    for name in names {
        let default_table = if name.contains("mangle") { "mangle" } else { "filter" };
        let rs = parse_save(&fixture(&name), default_table).unwrap_or_else(|e| panic!("{name}: {e}"));
        let _ = write!(all, "{name}\n{}", summary(&rs));
    }
    expect![[r#"
        cilium-iptables_test-TestAddProxyRulesv4-mangle-S-after-add.txt
        mangle: 11 chains, 9 rules, {"Cilium": 4, "KubeProxyMarker": 1, "Kubelet": 1, "Other": 5}
        cilium-iptables_test-TestCopyProxyRulesv4-mangle-S.txt
        mangle: 9 chains, 6 rules, {"Cilium": 2, "KubeProxyMarker": 1, "Kubelet": 1, "Other": 5}
        kube-proxy-iptables-TestBadIPs.txt
        filter: 6 chains, 5 rules, {"KubeProxy": 3, "KubeProxyIptables": 2, "Kubelet": 1}
        nat: 8 chains, 18 rules, {"Ambiguous": 2, "KubeProxy": 1, "KubeProxyIptables": 5}
        kube-proxy-iptables-TestOverallIPTablesRules.txt
        filter: 6 chains, 10 rules, {"KubeProxy": 3, "KubeProxyIptables": 2, "Kubelet": 1}
        nat: 20 chains, 55 rules, {"Ambiguous": 2, "KubeProxy": 1, "KubeProxyIptables": 17}
        kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt
        filter: 6 chains, 4 rules, {"KubeProxy": 3, "KubeProxyIptables": 2, "Kubelet": 1}
        nat: 8 chains, 15 rules, {"Ambiguous": 2, "KubeProxy": 1, "KubeProxyIptables": 5}
        kube-proxy-iptables-TestSyncProxyRulesRepeated-step2-add-svc3-partial.txt
        filter: 6 chains, 4 rules, {"KubeProxy": 3, "KubeProxyIptables": 2, "Kubelet": 1}
        nat: 6 chains, 12 rules, {"Ambiguous": 2, "KubeProxy": 1, "KubeProxyIptables": 3}
        kube-proxy-iptables-TestSyncProxyRulesRepeated-step3-delete-svc2-partial.txt
        filter: 6 chains, 4 rules, {"KubeProxy": 3, "KubeProxyIptables": 2, "Kubelet": 1}
        nat: 4 chains, 7 rules, {"Ambiguous": 2, "KubeProxy": 1, "KubeProxyIptables": 1}
        kube-proxy-iptables-TestSyncProxyRulesRepeated-step4-svc4-no-endpoints-partial.txt
        filter: 6 chains, 5 rules, {"KubeProxy": 3, "KubeProxyIptables": 2, "Kubelet": 1}
        nat: 4 chains, 7 rules, {"Ambiguous": 2, "KubeProxy": 1, "KubeProxyIptables": 1}
        kube-proxy-iptables-TestSyncProxyRulesRepeated-step5-svc4-endpoints-partial.txt
        filter: 6 chains, 4 rules, {"KubeProxy": 3, "KubeProxyIptables": 2, "Kubelet": 1}
        nat: 6 chains, 12 rules, {"Ambiguous": 2, "KubeProxy": 1, "KubeProxyIptables": 3}
        kube-proxy-iptables-TestSyncProxyRulesRepeated-step6-change-endpoint-partial.txt
        filter: 6 chains, 4 rules, {"KubeProxy": 3, "KubeProxyIptables": 2, "Kubelet": 1}
        nat: 6 chains, 12 rules, {"Ambiguous": 2, "KubeProxy": 1, "KubeProxyIptables": 3}
        kube-proxy-iptables-TestSyncProxyRulesRepeated-step7-add-endpoint-partial.txt
        filter: 6 chains, 4 rules, {"KubeProxy": 3, "KubeProxyIptables": 2, "Kubelet": 1}
        nat: 7 chains, 15 rules, {"Ambiguous": 2, "KubeProxy": 1, "KubeProxyIptables": 4}
        kube-proxy-iptables-TestSyncProxyRulesRepeated-step8-no-change-partial.txt
        filter: 6 chains, 4 rules, {"KubeProxy": 3, "KubeProxyIptables": 2, "Kubelet": 1}
        nat: 4 chains, 8 rules, {"Ambiguous": 2, "KubeProxy": 1, "KubeProxyIptables": 1}
        kube-proxy-iptables-TestSyncProxyRulesRepeated-step9-full-resync-after-failure.txt
        filter: 6 chains, 4 rules, {"KubeProxy": 3, "KubeProxyIptables": 2, "Kubelet": 1}
        nat: 9 chains, 18 rules, {"Ambiguous": 2, "KubeProxy": 1, "KubeProxyIptables": 6}
        kube-proxy-iptables-TestTracePacket-input.txt
        filter: 9 chains, 16 rules, {"KubeProxy": 3, "KubeProxyIptables": 2, "Kubelet": 1, "Other": 3}
        nat: 24 chains, 54 rules, {"Ambiguous": 2, "KubeProxy": 1, "KubeProxyIptables": 17, "Other": 4}
        kube-proxy-userspace-era-TestGetChainLinesMultipleTables-2015.txt
        filter: 4 chains, 4 rules, {"Other": 4}
        nat: 15 chains, 20 rules, {"KubeProxyIptables": 10, "Other": 5}
    "#]]
    .assert_eq(&all);
}

#[test]
fn the_overall_dump_has_the_expected_service_chains() {
    let rs = parse_save(&fixture("kube-proxy-iptables-TestOverallIPTablesRules.txt"), "filter").unwrap();
    let svc: Vec<&str> = rs.chains("nat").filter(|c| c.starts_with("KUBE-SVC-")).collect();
    assert_eq!(svc.len(), 5, "{svc:?}");
    assert!(rs.has_chain("filter", "KUBE-FIREWALL"), "kube-proxy's duplicate of kubelet's chain");
    assert_eq!(owner("filter", "KUBE-FIREWALL"), Owner::Kubelet);
}

/// What a real v1.30.5 `kube-proxy --cleanup` leaves (issue 23: KUBE-PROXY-CANARY, KUBE-FIREWALL, KUBE-MARK-MASQ)
/// is no kube-proxy evidence, while the same kube-proxy's synced rules are.
#[test]
fn what_the_real_cleanup_leaves_is_no_kube_proxy() {
    use routewarden::model::nftables::Chains;
    use routewarden::rules::chains::Signals;
    let signals = |name: &str| {
        let rs = parse_save(&fixture(&format!("real-kube-proxy-1.30.5/{name}")), "filter").unwrap();
        Signals::of(Chains::Ruleset(&rs))
    };
    let after = signals("iptables-nft-mode.n40.after-cleanup.iptables-save.txt");
    assert!(!after.kube_proxy(), "{after:?}");
    assert_eq!(owner("mangle", "KUBE-PROXY-CANARY"), Owner::KubeProxyMarker);
    let synced = signals("iptables-nft-mode.n40.iptables-save.txt");
    assert!(synced.kube_proxy() && synced.svc_chains == 42, "{synced:?}");
}
