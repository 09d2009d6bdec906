//! The generated references (as rust-analyzer checks its generated docs): the findings pages in `docs/findings/`
//! (from `catalogue` and the default journal rules) and `docs/metrics.md` (from the daemon's real registry, fed
//! every recorded snapshot's report) are generated here and compared with the committed files; a file that
//! differs is rewritten and the test fails naming it, so one run of
//! `cargo test -p routewarden --test integration reference` regenerates them all. Also: the alerts each page names
//! exist, every alert on a finding id is named on that id's page, and every alert has a `runbook_url` to a page
//! that exists, under the workspace's `repository`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use routewarden::model::kubernetes::ExporterStatus;
use routewarden::model::Snapshot;
use routewarden::outputs::metrics::Metrics;
use routewarden::outputs::reference;
use routewarden::report::Certificate;
use routewarden::report::JournalCounters;
use routewarden::rules::assemble;
use routewarden::sys::process::ProcessStats;

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

/// Every recorded snapshot's report, the journal, the process and the Kubernetes exporter through one registry,
/// so that every family has samples and its labels show.
fn fed_metrics() -> Vec<String> {
    let dir = Path::new(ROOT).join("agent/tests/data/snapshots");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut m = Metrics::new();
    m.enable_kubernetes(true);
    m.enable_metrics_auth();
    // The daemon's parts, as `rules::assemble` adds them: journal counters, the exporter with its taint.
    let daemon = |base: &routewarden::report::Report| {
        let journal = assemble::Journal::Running {
            error: None,
            note: None,
            findings: Vec::new(),
            counters: JournalCounters {
                matches: BTreeMap::from([("cni.not-ready".to_string(), 1)]),
                lines: BTreeMap::from([("kubelet.service".to_string(), 1)]),
                lag_seconds: 0.0,
                not_entries: 1,
                overlong_lines: 1,
            },
        };
        let exporter = ExporterStatus {
            up: Some(true),
            last_success_unix: Some(1.0),
            requests_ok: 1,
            requests_failed: 1,
            taint: Some(routewarden::model::kubernetes::TaintState::Absent),
            ..Default::default()
        };
        let gate = routewarden::rules::gate::NodeGate::Met;
        assemble::assemble(
            base,
            assemble::Inputs {
                churn_flips: &[],
                journal,
                exporter: Some(exporter),
                node_gate: &gate,
                collections: 1,
                rule_changes: 1,
                last_collection_unix: 1.0,
                metrics_auth: Some(routewarden::report::AuthCounters { accepted: 1, ..Default::default() }),
                now_unix: 1.0,
            },
        )
    };
    let mut renders = Vec::new();
    let mut last = None;
    for path in names {
        let snap: Snapshot = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let report = routewarden::rules::analyse(&snap, "2026-01-01T00:00:00Z".into());
        m.update(&daemon(&report));
        renders.push(m.render().0);
        last = Some(report);
    }
    // No recorded world watches certificates: one certificate shows that family's labels.
    let mut report = last.unwrap();
    report.certificates.push(Certificate {
        path: "/var/lib/kubelet/pki/kubelet-client-current.pem".into(),
        location: "pem 0".into(),
        subject: "CN=system:node:n1".into(),
        issuer: "CN=kubernetes".into(),
        serial: "01".into(),
        not_after: 1,
    });
    m.update(&daemon(&report));
    m.update_process(&ProcessStats {
        cpu_seconds: Some(1.0),
        resident_bytes: Some(1),
        virtual_bytes: Some(1),
        start_time_seconds: Some(1.0),
        open_fds: Some(1),
        max_fds: Some(1),
    });
    renders.push(m.render().0);
    renders
}

#[test]
fn the_metrics_reference_is_up_to_date() {
    let text = reference::metrics_reference(&fed_metrics());
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
