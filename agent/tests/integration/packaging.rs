//! Packaging checks that need no package build: the shipped default configuration is the real default, the
//! alerting rules pass `promtool test rules`, every metric they and the Grafana dashboard use is one the daemon
//! exports, and the scrape configuration examples pass `promtool check config`.

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

/// docs/configuration.md, generated from the same source as `config defaults`.
fn configuration_reference(defaults: &str) -> String {
    format!(
        "# Configuration reference\n\n<!-- Generated from `routewarden config defaults` by the test \
         the_configuration_reference_is_generated_from_the_defaults; do not edit by hand. -->\n\n\
         routewarden reads `/etc/routewarden/config.toml` (or `--config FILE`). Every key is optional; below is \
         every key with its default and a one-line comment (the shipped `/etc/routewarden/config.toml` is this text). `routewarden config validate` reports every mistake of a \
         file at once (file, line, column, and the nearest known key for a misspelt one); `routewarden config \
         show` prints the configuration in force.\n\n```toml\n{defaults}```\n"
    )
}

/// Rust-analyzer style: the test rewrites the file and fails if that changed it (commit the rewritten file).
#[test]
fn the_configuration_reference_is_generated_from_the_defaults() {
    let out = Command::new(env!("CARGO_BIN_EXE_routewarden"))
        .args(["--config", "/dev/null", "config", "defaults"])
        .output()
        .unwrap();
    let want = configuration_reference(&String::from_utf8(out.stdout).unwrap());
    let path = Path::new(ROOT).join("docs/configuration.md");
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        std::fs::write(&path, &want).unwrap();
        panic!("docs/configuration.md was out of date and has been regenerated: commit it");
    }
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
    // With every optional part on (`[kubernetes]`: its series exist only then).
    let mut metrics = routewarden::outputs::metrics::Metrics::new();
    metrics.enable_kubernetes(true);
    metrics.enable_metrics_auth();
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

/// Metric names (`routewarden_*`, `process_*`) in a text, in order of appearance.
fn metric_names(text: &str) -> Vec<String> {
    let mut used = Vec::new();
    for prefix in ["routewarden_", "process_"] {
        for (i, _) in text.match_indices(prefix) {
            if text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            used.push(text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect());
        }
    }
    used
}

#[test]
fn the_dashboard_has_the_fleet_panels_and_uses_only_exported_metrics() {
    let mut metrics = routewarden::outputs::metrics::Metrics::new();
    metrics.enable_kubernetes(true);
    metrics.enable_metrics_auth();
    let (_, text) = metrics.render();
    let exported: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    let raw = std::fs::read_to_string(Path::new(ROOT).join("packaging/grafana/routewarden.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let mut titles = Vec::new();
    let mut exprs = String::new();
    for p in dashboard["panels"].as_array().unwrap() {
        titles.push(p["title"].as_str().unwrap().to_string());
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push_str(t["expr"].as_str().unwrap());
            exprs.push('\n');
        }
    }
    for want in [
        "Nodes by verdict",
        "Service-routing conflicts across the fleet",
        "kube-proxy mode and backend",
        "Cilium kube-proxy replacement",
        "Sources failing",
        "Certificate expiry (days)",
        "Journal matches per rule",
        "Collection duration by source",
        "Service proxy and mode per node",
        "Nodes by Service proxy and mode",
        "Conflicts by pair and severity",
        "Findings by severity",
        "Journal findings",
        "Kubernetes exporter",
    ] {
        assert!(titles.iter().any(|t| t == want), "no panel {want:?} in {titles:?}");
    }
    // The journal panel names every default journal rule's own id (not those shared with a built-in finding).
    let journal = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Journal findings")
        .and_then(|p| p["targets"][0]["expr"].as_str())
        .unwrap()
        .to_string();
    let rules = routewarden::journal::rules::parse(routewarden::journal::rules::DEFAULT_RULES, "defaults").unwrap();
    for rule in rules {
        let built_in = routewarden::report::FindingId::BUILT_IN.iter().any(|b| b.as_str() == rule.id);
        assert!(built_in || journal.contains(&rule.id), "the journal findings panel leaves out {}", rule.id);
    }
    let used = metric_names(&exprs);
    assert!(used.len() >= 15, "{used:?}");
    for name in used {
        assert!(exported.contains(&name.as_str()), "the dashboard uses {name}, which /metrics does not export");
    }
    assert!(exported.contains(&"process_resident_memory_bytes") && exported.contains(&"process_cpu_seconds_total"));
}

#[test]
fn the_scrape_examples_pass_promtool_check_config() {
    if !crate::support::tool("promtool") {
        return;
    }
    let dir = Path::new(ROOT).join("packaging/prometheus");
    let tmp = tempfile::tempdir().unwrap();
    // Debian's Prometheus is built without Kubernetes service discovery, so its promtool refuses
    // kubernetes_sd_configs: the node discovery is checked as written below, the rest with promtool. The system
    // test `fleet` runs this file's relabelling in a real Prometheus with the same substitution.
    let kubernetes = std::fs::read_to_string(dir.join("scrape-kubernetes.yml")).unwrap();
    let discovery = "kubernetes_sd_configs:\n      # Prometheus outside the cluster also needs api_server and authorization here.\n      - role: node";
    assert!(kubernetes.contains(discovery), "{kubernetes}");
    assert!(kubernetes.contains("replacement: '${1}:9978'") && kubernetes.contains("target_label: node"));
    let nodes = tmp.path().join("nodes.json");
    std::fs::write(&nodes, "[]").unwrap();
    let substituted =
        kubernetes.replace(discovery, &format!("file_sd_configs:\n      - files: ['{}']", nodes.display()));
    std::fs::write(tmp.path().join("scrape-kubernetes.yml"), substituted).unwrap();
    for file in [dir.join("scrape-static.yml"), tmp.path().join("scrape-kubernetes.yml")] {
        let out = Command::new("promtool").args(["check", "config"]).arg(&file).output().unwrap();
        assert!(
            out.status.success(),
            "promtool check config {}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
