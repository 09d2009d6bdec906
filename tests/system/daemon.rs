//! System tests of `routewarden serve`: the real binary in a network namespace, a test-owned NOTIFY_SOCKET, real
//! HTTP requests, real rule changes, signals, a real Prometheus scrape and `promtool check metrics`.

use std::time::{Duration, Instant};

use routewarden_system_tests::{self as harness, get, http_raw, in_netns, World};

const STEP1: &str = "kube-proxy-iptables-TestSyncProxyRulesRepeated-step1-initial.txt";
const OVERALL: &str = "kube-proxy-iptables-TestOverallIPTablesRules.txt";

fn status(d: &harness::Daemon) -> serde_json::Value {
    let (code, body) = d.get("/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn serve_notifies_serves_follows_changes_reloads_and_stops() {
    let Some(mut w) = World::new("serve") else { return };
    w.iptables_fixture("nft", STEP1);
    let mut d = w.serve("[daemon]\ndebounce_ms = 100\nresync_secs = 3600\n");

    let seen = d.wait_notify("READY=1");
    assert!(seen.iter().any(|m| m.contains("STATUS=")), "{seen:?}");
    let (code, _) = d.get("/readyz");
    assert_eq!(code, 200);
    assert_eq!(d.get("/healthz").0, 200);
    let r = status(&d);
    assert_eq!(r["dataplane"]["kube_proxy"]["services"], 2);
    assert_eq!(r["sources"]["processes"]["status"], "disabled");
    let (code, pretty) = d.get("/status?pretty");
    assert!(code == 200 && pretty.contains("\n  \"schema_version\": 2"), "{pretty}");
    let (code, findings) = d.get("/findings");
    assert!(code == 200 && findings.starts_with('['), "{findings}");
    d.wait_notify("WATCHDOG=1");

    // A rule change reaches /status through nftables change events (resync is an hour away). Loaded on top of
    // step 1 without flushing, the overall dump leaves 6 distinct KUBE-SVC-* chains.
    // 15 s (far below the resync) leaves a loaded CI's debug build time to collect the larger ruleset.
    w.iptables_fixture("nft", OVERALL);
    let start = Instant::now();
    loop {
        if status(&d)["dataplane"]["kube_proxy"]["services"] == 6 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "/status did not follow the rule change: {}", d.log(&w));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, metrics) = d.get("/metrics");
    assert!(metrics.contains("routewarden_kube_proxy_services 6"), "{metrics}");
    assert!(metrics.contains("routewarden_rule_changes_total"), "{metrics}");

    // A broken configuration on SIGHUP is refused; the daemon keeps serving with the old one and says why.
    let cfg = w.config();
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{good}\nbogus_key = 1\n")).unwrap();
    d.signal(libc::SIGHUP);
    let seen = d.wait_notify("config reload failed");
    assert!(seen.iter().any(|m| m.contains("RELOADING=1")), "{seen:?}");
    assert!(seen.last().unwrap().contains("bogus_key"), "{seen:?}");
    assert_eq!(d.get("/status").0, 200);
    // So is a broken rules.d file (config validate would refuse the next start), named in one STATUS= line.
    let rules = w.dir.path().join("rules.d");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("10-bad.toml"), "[[rules]]\nid = \"b\"\n").unwrap();
    let with_rules = match good.contains("[journal]\n") {
        true => good.replacen("[journal]\n", &format!("[journal]\nrules_dir = \"{}\"\n", rules.display()), 1),
        false => format!("journal.rules_dir = \"{}\"\n{good}", rules.display()),
    };
    std::fs::write(&cfg, with_rules).unwrap();
    d.signal(libc::SIGHUP);
    let seen = d.wait_notify("config reload failed: journal rules");
    let status_line = seen.last().unwrap();
    assert!(status_line.contains("10-bad.toml") && status_line.trim_end().lines().count() == 1, "{seen:?}");
    std::fs::write(&cfg, good).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_notify("READY=1");

    d.signal(libc::SIGTERM);
    d.wait_notify("STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not exit within 5 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn http_refuses_what_it_does_not_serve_and_sheds_slow_clients() {
    let Some(mut w) = World::new("serve-bad") else { return };
    let d = w.serve("[daemon]\nrequest_timeout_secs = 1\nmax_connections = 4\n");
    d.wait_notify("READY=1");
    let addr = d.addr.clone();
    in_netns(&d.ns, move || {
        assert_eq!(get(&addr, "/nope", "").0, 404);
        let reply = http_raw(
            &addr,
            b"POST /status HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        );
        assert!(reply.starts_with("HTTP/1.1 413") || reply.starts_with("HTTP/1.1 405"), "{reply}");
        let reply = http_raw(&addr, b"DELETE /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
        let reply = http_raw(&addr, b"\x00\x01garbage\r\n\r\n");
        assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 400"), "{reply:?}");
        let huge = format!("GET /status HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n", "a".repeat(1 << 20));
        let reply = http_raw(&addr, huge.as_bytes());
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 431") || reply.starts_with("HTTP/1.1 400"),
            "{}",
            &reply[..reply.len().min(80)]
        );

        // More silent connections than the cap: each is dropped after the header timeout, so a real client is
        // served within a few seconds.
        let start = Instant::now();
        let slow: Vec<_> = (0..8).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
        let (code, _) = get(&addr, "/healthz", "");
        assert_eq!(code, 200);
        assert!(start.elapsed() < Duration::from_secs(8), "slow clients held the server for {:?}", start.elapsed());
        drop(slow);
    });
}

#[test]
fn prometheus_scrapes_the_daemon_and_promtool_accepts_the_metrics() {
    let Some(mut w) = World::new("serve-prom") else { return };
    if !harness::tool("prometheus") || !harness::tool("promtool") {
        return;
    }
    w.iptables_fixture("nft", STEP1);
    let d = w.serve("");
    d.wait_notify("READY=1");

    // promtool reads the Prometheus text format; the OpenMetrics form is what the real Prometheus below scrapes.
    {
        let addr = d.addr.clone();
        let (_, body) = in_netns(&d.ns, move || get(&addr, "/metrics", ""));
        let file = w.dir.path().join("metrics.txt");
        std::fs::write(&file, &body).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("promtool check metrics < {}", file.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool: {}{}\n{body}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let cfg = w.dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: routewarden\n    static_configs:\n      - targets: ['{}']\n", d.addr),
    )
    .unwrap();
    let data = w.dir.path().join("prom-data");
    let mut prom = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", d.ns))
        .args(["prometheus", "--web.listen-address=127.0.0.1:9090"])
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ns = d.ns.clone();
    let found = in_netns(&ns, || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, body) = std::panic::catch_unwind(|| {
                get("127.0.0.1:9090", "/api/v1/query?query=routewarden_kube_proxy_services", "")
            })
            .unwrap_or((0, String::new()));
            if code == 200 && body.contains("\"routewarden_kube_proxy_services\"") {
                return body;
            }
            if Instant::now() > deadline {
                return format!("timed out; last reply {code}: {body}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    let _ = prom.kill();
    let _ = prom.wait();
    assert!(found.contains("\"2\""), "Prometheus did not store the series with value 2: {found}");
}

#[test]
fn a_notify_socket_nobody_reads_never_blocks_the_daemon() {
    let Some(mut w) = World::new("serve-stuck") else { return };
    w.iptables_fixture("nft", STEP1);
    let d = w.serve_with("[daemon]\ndebounce_ms = 100\nresync_secs = 3600\n", false);
    // With WATCHDOG_USEC=1s the daemon sends twice a second; an unread datagram socket holds about ten.
    std::thread::sleep(Duration::from_secs(8));
    // No READY can be awaited (the socket is not read): the first collection is awaited on /status instead.
    let start = Instant::now();
    loop {
        let (code, body) = d.get("/status");
        if code == 200 {
            let r: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(r["dataplane"]["kube_proxy"]["services"], 2);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no first collection: {code} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    w.iptables_fixture("nft", OVERALL);
    let start = Instant::now();
    while status(&d)["dataplane"]["kube_proxy"]["services"] != 6 {
        assert!(start.elapsed() < Duration::from_secs(5), "the collection loop is stuck: {}", d.log(&w));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_optional_unix_socket_serves_the_same_endpoints_with_mode_0660() {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let Some(mut w) = World::new("serve-unix") else { return };
    let path = w.dir.path().join("routewarden.sock");
    let d = w.serve(&format!("[daemon]\nunix_socket = \"{}\"\n", path.display()));
    d.wait_notify("READY=1");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o660);
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("ready\n"), "{reply}");
    drop(s);
    // On stop the socket is removed; a socket left by a killed run is replaced on the next start.
    d.signal(libc::SIGTERM);
    d.wait_notify("STOPPING=1");
    let start = Instant::now();
    while path.exists() {
        assert!(start.elapsed() < Duration::from_secs(5), "the unix socket was left behind on stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_unix_socket_path_naming_a_regular_file_is_refused_and_the_file_kept() {
    let Some(mut w) = World::new("serve-unix-file") else { return };
    let path = w.dir.path().join("precious.txt");
    std::fs::write(&path, "keep me\n").unwrap();
    let mut d = w.serve(&format!("[daemon]\nunix_socket = \"{}\"\n", path.display()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the daemon did not refuse: {}", d.log(&w));
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "{status}");
    let log = d.log(&w);
    assert!(log.contains("is not a socket; refusing to replace it") && log.contains("precious.txt"), "{log}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me\n", "the file was touched");
}

#[test]
fn signals_are_answered_while_a_collection_hangs() {
    let Some(mut w) = World::new("serve-hang") else { return };
    w.iptables_restore("legacy", false, "*filter\n:KUBE-FIREWALL - [0:0]\nCOMMIT\n");
    // The IPVS table is a FIFO nobody writes: reading it blocks, as a read from a hung file system would.
    let fifo = w.dir.path().join("ip_vs");
    harness::sh(&format!("mkfifo {}", fifo.display()));
    let mut d = w.serve("");
    // The first collection hangs in the read; the loop still answers the watchdog, SIGHUP and SIGTERM.
    d.wait_notify("WATCHDOG=1");
    assert_eq!(d.get("/healthz").0, 200);
    assert_eq!(d.get("/readyz").0, 503, "ready before the first collection finished");
    // SIGHUP is handled at once, and before the unit is ready it must not tell systemd READY=1 (units ordered
    // after it would start too early).
    let start = Instant::now();
    d.signal(libc::SIGHUP);
    while !d.log(&w).contains("configuration reloaded") {
        // The collection never ends, so any bound proves it; 15 s leaves a loaded CI time to reload settings.
        assert!(start.elapsed() < Duration::from_secs(15), "SIGHUP waited for the collection: {}", d.log(&w));
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = d.notifications_for(Duration::from_millis(300));
    assert!(!seen.iter().any(|m| m.contains("READY=1") || m.contains("RELOADING=1")), "{seen:?}");
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    d.wait_notify("STOPPING=1");
    loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            assert!(s.success(), "{s}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "SIGTERM waited for the collection: {}", d.log(&w));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet), waiting up to 5 s.
fn ended(pid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_daemon_takes_its_hanging_tool_with_it() {
    let Some(mut w) = World::new("serve-kill9") else { return };
    // The daemon's one long-running tool is its journalctl (collection runs none since the legacy tables are read
    // from the kernel): one that hangs without a word.
    let hang = w.dir.path().join("hanging-journalctl");
    let pidfile = w.dir.path().join("tool.pid");
    std::fs::write(&hang, format!("#!/bin/sh\necho $$ > {}\nexec sleep 60\n", pidfile.display())).unwrap();
    harness::sh(&format!("chmod +x {}", hang.display()));
    let mut d = w.serve(&format!("[journal]\nenabled = true\njournalctl = \"{}\"\n", hang.display()));
    d.wait_notify("WATCHDOG=1");
    let start = Instant::now();
    let pid = loop {
        match std::fs::read_to_string(&pidfile) {
            Ok(p) if !p.trim().is_empty() => break p.trim().to_string(),
            _ => assert!(start.elapsed() < Duration::from_secs(10), "the tool never started: {}", d.log(&w)),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    d.signal(libc::SIGKILL);
    let _ = d.child.wait();
    assert!(ended(&pid), "the tool {pid} outlived the daemon killed with SIGKILL");
}
