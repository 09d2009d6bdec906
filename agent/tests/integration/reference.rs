//! The generated references (as rust-analyzer checks its generated docs): the findings pages in `docs/findings/`
//! (from `catalogue` and the default journal rules) and `docs/metrics.md` (from the table that describes the daemon's
//! registry, `outputs::metrics::FAMILIES`) are generated here and compared with the committed files; a file that
//! differs is rewritten and the test fails naming it, so one run of
//! `cargo test -p routewarden --test integration reference` regenerates them all. Also: the alerts each page names
//! exist, every alert on a finding id is named on that id's page, and every alert has a `runbook_url` to a page
//! that exists, under the workspace's `repository`.

use std::path::Path;

use routewarden::outputs::reference;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Compares `path` (relative to the repository) with `text`; a difference rewrites the file and is returned.
fn ensure_file_contents(path: &str, text: &str) -> Option<String> {
    let full = Path::new(ROOT).join(path);
    if std::fs::read_to_string(&full).ok().as_deref() == Some(text) {
        return None;
    }
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(&full, text).unwrap();
    Some(path.to_string())
}

fn fail_if_updated(updated: Vec<String>) {
    assert!(
        updated.is_empty(),
        "generated documentation was out of date and has been updated: {updated:?}; review and commit it \
         (`git diff docs/`)"
    );
}

#[test]
fn the_findings_reference_is_up_to_date() {
    let entries = reference::entries().unwrap();
    let mut updated = Vec::new();
    let mut wanted = vec!["README.md".to_string()];
    updated.extend(ensure_file_contents("docs/findings/README.md", &reference::findings_index(&entries)));
    for e in &entries {
        let name = reference::page_name(&e.id);
        updated.extend(ensure_file_contents(&format!("docs/findings/{name}"), &reference::finding_page(e)));
        wanted.push(name);
    }
    // A page whose id is gone is removed.
    for file in std::fs::read_dir(Path::new(ROOT).join("docs/findings")).unwrap() {
        let name = file.unwrap().file_name().to_string_lossy().into_owned();
        if !wanted.contains(&name) {
            std::fs::remove_file(Path::new(ROOT).join("docs/findings").join(&name)).unwrap();
            updated.push(format!("docs/findings/{name} (removed)"));
        }
    }
    fail_if_updated(updated);
}

#[test]
fn the_metrics_reference_is_up_to_date() {
    let text = reference::metrics_reference();
    fail_if_updated(ensure_file_contents("docs/metrics.md", &text).into_iter().collect());
}

/// (alert name, its expr and annotations as text) from the shipped rules file.
fn alerts() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("packaging/prometheus/routewarden-alerts.yaml")).unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            out.push((name.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

#[test]
fn the_findings_pages_name_the_alerts_that_fire_on_them() {
    let alerts = alerts();
    let entries = reference::entries().unwrap();
    for e in &entries {
        for a in e.alerts() {
            assert!(alerts.iter().any(|(n, _)| n == a), "{}: no alert {a} in routewarden-alerts.yaml", e.id);
        }
    }
    for (name, body) in &alerts {
        for e in &entries {
            let selects = body.contains(&format!("id=\"{}\"", e.id));
            assert!(
                !selects || e.alerts().contains(&name.as_str()),
                "{name} fires on {} but its page does not name it",
                e.id
            );
        }
    }
}

#[test]
fn every_alert_has_a_runbook_in_docs_and_names_the_node() {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let repository = manifest
        .lines()
        .find_map(|l| l.strip_prefix("repository = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("workspace repository in Cargo.toml");
    let prefix = format!("{repository}/blob/main/");
    for (name, body) in alerts() {
        let url = body
            .lines()
            .find_map(|l| l.trim().strip_prefix("runbook_url: "))
            .unwrap_or_else(|| panic!("{name} has no runbook_url"))
            .trim_matches('"');
        let path = url.strip_prefix(&prefix).unwrap_or_else(|| panic!("{name}: {url} is not under {prefix}"));
        let file = path.split('#').next().unwrap();
        assert!(file.starts_with("docs/"), "{name}: {url} is not a page in docs/");
        let page = std::fs::read_to_string(Path::new(ROOT).join(file))
            .unwrap_or_else(|e| panic!("{name}: runbook {file} does not exist: {e}"));
        if let Some(anchor) = path.split_once('#').map(|(_, a)| a) {
            let heading = page.lines().any(|l| {
                l.starts_with('#') && l.trim_start_matches('#').trim().to_lowercase().replace(' ', "-") == anchor
            });
            assert!(heading, "{name}: {file} has no heading for #{anchor}");
        }
        let summary = body.lines().find_map(|l| l.trim().strip_prefix("summary: ")).unwrap_or_default();
        assert!(summary.contains("$labels.node"), "{name}: its summary does not name the node: {summary}");
    }
}
