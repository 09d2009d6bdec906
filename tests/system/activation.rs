//! System tests of socket activation: `routewarden serve` started by systemd's own `systemd-socket-activate`,
//! which binds the listeners first and passes them as fds 3.. with LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES, as
//! `routewarden.socket` does at boot. (The unit itself runs under a booted systemd in packaging/test/nspawn.sh.)

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use routewarden_system_tests::{self as harness, in_netns, World};

/// `systemd-socket-activate` with `listens`, the fd names (none: systemd's default) and the variables `serve` sets.
fn launcher(listens: &[&str], names: Option<&str>) -> Vec<String> {
    let mut v = vec!["systemd-socket-activate".to_string()];
    for l in listens {
        v.extend(["-l".to_string(), l.to_string()]);
    }
    if let Some(n) = names {
        v.push(format!("--fdname={n}"));
    }
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "STATE_DIRECTORY", "ROUTEWARDEN_LOG"] {
        v.extend(["-E".to_string(), var.to_string()]);
    }
    v
}

/// Waits until the launcher has bound `path` (it binds the TCP listener before it, in argument order).
fn wait_bound(path: &Path, d: &harness::Daemon, w: &World) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "the listeners were never bound: {}", d.log(w));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `GET path` on a connection and returns the whole reply.
fn ask(mut s: impl Read + Write, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

fn unix(path: &Path) -> std::os::unix::net::UnixStream {
    let s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

fn tcp(ns: &str) -> std::net::TcpStream {
    tcp_to(ns, "127.0.0.1:9977")
}

fn tcp_to(ns: &str, addr: &'static str) -> std::net::TcpStream {
    in_netns(ns, move || {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s
    })
}

#[test]
fn socket_activation_serves_the_inherited_tcp_and_unix_sockets_and_leaves_the_unix_one_at_exit() {
    if !harness::tool("systemd-socket-activate") {
        return;
    }
    let Some(mut w) = World::new("sockact-serve") else { return };
    let sock = w.dir.path().join("routewarden.sock");
    w.serve_launcher = launcher(&["127.0.0.1:9977", &sock.to_string_lossy()], Some("http:unix"));
    // No daemon.unix_socket: the inherited socket is served all the same (the unit's is the documented one).
    let mut d = w.serve("[daemon]\nresync_secs = 3600\n");
    wait_bound(&sock, &d, &w);
    // A request sent before the daemon runs waits in the held socket's queue and is answered (this connection is
    // what makes systemd-socket-activate exec the daemon).
    let early = tcp(&w.name);
    let reply = ask(early, "/healthz");
    assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("ok\n"), "{reply}\n{}", d.log(&w));
    d.wait_notify("READY=1");
    assert_eq!(d.get("/healthz").0, 200);
    let reply = ask(unix(&sock), "/status");
    assert!(reply.starts_with("HTTP/1.1 200") && reply.contains("\"verdict\""), "{reply}");
    let log = d.log(&w);
    assert!(log.contains("serving the inherited HTTP (daemon.listen) socket on 127.0.0.1:9977"), "{log}");
    assert!(log.contains(&format!("serving on the inherited unix socket {}", sock.display())), "{log}");
    // No tool the daemon runs inherits a listener: each inherited descriptor is close-on-exec.
    let pid = d.child.id();
    for fd in [3, 4] {
        let flags = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
        let flags = flags.lines().find_map(|l| l.strip_prefix("flags:")).unwrap().trim();
        let flags = u32::from_str_radix(flags, 8).unwrap();
        assert_ne!(flags & libc::O_CLOEXEC as u32, 0, "fd {fd} is not close-on-exec");
    }

    // The unix socket is systemd's: the daemon does not remove it at exit.
    d.signal(libc::SIGTERM);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the daemon did not stop: {}", d.log(&w));
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}: {}", d.log(&w));
    assert!(sock.exists(), "the daemon removed the inherited unix socket at exit");
}

#[test]
fn a_local_user_cannot_take_the_port_systemd_holds_before_the_daemon_starts() {
    if !harness::tool("systemd-socket-activate") || !harness::tool("setpriv") {
        return;
    }
    let Some(mut w) = World::new("sockact-squat") else { return };
    let sock = w.dir.path().join("routewarden.sock");
    // Without FileDescriptorName= systemd names every descriptor after its unit: the family says which is which.
    w.serve_launcher = launcher(&["127.0.0.1:9977", &sock.to_string_lossy()], None);
    let d = w.serve("[daemon]\nresync_secs = 3600\n");
    wait_bound(&sock, &d, &w);
    // An unprivileged squatter, as in issue 27, tries the port between boot and the daemon's start.
    let squatter = harness::listen_binary();
    std::fs::set_permissions(&squatter, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = w.ns(&format!(
        "setpriv --reuid=nobody --regid=nogroup --clear-groups {} 9977; echo squatter exit $?",
        squatter.display()
    ));
    assert!(out.contains("squatter exit 1"), "the squatter bound the held port: {out}");
    // The daemon starts on the first connection and answers it, not the squatter.
    let reply = ask(tcp(&w.name), "/healthz");
    assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("ok\n"), "{reply}\n{}", d.log(&w));
    d.wait_notify("READY=1");
    let reply = ask(tcp(&w.name), "/status");
    assert!(reply.starts_with("HTTP/1.1 200") && reply.contains("\"schema_version\""), "{reply}");
    let reply = ask(unix(&sock), "/healthz");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let log = d.log(&w);
    assert!(log.contains("serving the inherited HTTP (daemon.listen) socket"), "{log}");
}

#[test]
fn an_inherited_socket_of_the_wrong_family_for_its_name_is_refused_with_the_reason() {
    if !harness::tool("systemd-socket-activate") {
        return;
    }
    let Some(mut w) = World::new("sockact-wrong") else { return };
    let sock = w.dir.path().join("routewarden.sock");
    w.serve_launcher = launcher(&[&sock.to_string_lossy()], Some("http"));
    let mut d = w.serve("");
    wait_bound(&sock, &d, &w);
    // The path exists from bind(); listen() follows, so the first connect may be refused for a moment.
    let start = Instant::now();
    let _trigger = loop {
        match std::os::unix::net::UnixStream::connect(&sock) {
            Ok(s) => break s,
            Err(e) => assert!(start.elapsed() < Duration::from_secs(10), "connecting to {sock:?}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the daemon did not refuse: {}", d.log(&w));
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(3), "{}", d.log(&w));
    let log = d.log(&w);
    assert!(
        log.contains(
            "inherited descriptor 3 (\"http\") is a unix socket; the HTTP (daemon.listen) listener needs a TCP/IP one"
        ),
        "{log}"
    );
}

#[test]
fn an_inherited_socket_on_another_address_than_configured_is_served_with_a_warning_naming_both() {
    if !harness::tool("systemd-socket-activate") {
        return;
    }
    let Some(mut w) = World::new("sockact-other") else { return };
    w.serve_launcher = launcher(&["127.0.0.1:9978"], Some("http"));
    // `serve` is started with --listen 127.0.0.1:9977.
    let d = w.serve("");
    let start = Instant::now();
    let early = loop {
        let probe = in_netns(&w.name, || std::net::TcpStream::connect("127.0.0.1:9978"));
        if let Ok(s) = probe {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "9978 was never bound: {}", d.log(&w));
        std::thread::sleep(Duration::from_millis(20));
    };
    early.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let reply = ask(early, "/healthz");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}\n{}", d.log(&w));
    d.wait_notify("READY=1");
    assert!(ask(tcp_to(&w.name, "127.0.0.1:9978"), "/readyz").starts_with("HTTP/1.1 200"));
    let log = d.log(&w);
    let warning =
        "the inherited HTTP (daemon.listen) socket listens on 127.0.0.1:9978, not on --listen 127.0.0.1:9977: \
                   serving 127.0.0.1:9978";
    assert_eq!(log.matches(warning).count(), 1, "said once: {log}");
    // The configured address is not bound besides: one loopback listener, the one systemd holds.
    let refused = in_netns(&w.name, || std::net::TcpStream::connect("127.0.0.1:9977"));
    assert!(refused.is_err(), "the daemon bound the configured address too");
}
