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
];

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
                let report = routewarden::rules::analyse(&snap, String::new());
                let _ = routewarden::outputs::text::render(&report);
            }
        }
        _ => {}
    }
}
