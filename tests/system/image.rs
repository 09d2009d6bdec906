//! The container image (`cargo xtask image`; the archive named by `ROUTEWARDEN_IMAGE`) under podman with runc in a
//! test world: the world's network namespace as the pod's host network, host PID, the host's `/` at `/host`
//! read-only (recursively, so bpffs and cgroupfs come along), the least capabilities docs/container.md lists. The
//! containerized daemon's `/status` must give the verdict, findings and proxies the host binary gives on the same
//! world; a run with the bpffs mount left out must fail the bpf source by name while the others report.

use std::process::Command;
use std::sync::OnceLock;

use routewarden_system_tests::{self as harness, World};

/// The environment variable naming the OCI archive `cargo xtask image` wrote.
const IMAGE_ENV: &str = "ROUTEWARDEN_IMAGE";
/// Capabilities the daemon needs in the container (docs/container.md says which call needs each), measured by
/// `the_image_needs_each_capability_it_asks_for_and_fits_its_memory_limit`: with SYS_ADMIN, BPF and PERFMON change
/// nothing. (The DaemonSet adds NET_RAW for `iptables-legacy-save`'s raw socket, which these worlds do not need.)
const CAPS: &str = "SYS_ADMIN,NET_ADMIN,SYS_PTRACE,DAC_READ_SEARCH";

const CLUSTER_IP: u8 = 0;
const NODEPORT: u8 = 1 << 1;

/// Loads the image once per test run; `None` (after printing why, failing under CI=true) without podman or archive.
fn image(test: &str) -> Option<String> {
    static LOADED: OnceLock<Result<String, String>> = OnceLock::new();
    if !harness::privileged(test) || !harness::tool("podman") || !harness::tool("runc") {
        return None;
    }
    let loaded = LOADED.get_or_init(|| {
        let Some(archive) = std::env::var_os(IMAGE_ENV).filter(|p| !p.is_empty()) else {
            return Err(format!("{IMAGE_ENV} is not set (cargo xtask test builds the image and sets it)"));
        };
        let out = Command::new("podman").arg("load").arg("-q").arg("-i").arg(&archive).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!("podman load failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        // "Loaded image: localhost/routewarden:0.1.0"
        text.lines()
            .find_map(|l| l.strip_prefix("Loaded image: ").or_else(|| l.strip_prefix("Loaded image(s): ")))
            .map(|s| s.trim().to_string())
            .ok_or_else(|| format!("podman load said {text:?}"))
    });
    match loaded {
        Ok(name) => Some(name.clone()),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{e} (CI=true turns this skip into a failure)")
        }
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            None
        }
    }
}

/// A container of the image in world `w`, removed (by its name) on drop with the procfs of its world's processes.
struct Pod {
    name: String,
    holder: std::process::Child,
    proc: std::path::PathBuf,
}

impl Pod {
    /// The container's log (`podman logs`), for a failure message.
    fn log(&self) -> String {
        let out = Command::new("podman").args(["logs", &self.name]).output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rm", "-f", "-t", "0", &self.name]).output();
        let _ = Command::new("umount").arg("-l").arg(&self.proc).output();
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Starts the world's processes (`names`) in a pid namespace of their own inside the world's netns, with its procfs
/// mounted at `<world>/proc-ns` for the container's `proc_dir`, then `routewarden serve` in a container.
fn pod(w: &mut World, image: &str, names: &[&str], extra_podman: &[&str]) -> Pod {
    let dir = w.dir.path().to_path_buf();
    let proc = dir.join("proc-ns");
    std::fs::create_dir_all(&proc).unwrap();
    let mut script = String::new();
    for c in names {
        script.push_str(&format!("cp /bin/sleep {d}/{c} && {d}/{c} 600 & ", d = dir.display()));
    }
    script.push_str(&format!("mount -t proc proc {} && exec sleep 600", proc.display()));
    let holder = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", w.name))
        // --kill-child: when the holder is killed, the namespace's first process and with it every process of
        // the namespace end too (a second pod in the same world copies the same binaries).
        .args(["unshare", "--pid", "--fork", "--kill-child", "sh", "-c", &script])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !names.iter().all(|n| {
        std::fs::read_dir(&proc).is_ok_and(|d| {
            d.flatten().any(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == *n))
        })
    }) {
        assert!(std::time::Instant::now() < deadline, "the world's processes did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::create_dir_all(dir.join("state")).unwrap();
    // The journal off unless the test gives its own `[journal]` (then last in the file).
    let journal = if w.config_extra.contains("[journal]") { "" } else { "[journal]\nenabled = false\n" };
    w.config_extra = format!("host_root = \"/host\"\nproc_dir = \"{}\"\n{}\n{journal}", proc.display(), w.config_extra);
    let config = w.config();
    let name = format!("{}-pod", w.name);
    let _ = Command::new("podman").args(["rm", "-f", "-t", "0", &name]).output();
    let pod = Pod { name: name.clone(), holder, proc };
    let out = Command::new("podman")
        .args(["run", "-d", "--name", &name, "--runtime", "runc"])
        .args(["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"])
        .arg(if extra_podman.contains(&"--network=none") {
            "--network=none".to_string()
        } else {
            format!("--network=ns:/run/netns/{}", w.name)
        })
        .args(["--pid=host", "--read-only", "--cap-drop=all"])
        .arg(format!("--cap-add={}", extra_podman.iter().find_map(|a| a.strip_prefix("--caps=")).unwrap_or(CAPS)))
        .args(["-v", "/:/host:ro,rslave"])
        .arg("-v")
        .arg(format!(
            "{}:/var/lib/routewarden{}",
            dir.join("state").display(),
            if extra_podman.contains(&"--state-ro") { ":ro" } else { "" }
        ))
        .args(
            extra_podman
                .iter()
                .filter(|a| !a.starts_with("--network") && **a != "--state-ro" && !a.starts_with("--caps=")),
        )
        .arg(image)
        .arg("--config")
        .arg(format!("/host{}", config.display()))
        .args(["serve", "--listen", "127.0.0.1:9977"])
        .output()
        .unwrap();
    assert!(out.status.success(), "podman run failed: {}", String::from_utf8_lossy(&out.stderr));
    pod
}

/// `/status` of the containerized daemon, once it has a report.
fn status(w: &World, pod: &Pod) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let up = harness::in_netns(&w.name, || std::net::TcpStream::connect("127.0.0.1:9977").is_ok());
        let (code, body) = if up {
            harness::in_netns(&w.name, || harness::get("127.0.0.1:9977", "/status", ""))
        } else {
            (0, String::new())
        };
        if code == 200 {
            return serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"));
        }
        if std::time::Instant::now() > deadline {
            panic!("no /status from the container ({code} {body}); its log:\n{}", pod.log());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// What must be equal between the host binary and the container: verdict, finding ids with severities, proxies.
fn decision(r: &serde_json::Value) -> serde_json::Value {
    let r = r.get("report").unwrap_or(r);
    let findings: Vec<(String, String)> = r["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| (f["id"].as_str().unwrap_or("").into(), f["severity"].as_str().unwrap_or("").into()))
                .collect()
        })
        .unwrap_or_default();
    let failed: Vec<String> = r["sources"]
        .as_object()
        .map(|m| m.iter().filter(|(_, v)| v["status"] == "failed").map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    // Proxies without their evidence: it names pids, which differ between the two pid namespaces.
    let mut proxies = r["dataplane"]["proxies"].clone();
    for p in proxies.as_array_mut().into_iter().flatten() {
        p.as_object_mut().map(|o| o.remove("evidence"));
    }
    serde_json::json!({
        "verdict": r["verdict"],
        "findings": findings,
        "proxies": proxies,
        "conflicts": r["dataplane"]["conflicts"],
        "failed_sources": failed,
    })
}

fn same_as_the_host(mut w: World, procs: &[&str]) {
    let Some(image) = image(&w.name.clone()) else { return };
    for p in procs {
        w.process(p);
    }
    let (_, host) = w.check();
    let pod = pod(&mut w, &image, procs, &[]);
    let got = status(&w, &pod);
    assert_eq!(decision(&got), decision(&host), "container:\n{got:#}\nhost:\n{host:#}");
}

#[test]
fn the_image_sees_a_kube_proxy_and_cilium_conflict_as_the_host_binary_does() {
    let Some(mut w) = World::new("img-conflict") else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestOverallIPTablesRules.txt");
    w.veth("cilium_host", "cilium_net");
    w.socket_lb();
    w.lb4_map(&[([10, 96, 0, 1], 443, CLUSTER_IP)]);
    same_as_the_host(w, &["kube-proxy", "cilium-agent"]);
}

#[test]
fn the_image_sees_a_healthy_cilium_kpr_node_as_the_host_binary_does() {
    let Some(mut w) = World::new("img-kpr") else { return };
    w.iptables_restore("nft", true, "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n");
    w.veth("cilium_host", "cilium_net");
    w.veth("eth0", "eth0peer");
    w.socket_lb();
    w.tc_ingress("eth0");
    w.lb4_map(&[([10, 96, 0, 1], 443, CLUSTER_IP), ([0, 0, 0, 0], 30080, NODEPORT)]);
    same_as_the_host(w, &["cilium-agent"]);
}

#[test]
fn the_image_sees_stale_kube_proxy_rules_as_the_host_binary_does() {
    let Some(w) = World::new("img-stale") else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    same_as_the_host(w, &[]);
}

#[test]
fn the_image_without_the_bpffs_mount_fails_the_bpf_source_by_name() {
    let Some(mut w) = World::new("img-nobpffs") else { return };
    let Some(image) = image(&w.name.clone()) else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    // A tmpfs over the host's bpffs below /host: what a DaemonSet without the bpffs hostPath volume sees.
    let pod = pod(&mut w, &image, &[], &["--mount", "type=tmpfs,destination=/host/sys/fs/bpf,notmpcopyup"]);
    let got = status(&w, &pod);
    let r = got.get("report").unwrap_or(&got);
    let bpf = &r["sources"]["bpf"];
    assert_eq!(bpf["status"], "failed", "{got:#}");
    let err = bpf["error"].to_string();
    assert!(err.contains("is not a bpffs mount") && err.contains("/host/sys/fs/bpf"), "{err}");
    assert_eq!(r["sources"]["iptables-legacy"]["status"], "ok", "{got:#}");
    assert_eq!(r["sources"]["nftables"]["status"], "ok", "{got:#}");
}

#[test]
fn the_image_without_host_network_fails_the_network_sources_by_name() {
    let Some(mut w) = World::new("img-nonet") else { return };
    let Some(image) = image(&w.name.clone()) else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    // A network namespace of its own: what a pod without hostNetwork gets; `check` with the image's configuration.
    let pod = pod(&mut w, &image, &[], &["--network=none"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let report: serde_json::Value = loop {
        let out = Command::new("podman")
            .args(["exec", &pod.name, "routewarden", "check", "--output", "json"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Ok(v) = serde_json::from_str(&text) {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no report from the container: {text}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    for source in ["iptables-legacy", "nftables", "links", "routes"] {
        let s = &report["sources"][source];
        assert_eq!(s["status"], "failed", "{source}: {report:#}");
        // On this machine the host's PID 1 refuses the namespace link even with CAP_SYS_PTRACE (see the report):
        // either message keeps the container's own netns from being read as the node's.
        let e = s["error"].to_string();
        assert!(
            e.contains("not in the host's network namespace") || e.contains("cannot read /host/proc/1/ns/net"),
            "{source}: {s}"
        );
    }
    assert_ne!(report["verdict"], "ok", "a container that cannot see the node must not say all is well: {report:#}");
}

/// The kubelet's CNI line as it logs it (tests/system/journal.rs has the corpus it comes from).
const CNI_LINE: &str = r#"E0102 10:00:00.123456    1234 kubelet.go:2855] "Container runtime network not ready" networkReady="NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized""#;

fn now_usec() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

/// A journal directory of the world, with three CNI lines written by systemd-journal-remote, and the `[journal]`
/// section that points the container's daemon at it (through /host).
fn cni_journal(w: &mut World) -> std::path::PathBuf {
    let jdir = w.dir.path().join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let now = now_usec();
    let cni = CNI_LINE.as_bytes();
    let k = "kubelet.service";
    harness::journal_file(
        &jdir.join("a.journal"),
        &[(now - 30_000_000, k, cni), (now - 20_000_000, k, cni), (now - 10_000_000, k, cni)],
    );
    w.config_extra.push_str(&format!("\n[journal]\ndirectory = \"/host{}\"\nlookback_secs = 3600\n", jdir.display()));
    jdir
}

fn journal_lines(r: &serde_json::Value) -> u64 {
    r["daemon"]["journal"]["lines"]["kubelet.service"].as_u64().unwrap_or(0)
}

/// `/status` once `ready` holds (polled for 30 s).
fn status_when(w: &World, pod: &Pod, what: &str, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = status(w, pod);
        if ready(&r) {
            return r;
        }
        if std::time::Instant::now() > deadline {
            panic!("no {what} in the container's /status: {r:#}\nits log:\n{}", pod.log());
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn the_image_reads_the_hosts_journal_and_its_cursor_survives_a_container_restart() {
    if !harness::journal_tools() {
        return;
    }
    let Some(mut w) = World::new("img-journal") else { return };
    let Some(image) = image(&w.name.clone()) else { return };
    let jdir = cni_journal(&mut w);
    let pod = pod(&mut w, &image, &[], &[]);
    let r = status_when(&w, &pod, "journal finding", |r| {
        r["findings"].as_array().is_some_and(|f| f.iter().any(|f| f["id"] == "cni.not-ready")) && journal_lines(r) == 3
    });
    assert_eq!(r["sources"]["journal"]["status"], "ok", "{r:#}");
    let cursor = w.dir.path().join("state/journal.cursor");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cursor.exists() {
        assert!(std::time::Instant::now() < deadline, "no cursor in the hostPath state directory");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A pod restart: the same state directory, one entry written while it was down; only that one is counted.
    let out = Command::new("podman").args(["stop", "-t", "5", &pod.name]).output().unwrap();
    assert!(out.status.success(), "podman stop: {}", String::from_utf8_lossy(&out.stderr));
    let later = now_usec();
    harness::journal_file(&jdir.join("b.journal"), &[(later, "kubelet.service", CNI_LINE.as_bytes())]);
    let out = Command::new("podman").args(["start", &pod.name]).output().unwrap();
    assert!(out.status.success(), "podman start: {}", String::from_utf8_lossy(&out.stderr));
    status_when(&w, &pod, "the new entry after the restart", |r| {
        r["daemon"]["collections"].as_u64().is_some_and(|c| c >= 1) && journal_lines(r) >= 1
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let r2 = status(&w, &pod);
    assert_eq!(journal_lines(&r2), 1, "entries before the saved cursor were counted again: {r2:#}");
    assert!(
        r2["findings"].as_array().unwrap().iter().any(|f| f["id"] == "cni.not-ready"),
        "the finding survives the restart (its window is replayed, nothing counted twice): {r2:#}"
    );
}

#[test]
fn the_image_with_a_read_only_state_directory_fails_the_journal_source_only() {
    if !harness::journal_tools() {
        return;
    }
    let Some(mut w) = World::new("img-state-ro") else { return };
    let Some(image) = image(&w.name.clone()) else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt");
    cni_journal(&mut w);
    let pod = pod(&mut w, &image, &[], &["--state-ro"]);
    let r = status_when(&w, &pod, "the journal source failing on its state directory, and its finding", |r| {
        r["sources"]["journal"]["status"] == "failed"
            && r["findings"].as_array().is_some_and(|f| f.iter().any(|f| f["id"] == "cni.not-ready"))
    });
    let err = r["sources"]["journal"]["error"].to_string();
    assert!(err.contains("Read-only file system") && err.contains("/var/lib/routewarden"), "{err}");
    // The journal is still read and the other sources report.
    assert!(r["findings"].as_array().unwrap().iter().any(|f| f["id"] == "cni.not-ready"), "{r:#}");
    assert!(r["findings"].as_array().unwrap().iter().any(|f| f["id"] == "kube-proxy.stale-rules"), "{r:#}");
    assert_eq!(r["sources"]["nftables"]["status"], "ok", "{r:#}");
}

/// The failed sources, certificate read errors and decision of one container run, for comparing runs.
fn outcome(r: &serde_json::Value) -> (Vec<String>, u64, serde_json::Value) {
    let r = r.get("report").unwrap_or(r);
    let failed = r["sources"]
        .as_object()
        .map(|m| m.iter().filter(|(_, v)| v["status"] == "failed").map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    (failed, r["certificate_read_errors"].as_u64().unwrap_or(0), decision(r))
}

/// The least privilege, measured: a conflict world (kube-proxy's nft rules, Cilium's socket-LB and map, both
/// processes, a kubelet certificate only its owner may read) read by the container with every capability of
/// [`CAPS`], then once without each. Each capability left out must change what the container sees (a source
/// fails, a certificate cannot be read, or the decision differs): one that changes nothing is not needed and must
/// go from CAPS, docs/container.md and the DaemonSet. Also the daemon's peak memory, against the DaemonSet's limit.
#[test]
fn the_image_needs_each_capability_it_asks_for_and_fits_its_memory_limit() {
    let Some(mut w) = World::new("img-caps") else { return };
    let Some(image) = image(&w.name.clone()) else { return };
    w.iptables_fixture("nft", "kube-proxy-iptables-TestOverallIPTablesRules.txt");
    w.veth("cilium_host", "cilium_net");
    w.socket_lb();
    w.lb4_map(&[([10, 96, 0, 1], 443, CLUSTER_IP)]);
    for p in ["kube-proxy", "cilium-agent"] {
        w.process(p);
    }
    // A kubelet client certificate in a directory only uid 1000 may enter (as on nodes where the kubelet's
    // files belong to another user): root without CAP_DAC_READ_SEARCH (or DAC_OVERRIDE) cannot read it.
    let pki = w.dir.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["node".to_string()]).unwrap().self_signed(&key).unwrap();
    std::fs::write(pki.join("kubelet-client-current.pem"), cert.pem()).unwrap();
    harness::sh(&format!("chown -R 1000:1000 {p} && chmod 0700 {p} && chmod 0600 {p}/*", p = pki.display()));
    w.config_extra.push_str(&format!("\n[certificates]\npaths = [\"{}/*.pem\"]\n", pki.display()));
    let base_config = w.config_extra.clone();

    let run = |w: &mut World, caps: &str| {
        w.config_extra = base_config.clone();
        let pod = pod(w, &image, &["kube-proxy", "cilium-agent"], &[&format!("--caps={caps}")]);
        let r = status(w, &pod);
        let pid = Command::new("podman").args(["inspect", "-f", "{{.State.Pid}}", &pod.name]).output().unwrap();
        let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
        let hwm_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| {
                        l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                    })
                    .flatten()
            })
            .unwrap_or(0);
        (outcome(&r), hwm_kb)
    };
    let (full, hwm_kb) = run(&mut w, CAPS);
    assert!(full.0.is_empty() && full.1 == 0, "with every capability nothing fails: {full:?}");
    eprintln!("peak RSS of the containerized daemon: {} KiB", hwm_kb);
    assert!(hwm_kb > 0 && hwm_kb < 256 * 1024, "peak RSS {hwm_kb} KiB against the DaemonSet's 256Mi limit");
    let mut table = Vec::new();
    let mut unneeded = Vec::new();
    for cap in CAPS.split(',') {
        let fewer: Vec<&str> = CAPS.split(',').filter(|c| *c != cap).collect();
        let (got, _) = run(&mut w, &fewer.join(","));
        if got == full {
            unneeded.push(cap);
        }
        let same = if got.2 == full.2 { "same decision" } else { "another decision" };
        table.push(format!("without {cap}: failed sources {:?}, certificate read errors {}, {same}", got.0, got.1));
    }
    eprintln!("{}", table.join("\n"));
    assert!(unneeded.is_empty(), "{unneeded:?} change nothing the container sees: drop them from CAPS and docs");
}
