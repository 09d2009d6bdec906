//! Neighbouring failures: certificates made by the test (rcgen) with past and future expiry, PEM bundles,
//! kubeconfigs with base64 data, keys and corrupt files; NFS mounts (mountinfo under the host root) to a ClusterIP
//! under real socket-LB test programs; CNI configuration; kube-proxy's own endpoints answered by a test server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::process::Command;

use base64::Engine as _;
use common::{finding, ids, World};

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

const MOUNTINFO: &str = "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n\
512 22 0:55 / /var/lib/kubelet/pods/0b3c/volumes/kubernetes.io~nfs/data rw,relatime shared:300 - nfs4 10.96.0.20:/export rw,vers=4.2,addr=10.96.0.20,clientaddr=10.0.0.5\n\
513 22 0:56 / /mnt/backup rw,relatime - nfs4 192.168.1.5:/backup rw,vers=4.2,addr=192.168.1.5\n\
514 22 0:57 / /mnt/cidr rw,relatime - nfs 10.100.0.7:/data rw,vers=3,addr=10.100.0.7\n";

#[test]
fn nfs_to_a_clusterip_under_socket_lb() {
    let Some(mut w) = World::new("nfs") else { return };
    let mi = w.dir.path().join("mountinfo");
    std::fs::write(&mi, MOUNTINFO).unwrap();
    w.lb4_map(&[([10, 96, 0, 20], 2049, 0)]);
    w.config_extra = format!("mountinfo = \"{}\"\n", mi.display());
    let (_, r) = w.check();
    assert!(!ids(&r).contains(&"nfs.clusterip-socket-lb".to_string()), "no socket-LB yet: {r:#}");

    w.socket_lb();
    let (_, r) = w.check();
    let f = finding(&r, "nfs.clusterip-socket-lb");
    let ev = f["evidence"].to_string();
    assert!(ev.contains("kubernetes.io~nfs/data") && ev.contains("10.96.0.20"), "{ev}");
    assert!(!ev.contains("192.168.1.5") && !ev.contains("10.100.0.7"), "{ev}");

    // A configured Service CIDR covers ClusterIPs that are not in Cilium's map.
    w.config_extra = format!("mountinfo = \"{}\"\nservice_cidrs = [\"10.96.0.0/12\"]\n", mi.display());
    let (_, r) = w.check();
    assert!(finding(&r, "nfs.clusterip-socket-lb")["evidence"].to_string().contains("10.100.0.7"));
}

#[test]
fn cni_configuration_owner_and_missing_config() {
    let Some(mut w) = World::new("cni") else { return };
    let cni = w.dir.path().join("net.d");
    std::fs::create_dir(&cni).unwrap();
    w.config_extra = format!("cni_dir = \"{}\"\n", cni.display());
    w.process("kubelet");
    let (_, r) = w.check();
    assert_eq!(finding(&r, "cni.config-missing")["severity"], "critical");

    std::fs::write(cni.join("00-broken.conf"), "{ not json").unwrap();
    std::fs::write(
        cni.join("10-flannel.conflist"),
        r#"{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
    )
    .unwrap();
    std::fs::write(
        cni.join("05-cilium.conflist"),
        r#"{"cniVersion":"0.3.1","name":"cilium","plugins":[{"type":"cilium-cni"}]}"#,
    )
    .unwrap();
    let (_, r) = w.check();
    assert!(!ids(&r).contains(&"cni.config-missing".to_string()));
    assert_eq!(r["dataplane"]["cni"]["owner"], "cilium", "the first usable file in name order: {r:#}");
    assert_eq!(r["dataplane"]["cni"]["file"], "05-cilium.conflist");
}

/// Serves `answers` (path -> (status, body)) on `addr` inside the world's namespace until `count` requests.
fn serve_in(
    ns: &str,
    addr: &'static str,
    answers: Vec<(&'static str, u16, &'static str)>,
    count: usize,
) -> std::thread::JoinHandle<()> {
    let path = format!("/run/netns/{ns}");
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on this thread only.
        assert_eq!(unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::CLONE_NEWNET) }, 0);
        let l = std::net::TcpListener::bind(addr).unwrap();
        tx.send(()).unwrap();
        for stream in l.incoming().take(count) {
            let mut s = stream.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let p = req.split_whitespace().nth(1).unwrap_or("");
            let (code, body) =
                answers.iter().find(|(ap, _, _)| *ap == p).map(|(_, c, b)| (*c, *b)).unwrap_or((404, ""));
            let _ = write!(s, "HTTP/1.0 {code} X\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        }
    });
    rx.recv().unwrap();
    h
}

#[test]
fn kube_proxy_reporting_another_mode_or_unhealthy() {
    let Some(mut w) = World::new("kp-api") else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    w.process("kube-proxy");
    let a = serve_in(&w.name, "127.0.0.1:10249", vec![("/proxyMode", 200, "ipvs")], 1);
    let b = serve_in(&w.name, "127.0.0.1:10256", vec![("/healthz", 503, "{\"lastUpdated\": \"\"}")], 1);
    let (_, r) = w.check();
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(r["dataplane"]["kube_proxy"]["reported_mode"], "ipvs");
    assert_eq!(r["dataplane"]["kube_proxy"]["healthz_status"], 503);
    assert!(finding(&r, "kube-proxy.mode-mismatch")["summary"]
        .as_str()
        .unwrap()
        .contains("ipvs mode, but its rules show iptables"));
    assert_eq!(finding(&r, "kube-proxy.unhealthy")["severity"], "warning");

    // Nothing listening is normal: no findings from it, and the rules still decide.
    let (code, r) = w.check();
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["dataplane"]["kube_proxy"]["reported_mode"], serde_json::Value::Null);
}
