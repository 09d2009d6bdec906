//! deploy/kubernetes: every overlay renders with a real `kubectl kustomize`, every rendered manifest validates
//! against the Kubernetes schemas of 1.29 to 1.35 (`kubernetes-validate`, strict), the ConfigMap's configuration
//! passes the binary's own `config validate` (an unknown key fails), and the DaemonSet's probes name the port of
//! `daemon.listen` and paths the HTTP router serves. No root needed.

use std::path::{Path, PathBuf};
use std::process::Command;

const OVERLAYS: [&str; 4] = ["base", "overlays/exporter", "overlays/podmonitor", "overlays/taint"];
const VERSIONS: [&str; 7] = ["1.29.0", "1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn kustomize(dir: &Path) -> String {
    #[allow(clippy::disallowed_methods)] // the test runs the real tool
    let out = Command::new("kubectl").arg("kustomize").arg(dir).output().unwrap();
    assert!(out.status.success(), "kubectl kustomize {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn validate(file: &Path, version: &str) -> (bool, String) {
    #[allow(clippy::disallowed_methods)] // the test runs the real tool
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "--no-warn", "-k", version])
        .arg(file)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn config_validate(file: &Path) -> (bool, String) {
    #[allow(clippy::disallowed_methods)] // the binary under test
    let out = Command::new(routewarden_system_tests::bin())
        .arg("--config")
        .arg(file)
        .args(["config", "validate"])
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_overlay_renders_and_validates_against_kubernetes_1_29_to_1_35() {
    if !routewarden_system_tests::tool("kubectl") || !routewarden_system_tests::tool("kubernetes-validate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for overlay in OVERLAYS {
        let rendered = kustomize(&repo().join("deploy/kubernetes").join(overlay));
        let file = dir.path().join(format!("{}.yaml", overlay.replace('/', "-")));
        std::fs::write(&file, &rendered).unwrap();
        for v in VERSIONS {
            let (ok, text) = validate(&file, v);
            assert!(ok, "{overlay} against Kubernetes {v}: {text}");
        }
    }
    // The check can fail: a field of the wrong type is refused.
    let bad = dir.path().join("bad.yaml");
    let base = kustomize(&repo().join("deploy/kubernetes/base"));
    std::fs::write(&bad, base.replace("hostPID: true", "hostPID: \"yes\"")).unwrap();
    assert!(!validate(&bad, "1.35.0").0, "a wrong type must not validate");
}

#[test]
fn the_configmap_is_a_configuration_the_binary_accepts_and_the_probes_match_it() {
    let kdir = repo().join("deploy/kubernetes");
    let router = std::fs::read_to_string(repo().join("agent/src/outputs/http.rs")).unwrap();
    let daemonset = std::fs::read_to_string(kdir.join("base/daemonset.yaml")).unwrap();
    for config in ["base/config.toml", "overlays/exporter/config.toml", "overlays/taint/config.toml"] {
        let path = kdir.join(config);
        let (ok, err) = config_validate(&path);
        assert!(ok, "{config}: {err}");
        let value: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let listen = value["daemon"]["listen"].as_str().unwrap();
        let (host, port) = listen.rsplit_once(':').unwrap();
        assert!(daemonset.contains(&format!("host: {host}")), "probes on {host}");
        assert_eq!(daemonset.matches(&format!("port: {port}")).count(), 2, "both probes on port {port}");
        let metrics = value["metrics"]["listen"].as_str().unwrap();
        let mport = metrics.rsplit_once(':').unwrap().1;
        assert!(daemonset.contains(&format!("containerPort: {mport}")), "the metrics port is {mport}");
    }
    for path in ["/healthz", "/readyz"] {
        assert!(daemonset.contains(&format!("path: {path}")), "a probe on {path}");
        assert!(router.contains(&format!(".route(\"{path}\"")), "the router serves {path}");
    }
    // An unknown key in the ConfigMap fails `config validate`.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("config.toml");
    let text = std::fs::read_to_string(kdir.join("base/config.toml")).unwrap();
    std::fs::write(&bad, text.replace("state_dir =", "statedir =")).unwrap();
    assert!(!config_validate(&bad).0, "an unknown key must fail");
}
