//! Packaging checks that need no package build: the shipped default configuration is the real default, the
//! alerting rules pass `promtool test rules`, and every metric they use is one the daemon exports.

use std::path::Path;
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[test]
fn the_packaged_config_is_the_default_configuration() {
    let out = Command::new(env!("CARGO_BIN_EXE_routewarden"))
        .args(["--config", "/dev/null", "config", "defaults"])
        .output()
        .unwrap();
    let shipped = std::fs::read_to_string(Path::new(ROOT).join("packaging/config.toml")).unwrap();
    assert_eq!(
        shipped,
        String::from_utf8(out.stdout).unwrap(),
        "packaging/config.toml is out of date: regenerate it with `routewarden config defaults > packaging/config.toml`"
    );
}

#[test]
fn alerting_rules_pass_their_promtool_unit_tests() {
    if !crate::support::tool("promtool") {
        return;
    }
    let dir = Path::new(ROOT).join("packaging/prometheus");
    for args in
        [vec!["check", "rules", "routewarden-alerts.yaml"], vec!["test", "rules", "routewarden-alerts.test.yaml"]]
    {
        let out = Command::new("promtool").args(&args).current_dir(&dir).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn alerts_use_only_metrics_the_daemon_exports() {
    let metrics = routewarden::outputs::metrics::Metrics::new();
    let (_, text) = metrics.render();
    let exported: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    let alerts = std::fs::read_to_string(Path::new(ROOT).join("packaging/prometheus/routewarden-alerts.yaml")).unwrap();
    let mut used = Vec::new();
    for (i, _) in alerts.match_indices("routewarden_") {
        let name: String = alerts[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        used.push(name);
    }
    assert!(used.len() >= 6, "{used:?}");
    for name in used {
        assert!(
            exported.contains(&name.as_str()),
            "the alerts use {name}, which /metrics does not export: {exported:?}"
        );
    }
}
