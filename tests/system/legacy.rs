//! The legacy iptables reader (getsockopt `IPT_SO_GET_ENTRIES` decoded in memory) agrees with
//! `iptables-legacy-save` on chain names, rule counts and jumps: on every iptables fixture, the Cilium `-S`
//! fixtures, an IPv6 table, and generated kube-proxy rulesets of 1k and 10k Services (50k: the detector
//! benchmark); and the binary's
//! snapshot holds the same inventory. `UPDATE_BLOBS=1` re-captures the blobs in `agent/tests/data/xtables` that
//! the decoder's unprivileged test reads.

#[path = "../../agent/benches/ruleset.rs"]
#[allow(dead_code)]
mod ruleset;
#[path = "../../agent/tests/integration/save_jumps.rs"]
mod save_jumps;

use routewarden::model::iptables::Ruleset;
use routewarden::sources::iptables::{entries, insert, parse_save};
use routewarden::sys::xtables::{read_table, Family};
use routewarden_system_tests::{in_netns, World, FIXTURES, ROOT};

type Jumps = Vec<(String, String, String, bool)>;

/// Every legacy table of `family` in the world, read from the kernel: the inventory, the jumps, and the raw
/// (info + entries) bytes per table.
fn read_kernel(w: &World, family: Family) -> (Ruleset, Jumps, Vec<(String, Vec<u8>)>) {
    let file = if family == Family::Ipv4 { "ip_tables_names" } else { "ip6_tables_names" };
    let names = w.ns(&format!("cat /proc/net/{file} 2>/dev/null || true"));
    in_netns(&w.name, move || {
        let (mut rs, mut jumps, mut raws) = (Ruleset::default(), Vec::new(), Vec::new());
        for table in names.split_whitespace() {
            let raw = read_table(family, table, 2 << 30).unwrap();
            let info = entries::parse_info(&raw.info).unwrap();
            let decoded = entries::decode(family, &info, raw.entries()).unwrap_or_else(|e| panic!("{table}: {e}"));
            insert(&mut rs, table, &decoded);
            for j in &decoded.jumps {
                let name = |i: u32| decoded.chains[i as usize].name.to_string();
                jumps.push((table.to_string(), name(j.from), name(j.to), j.goto));
            }
            let mut bytes = raw.info.to_vec();
            bytes.extend_from_slice(raw.entries());
            raws.push((table.to_string(), bytes));
        }
        jumps.sort();
        (rs, jumps, raws)
    })
}

/// Asserts the kernel reader, `iptables-legacy-save` and the binary's snapshot agree for `family`; with
/// `capture` and UPDATE_BLOBS=1, writes the blobs and the save output as test data under that name.
fn agree(w: &World, family: Family, label: &str, capture: Option<&str>) {
    let (rs, jumps, raws) = read_kernel(w, family);
    let (tool, key, suffix) = match family {
        Family::Ipv4 => ("iptables-legacy-save", "ipv4", "v4"),
        Family::Ipv6 => ("ip6tables-legacy-save", "ipv6", "v6"),
    };
    let save = w.ns(tool);
    let expected = parse_save(&save, "filter").unwrap();
    assert!(!rs.is_empty(), "{label}: no legacy tables read");
    assert_eq!(rs, expected, "{label}: chains and rule counts differ from {tool}");
    assert_eq!(jumps, save_jumps::save_jumps(&save), "{label}: jumps differ from {tool}");

    let (code, out, err) = w.run("snapshot");
    assert_eq!(code, 0, "{err}");
    let snap: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(snap["iptables_legacy"]["status"], "ok", "{label}: {}", snap["iptables_legacy"]);
    let from_binary: Ruleset = serde_json::from_value(snap["iptables_legacy"]["data"][key].clone()).unwrap();
    assert_eq!(from_binary, expected, "{label}: the binary's snapshot differs from {tool}");

    if let (Some(name), Ok("1")) = (capture, std::env::var("UPDATE_BLOBS").as_deref()) {
        let dir = std::path::Path::new(ROOT).join("agent/tests/data/xtables");
        for (table, bytes) in raws {
            std::fs::write(dir.join(format!("{name}.{table}.{suffix}.bin")), bytes).unwrap();
        }
        std::fs::write(dir.join(format!("{name}.{suffix}.save.txt")), &save).unwrap();
    }
}

const FULL: &[(&str, &str)] = &[
    ("overall", "kube-proxy-iptables-TestOverallIPTablesRules.txt"),
    ("bad-ips", "kube-proxy-iptables-TestBadIPs.txt"),
    ("multiple-tables-2015", "kube-proxy-userspace-era-TestGetChainLinesMultipleTables-2015.txt"),
];

#[test]
fn legacy_reader_agrees_with_iptables_legacy_save_on_every_fixture() {
    for (label, fixture) in FULL {
        let Some(w) = World::new(&format!("lg-{label}")) else { return };
        w.iptables_fixture("legacy", fixture);
        agree(&w, Family::Ipv4, fixture, Some(label));
    }
    // kube-proxy's sync steps, applied in order with --noflush as kube-proxy applies them (partial restores).
    let Some(w) = World::new("lg-steps") else { return };
    let mut steps: Vec<_> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("kube-proxy-iptables-TestSyncProxyRulesRepeated-step"))
        .collect();
    steps.sort_by_key(|n| n["kube-proxy-iptables-TestSyncProxyRulesRepeated-step".len()..].chars().next());
    assert_eq!(steps.len(), 9);
    for step in &steps {
        w.iptables_fixture("legacy", step);
        agree(&w, Family::Ipv4, step, step.contains("step1-").then_some("sync-step1"));
    }
    // Cilium's `iptables -S` dumps of its mangle chains, as restore input.
    for fixture in [
        "cilium-iptables_test-TestAddProxyRulesv4-mangle-S-after-add.txt",
        "cilium-iptables_test-TestCopyProxyRulesv4-mangle-S.txt",
    ] {
        let Some(w) = World::new(&format!("lg-{}", &fixture[24..34])) else { return };
        let text = std::fs::read_to_string(std::path::Path::new(FIXTURES).join(fixture)).unwrap();
        w.iptables_restore("legacy", false, &dash_s_to_restore("mangle", &text));
        agree(&w, Family::Ipv4, fixture, fixture.contains("Add").then_some("cilium-mangle"));
    }
}

/// `iptables -S` output of one table as `iptables-restore` input.
fn dash_s_to_restore(table: &str, text: &str) -> String {
    let mut out = format!("*{table}\n");
    for line in text.lines() {
        let mut t = line.split_whitespace();
        match (t.next(), t.next(), t.next()) {
            (Some("-P"), Some(c), Some(p)) => out.push_str(&format!(":{c} {p} [0:0]\n")),
            (Some("-N"), Some(c), _) => out.push_str(&format!(":{c} - [0:0]\n")),
            (Some("-A"), ..) => out.push_str(&format!("{line}\n")),
            _ => {}
        }
    }
    out + "COMMIT\n"
}

/// An IPv6 table with what the IPv4 fixtures lack: a goto, a rule without a target, an empty user chain, a DROP
/// policy, and a chain jumped to from two tables' worth of rules.
const V6: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:KUBE-FORWARD - [0:0]\n:KUBE-EMPTY - [0:0]\n:KUBE-FIREWALL - [0:0]\n\
-A INPUT -j KUBE-FIREWALL\n-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n\
-A FORWARD -s fd00::/8 -g KUBE-FIREWALL\n-A FORWARD -d fd00::1/128\n-A OUTPUT -j KUBE-FIREWALL\n\
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n-A KUBE-FORWARD -j RETURN\n\
-A KUBE-FIREWALL ! -s ::1/128 -d ::1/128 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\nCOMMIT\n\
*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]\n\
-A PREROUTING -j KUBE-SERVICES\n-A OUTPUT -j KUBE-SERVICES\n\
-A KUBE-SERVICES -d fd00:10:96::1/128 -p tcp -m tcp --dport 443 -j KUBE-SVC-AAAAAAAAAAAAAAAA\n\
-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-BBBBBBBBBBBBBBBB\n\
-A KUBE-SEP-BBBBBBBBBBBBBBBB -p tcp -m tcp -j DNAT --to-destination [fd00::10]:6443\nCOMMIT\n";

#[test]
fn legacy_reader_agrees_with_ip6tables_legacy_save() {
    let Some(w) = World::new("lg-v6") else { return };
    w.iptables_restore("legacy", true, V6);
    agree(&w, Family::Ipv6, "ipv6", Some("ipv6"));
}

/// 50k Services take minutes to load into legacy tables on this machine, so the 50k agreement is asserted by the
/// detector benchmark, which loads that world anyway (`cargo xtask bench detector`).
#[test]
fn legacy_reader_agrees_with_iptables_legacy_save_at_1k_and_10k_services() {
    for n in [1000, 10_000] {
        let Some(w) = World::new(&format!("lg-gen-{n}")) else { return };
        w.iptables_restore("legacy", false, &ruleset::ruleset(n));
        agree(&w, Family::Ipv4, &format!("{n} Services"), None);
        drop(w);
    }
}
