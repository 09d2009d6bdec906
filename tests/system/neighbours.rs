//! Neighbouring failures in worlds: NFS mounts (mountinfo under the host root) to a ClusterIP under real socket-LB
//! test programs; CNI configuration; kube-proxy's own endpoints answered by a test server inside the namespace.
//! The certificate tests need no privileges and live in the agent crate.

use std::io::{Read, Write};

use routewarden_system_tests::{finding, ids, World};

const MOUNTINFO: &str = "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n\
512 22 0:55 / /var/lib/kubelet/pods/0b3c/volumes/kubernetes.io~nfs/data rw,relatime shared:300 - nfs4 10.96.0.20:/export rw,vers=4.2,addr=10.96.0.20,clientaddr=10.0.0.5\n\
513 22 0:56 / /mnt/backup rw,relatime - nfs4 192.168.1.5:/backup rw,vers=4.2,addr=192.168.1.5\n\
514 22 0:57 / /mnt/cidr rw,relatime - nfs 10.100.0.7:/data rw,vers=3,addr=10.100.0.7\n";

#[test]
fn nfs_to_a_clusterip_under_socket_lb() {
    let Some(mut w) = World::new("nfs") else { return };
    w.process("cilium-agent");
    let mi = w.dir.path().join("mountinfo");
    std::fs::write(&mi, MOUNTINFO).unwrap();
    w.lb4_map(&[([10, 96, 0, 20], 2049, 0)]);
    w.config_extra = format!("mountinfo = \"{}\"\n", mi.display());
    let (_, r) = w.check();
    w.assert_recorded("nfs_to_a_clusterip_under_socket_lb-without-socket-lb");
    assert!(!ids(&r).contains(&"nfs.clusterip-socket-lb".to_string()), "no socket-LB yet: {r:#}");

    w.socket_lb();
    let (_, r) = w.check();
    w.assert_recorded("nfs_to_a_clusterip_under_socket_lb-with-socket-lb");
    let f = finding(&r, "nfs.clusterip-socket-lb");
    let ev = f["evidence"].to_string();
    assert!(ev.contains("kubernetes.io~nfs/data") && ev.contains("10.96.0.20"), "{ev}");
    assert!(!ev.contains("192.168.1.5") && !ev.contains("10.100.0.7"), "{ev}");

    // A configured Service CIDR covers ClusterIPs that are not in Cilium's map.
    w.config_extra = format!("mountinfo = \"{}\"\nservice_cidrs = [\"10.96.0.0/12\"]\n", mi.display());
    let (_, r) = w.check();
    w.assert_recorded("nfs_to_a_clusterip_under_socket_lb-service-cidr");
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
    w.assert_recorded("cni_configuration_owner_and_missing_config-empty-dir");
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
    w.assert_recorded("cni_configuration_owner_and_missing_config-configs");
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
    // The answers come from a process named kube-proxy that owns the listening sockets.
    let answer = env!("CARGO_BIN_EXE_answer-http");
    w.server(answer, "kube-proxy", "127.0.0.1:10249", &[("/proxyMode", 200, "ipvs")]);
    w.server(answer, "kube-proxy", "127.0.0.1:10256", &[("/healthz", 503, "{}")]);
    let (_, r) = w.check();
    w.assert_recorded("kube_proxy_reporting_another_mode_or_unhealthy-answering");
    assert_eq!(r["dataplane"]["kube_proxy"]["reported_mode"], "ipvs");
    let evidence = finding(&r, "kube-proxy.mode-mismatch")["evidence"][0].as_str().unwrap().to_string();
    assert!(evidence.contains("(kube-proxy), uid 0"), "the socket's owner is in the evidence: {evidence}");
    assert_eq!(r["dataplane"]["kube_proxy"]["healthz_status"], 503);
    assert!(finding(&r, "kube-proxy.mode-mismatch")["summary"]
        .as_str()
        .unwrap()
        .contains("ipvs mode, but its rules show iptables"));
    assert_eq!(finding(&r, "kube-proxy.unhealthy")["severity"], "warning");

    // An answer from a socket no kube-proxy owns (this test's own thread, outside routewarden's pid namespace)
    // is ignored and said; the rules decide as if nobody answered.
    w.clear_servers();
    let squatter = serve_in(&w.name, "127.0.0.1:10249", vec![("/proxyMode", 200, "ipvs")], 1);
    let (code, r) = w.check();
    squatter.join().unwrap();
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["dataplane"]["kube_proxy"]["reported_mode"], serde_json::Value::Null);
    let ignored = finding(&r, "kube-proxy.untrusted-answer");
    assert_eq!(ignored["severity"], "info");
    assert!(ignored["evidence"][0].as_str().unwrap().contains("answered \"ipvs\", but"), "{ignored:#}");
    assert!(!ids(&r).contains(&"kube-proxy.mode-mismatch".to_string()), "{r:#}");

    // Nothing listening is normal: no findings from it, and the rules still decide.
    let (code, r) = w.check();
    w.assert_recorded("kube_proxy_reporting_another_mode_or_unhealthy-silent");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["dataplane"]["kube_proxy"]["reported_mode"], serde_json::Value::Null);
}
