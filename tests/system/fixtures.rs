//! The real rule dumps loaded into a namespace with `iptables-restore` and read back with the real
//! `iptables-save` of both backends parse to the same inventory as the dumps themselves (the agent crate's
//! fixture test parses the dumps alone).

use std::collections::BTreeMap;

use routewarden::model::iptables::Ruleset;
use routewarden::sources::iptables::parse_save;
use routewarden_system_tests::{World, FIXTURES};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(FIXTURES).join(name)).unwrap()
}

/// Builtin chains with no rules differ between restore input and save output; compare everything else.
fn normalised(rs: &Ruleset) -> BTreeMap<(String, String), u32> {
    const BUILTIN: &[&str] = &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];
    rs.tables
        .iter()
        .flat_map(|(t, cs)| cs.iter().map(move |(c, chain)| ((t.clone(), c.clone()), chain.rules.unwrap_or(0))))
        .filter(|((_, c), n)| !(BUILTIN.contains(&c.as_str()) && *n == 0))
        .collect()
}

#[test]
fn real_iptables_save_output_of_the_fixtures_parses_the_same() {
    for backend in ["legacy", "nft"] {
        for name in [
            "kube-proxy-iptables-TestOverallIPTablesRules.txt",
            "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt",
            "kube-proxy-iptables-TestBadIPs.txt",
            "kube-proxy-userspace-era-TestGetChainLinesMultipleTables-2015.txt",
        ] {
            let Some(w) = World::new(&format!("fx-{backend}")) else { return };
            let text = fixture(name);
            w.iptables_restore(backend, false, &text);
            let saved = w.ns(&format!("iptables-{backend}-save"));
            let real = parse_save(&saved, "filter").unwrap_or_else(|e| panic!("{backend} {name}: {e}\n{saved}"));
            let expected = normalised(&parse_save(&text, "filter").unwrap());
            assert_eq!(normalised(&real), expected, "{backend} {name}");
        }
    }
}
