//! Certificates made by the test (rcgen) with past and future expiry, PEM bundles, kubeconfigs with base64 data,
//! keys and corrupt files, read by the real binary with every other source disabled. Needs no privileges.

use std::process::Command;

use base64::Engine as _;

use crate::support::finding;

fn cert(cn: &str, days_from_now: i64) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec![format!("{cn}.example")]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(400);
    params.not_after = now + time::Duration::days(days_from_now);
    let key = rcgen::KeyPair::generate().unwrap();
    let c = params.self_signed(&key).unwrap();
    (c.pem(), key.serialize_pem())
}

fn check_only(config: &str, sources: &[&str]) -> (i32, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let disabled: Vec<String> = routewarden::model::SourceId::COLLECTED
        .iter()
        .map(|s| s.as_str())
        .filter(|s| !sources.contains(s))
        .map(|s| format!("\"{s}\""))
        .collect();
    std::fs::write(&cfg, format!("disabled_sources = [{}]\n{config}", disabled.join(", "))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_routewarden"))
        .arg("--config")
        .arg(&cfg)
        .args(["check", "--output", "json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap(), serde_json::from_str(&text).unwrap(), text)
}

#[test]
fn certificates_expired_expiring_bundled_in_kubeconfigs_and_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (expired, expired_key) = cert("old-kubelet", -2);
    let (soon, _) = cert("soon", 3);
    let (later, _) = cert("later", 20);
    let (fine, _) = cert("fine", 365);
    std::fs::write(d.join("kubelet-client-current.pem"), format!("{expired}{expired_key}")).unwrap();
    std::fs::write(d.join("bundle.pem"), format!("{soon}{fine}")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(later.as_bytes());
    std::fs::write(
        d.join("kubelet.conf"),
        format!("apiVersion: v1\nkind: Config\nusers:\n- name: system:node:n1\n  user:\n    client-certificate-data: {b64}\n    client-key-data: c2VjcmV0\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(d.join("only-a-key.pem"), &expired_key).unwrap();

    let config = format!("[certificates]\npaths = [\"{0}/*.pem\", \"{0}/*.conf\"]\n", d.display());
    let (code, r, text) = check_only(&config, &["certificates"]);
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(r["sources"]["certificates"]["status"], "ok");
    let expired_f = finding(&r, "certificate.expired");
    assert_eq!(expired_f["severity"], "critical");
    assert!(expired_f["evidence"][0].as_str().unwrap().contains("CN=old-kubelet"), "{expired_f:#}");
    let expiring: Vec<&serde_json::Value> =
        r["findings"].as_array().unwrap().iter().filter(|f| f["id"] == "certificate.expiring").collect();
    assert_eq!(expiring.len(), 2, "{r:#}");
    assert_eq!(expiring[0]["severity"], "critical");
    assert!(expiring[0]["evidence"].to_string().contains("CN=soon"));
    assert_eq!(expiring[1]["severity"], "warning");
    assert!(
        expiring[1]["evidence"].to_string().contains("client-certificate-data")
            && expiring[1]["evidence"].to_string().contains("CN=later")
    );
    let unreadable = finding(&r, "certificate.unreadable");
    assert!(unreadable["evidence"].to_string().contains("broken.pem"), "{unreadable:#}");
    // Certificates listed soonest first; keys never read, never shown.
    let subjects: Vec<&str> =
        r["certificates"].as_array().unwrap().iter().map(|c| c["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, vec!["CN=old-kubelet", "CN=soon", "CN=later", "CN=fine"]);
    assert!(!text.contains("PRIVATE KEY") && !text.contains("c2VjcmV0"));
}

#[test]
fn a_ca_bundle_with_two_certificates_of_one_subject_gives_two_series_and_read_errors_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A CA rotation: the old kubernetes CA expires in 3 days, the new one in 10 years; both are CN=kubernetes.
    let (old, _) = cert("kubernetes", 3);
    let (new, _) = cert("kubernetes", 3650);
    std::fs::write(d.join("ca.crt"), format!("{old}{new}")).unwrap();
    std::fs::write(
        d.join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let config = format!("[certificates]\npaths = [\"{}/*\"]\n", d.display());
    let (_, _, text) = check_only(&config, &["certificates"]);
    let report: routewarden::report::Report = serde_json::from_str(&text).unwrap();
    let metrics = routewarden::outputs::metrics::Metrics::new();
    metrics.update(&report);
    let (_, prom) = metrics.render();
    let series: Vec<&str> =
        prom.lines().filter(|l| l.starts_with("routewarden_certificate_not_after_timestamp_seconds{")).collect();
    assert_eq!(series.len(), 2, "{prom}");
    assert!(series.iter().all(|s| s.contains("CN=kubernetes") && s.contains("serial=\"") && s.contains("issuer=\"")));
    assert_ne!(series[0].split("serial=").nth(1), series[1].split("serial=").nth(1), "{series:?}");
    assert!(prom.contains("\nroutewarden_certificate_read_errors 1\n"), "{prom}");
    assert!(prom.contains("routewarden_verdict{verdict=\"critical\"} 1"), "{prom}");
    assert!(prom.contains("routewarden_verdict{verdict=\"ok\"} 0"), "{prom}");
}
