//! Decisions from recorded snapshots, without root: every `tests/data/snapshots/<name>.json` (the normalised
//! `routewarden snapshot` of a system-test world, recorded by the system tests with `UPDATE_SNAPSHOTS=1`) is
//! analysed with the library and its decision compared with `<name>.expected.txt`: verdict, exit code, the JSON
//! findings' severities and ids, the dataplane, and the text report. `UPDATE_EXPECT=1` rewrites the expected files.
//! The system tests prove that the recordings are what a real kernel gives.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use expect_test::expect_file;
use routewarden::model::{Snapshot, Timestamp};
use routewarden::outputs::text;
use routewarden::report::Report;
use routewarden::rules::analyse;

const SNAPSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/snapshots");

/// The report time, 2026-01-01T00:00:00Z; the recordings' own collection time (normalised) drives the
/// time-dependent rules.
const ANALYSED_AT: Timestamp = Timestamp::from_unix(1_767_225_600);

/// The names of the recordings (`<name>.json`), sorted.
fn recordings() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(SNAPSHOTS)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .collect();
    names.sort();
    names
}

fn load(name: &str) -> (PathBuf, Snapshot) {
    let path = Path::new(SNAPSHOTS).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    let snap = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{} is not a snapshot ({e}): re-record it with UPDATE_SNAPSHOTS=1 (cargo xtask test as root)",
            path.display()
        )
    });
    (path, snap)
}

/// The decision as it is reviewed: what the JSON report says, then what an operator reads.
fn decision(report: &Report) -> String {
    let json = serde_json::to_value(report).unwrap();
    let mut s = String::new();
    let _ = writeln!(s, "verdict: {}", json["verdict"].as_str().unwrap());
    let _ = writeln!(s, "exit code: {}", report.exit_code());
    let _ = writeln!(s, "findings:");
    let findings = json["findings"].as_array().unwrap();
    if findings.is_empty() {
        let _ = writeln!(s, "  (none)");
    }
    for f in findings {
        let _ = writeln!(s, "  {} {}", f["severity"].as_str().unwrap(), f["id"].as_str().unwrap());
    }
    let failed: Vec<&str> = json["sources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v["status"] == "failed")
        .map(|(k, _)| k.as_str())
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "sources failed: {}", failed.join(", "));
    }
    let _ = writeln!(s, "dataplane: {}", serde_json::to_string_pretty(&json["dataplane"]).unwrap());
    let _ = write!(s, "\n--- routewarden check ---\n{}", text::render(report));
    s
}

#[test]
fn every_recorded_world_gives_its_expected_decision() {
    let names = recordings();
    assert!(names.len() >= 20, "only {} recorded snapshots in {SNAPSHOTS}: {names:?}", names.len());
    let mut differ = Vec::new();
    for name in &names {
        let (_, snap) = load(name);
        let report = analyse(&snap, ANALYSED_AT);
        let expected = Path::new(SNAPSHOTS).join(format!("{name}.expected.txt"));
        let actual = decision(&report);
        // Check every recording, then list the ones that differ (each prints its own diff).
        if std::panic::catch_unwind(|| expect_file![&expected].assert_eq(&actual)).is_err() {
            differ.push(name.clone());
        }
    }
    assert!(
        differ.is_empty(),
        "decisions differ from their expected files: {differ:?}; if intended, UPDATE_EXPECT=1 cargo test -p routewarden --test integration"
    );

    let orphans: Vec<String> = std::fs::read_dir(SNAPSHOTS)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".expected.txt").map(str::to_string))
        .filter(|n| !names.contains(n))
        .collect();
    assert!(orphans.is_empty(), "expected decisions without a recorded snapshot (delete them): {orphans:?}");
}

#[test]
fn the_binary_decides_on_a_recording_as_the_library_does() {
    for name in recordings() {
        let (path, snap) = load(&name);
        let report = analyse(&snap, ANALYSED_AT);
        let out = Command::new(env!("CARGO_BIN_EXE_routewarden"))
            .args(["--config", "/dev/null", "check", "--output", "json", "--snapshot"])
            .arg(&path)
            .output()
            .unwrap();
        let live: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        let lib = serde_json::to_value(&report).unwrap();
        assert_eq!(out.status.code(), Some(report.exit_code()), "{name}");
        assert_eq!(
            (&live["verdict"], &live["findings"], &live["dataplane"]),
            (&lib["verdict"], &lib["findings"], &lib["dataplane"]),
            "{name}"
        );
    }
}
