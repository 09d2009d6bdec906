//! The fuzzing targets: each takes arbitrary bytes to one of routewarden's pure parsers (and, for a snapshot, to
//! the rules), which must return an error or a value and never panic, hang or allocate without bound.

use std::path::Path;

use routewarden::sources;

/// The target names `cargo xtask fuzz TARGET` knows, each with a binary in `src/bin/` and seeds in `seeds/TARGET`.
pub const TARGETS: &[&str] = &[
    "iptables_save",
    "nft_dump",
    "certificates",
    "mountinfo",
    "ipvs",
    "cni",
    "cilium_api",
    "proc_net_tcp",
    "settings",
    "snapshot",
    "journal_entry",
    "journal_records",
    "xtables_entries",
    "kubeconfig",
    "web_config",
];

/// The shipped journal rules, compiled once per fuzzing process (each input gets a fresh engine).
fn journal_rules() -> Option<&'static routewarden::journal::RuleSet> {
    static RULES: std::sync::OnceLock<Option<routewarden::journal::RuleSet>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| routewarden::journal::RuleSet::with_defaults(Vec::new()).ok()).as_ref()
}

/// Runs target `name` on `data`; unknown names do nothing.
pub fn run(name: &str, data: &[u8]) {
    let text = || String::from_utf8_lossy(data);
    match name {
        "iptables_save" => {
            let _ = sources::iptables::parse::parse_save(&text(), "filter");
        }
        "nft_dump" => {
            let mut out = Vec::new();
            let _ = routewarden::sys::nfnetlink::parse_dump(data, &mut out);
        }
        "certificates" => {
            let _ = sources::certs::parse::certificates(data, Path::new("fuzz.crt"));
        }
        "mountinfo" => {
            let _ = sources::mounts::parse(&text());
        }
        "ipvs" => {
            let _ = sources::ipvs::parse(&text());
        }
        "cni" => {
            let _ = sources::cni::parse("10-fuzz.conflist", data);
        }
        "cilium_api" => {
            let _ = sources::cilium_agent::parse(&text());
        }
        "proc_net_tcp" => {
            let _ = sources::sockets::parse::listeners(&text(), false);
            let _ = sources::sockets::parse::listeners(&text(), true);
        }
        "settings" => {
            let _ = routewarden::settings::Settings::parse(&text(), Path::new("fuzz.toml"));
        }
        "snapshot" => {
            if let Ok(snap) = serde_json::from_slice::<routewarden::model::Snapshot>(data) {
                let report = routewarden::rules::analyse(&snap, snap.collected_at);
                let _ = routewarden::outputs::text::render(&report);
            }
        }
        "web_config" => {
            let _ = routewarden::settings::web_config::parse(&text(), Path::new("/etc/routewarden/web.yml"));
        }
        "kubeconfig" => {
            // A kubeconfig's server, as the journal rules' `{apiserver}`: whatever URL is accepted must give
            // patterns that compile.
            if let Ok(api) = sources::kubelet_api::parse(&text(), "fuzz.conf") {
                if let Some(rules) = journal_rules() {
                    assert!(rules.for_api_server(&api).is_ok(), "{api:?}");
                }
            }
        }
        "journal_entry" => {
            let _ = routewarden::journal::parse_entry(data);
        }
        "journal_records" => {
            // journalctl lines -> entries -> multi-line records -> every rule, as the follower runs them.
            let Some(rules) = journal_rules() else { return };
            let mut engine = routewarden::journal::Engine::new(rules.clone());
            let mut asm = routewarden::journal::assemble::Assembler::new();
            for line in data.split(|&b| b == b'\n') {
                if let Ok(e) = routewarden::journal::parse_entry(line) {
                    asm.push(e, |r| engine.feed_with(&r, |_| {}));
                }
            }
            asm.flush(|r| engine.feed_with(&r, |_| {}));
            engine.advance(engine.last_usec);
            let _ = (engine.findings(), engine.episodes());
        }
        "xtables_entries" => {
            // The ipt_getinfo bytes, then the entries blob (as in agent/tests/data/xtables). The info's size is
            // checked first (as the reader does); the decoder is then run with it set to the blob's length, so
            // mutations reach the entries, in both families' layouts.
            use routewarden::sources::iptables::entries::{decode, parse_info};
            use routewarden::sys::xtables::{Family, INFO_LEN};
            let Some((head, blob)) = data.split_at_checked(INFO_LEN) else { return };
            let Ok(mut info) = parse_info(head) else { return };
            let _ = decode(Family::Ipv4, &info, blob);
            info.size = blob.len() as u32;
            let _ = decode(Family::Ipv4, &info, blob);
            let _ = decode(Family::Ipv6, &info, blob);
        }
        _ => {}
    }
}
