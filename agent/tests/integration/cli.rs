//! The command line as a user meets it: help that teaches, configuration errors with file, line and key (exit 64),
//! usage errors (exit 64), unreadable snapshot files. Needs no privileges.

use std::process::Command;

fn rw(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_routewarden")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_names_every_command_with_examples_and_exit_codes() {
    let (code, out, _) = rw(&["--help"]);
    assert_eq!(code, 0);
    for cmd in ["check", "snapshot", "serve", "config"] {
        assert!(out.contains(cmd), "{out}");
    }
    assert!(out.contains("Examples:"), "{out}");
    let (_, out, _) = rw(&["check", "--help"]);
    assert!(out.contains("Exit codes: 0 healthy, 1 warnings, 2 critical") && out.contains("--snapshot"), "{out}");
    let (_, out, _) = rw(&["serve", "--help"]);
    assert!(out.contains("/metrics") && out.contains("SIGHUP"), "{out}");
}

#[test]
fn configuration_errors_name_file_line_and_key_and_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "host_root = \"/\"\n[daemon]\nlisten = \"127.0.0.1:9977\"\nresync = 5\n").unwrap();
    let (code, _, err) = rw(&["--config", cfg.to_str().unwrap(), "config", "validate"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("bad.toml") && err.contains("line 4") && err.contains("resync"), "{err}");

    std::fs::write(&cfg, "[daemon]\nlisten = \"localhost\"\n").unwrap();
    let (code, _, err) = rw(&["--config", cfg.to_str().unwrap(), "serve"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("daemon.listen") && err.contains("\"localhost\""), "{err}");

    let (code, _, err) = rw(&["--config", "/nonexistent/routewarden.toml", "check"]);
    assert_eq!(code, 64);
    assert!(err.contains("/nonexistent/routewarden.toml"), "{err}");
}

#[test]
fn defaults_validate_and_usage_errors_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let (code, defaults, _) = rw(&["config", "defaults"]);
    assert_eq!(code, 0);
    assert!(defaults.contains("listen = \"127.0.0.1:9977\""), "{defaults}");
    let cfg = dir.path().join("defaults.toml");
    std::fs::write(&cfg, &defaults).unwrap();
    let (code, out, err) = rw(&["--config", cfg.to_str().unwrap(), "config", "validate"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"));
    assert_eq!(rw(&["frobnicate"]).0, 64);
    assert_eq!(rw(&["check", "--output", "yaml"]).0, 64);
}

#[test]
fn unknown_wait_requirements_list_the_valid_ones() {
    let (code, _, err) = rw(&["wait", "--for", "kubeproxy"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("\"kubeproxy\"") && err.contains("chain:TABLE/CHAIN") && err.contains("no-conflict"), "{err}");
    let (code, _, err) = rw(&["wait"]);
    assert_eq!(code, 64, "{err}");
    let (code, _, err) = rw(&["wait", "--for", "no-conflict", "--timeout", "soon"]);
    assert_eq!(code, 64, "{err}");
}

#[test]
fn bad_snapshot_files_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(&file, "{\"schema_version\": 1}").unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_routewarden")).args(["check", "--snapshot"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json") && err.contains("missing field"), "{err}");
}
