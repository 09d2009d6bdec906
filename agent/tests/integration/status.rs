//! `routewarden status` against a real `routewarden serve` (every node source disabled or pointed at a missing
//! directory, so it needs no privileges and its verdict is known), and against no daemon, a daemon that never
//! answers, and listeners that answer something other than a routewarden report.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Every source `serve` collects, disabled: the daemon reads nothing of the node.
const ALL_SOURCES: &str = "[\"iptables-legacy\", \"nftables\", \"links\", \"ipvs\", \"bpf\", \"processes\", \
\"certificates\", \"mounts\", \"cni\", \"kube-proxy-api\", \"cilium-agent\", \"routes\"]";

fn rw(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_routewarden")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Like `rw`, but kills `status` after 10 s: a client without a deadline fails here rather than hanging the test.
fn rw_bounded(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_routewarden"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("routewarden {args:?} was still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A loopback port nobody listens on (bound once and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real `routewarden serve` on a unix socket and a loopback port, killed on drop.
struct Served {
    child: Child,
    socket: PathBuf,
    port: u16,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` with `extra` configuration (before `[daemon]`) and waits (up to 20 s) until its socket answers
/// `/status` with a report.
fn serve(extra: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("routewarden.sock");
    let port = free_port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{extra}\n[daemon]\nlisten = \"127.0.0.1:{port}\"\nunix_socket = \"{}\"\nresync_secs = 3600\n\
             [journal]\nenabled = false\n",
            socket.display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_routewarden"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("STATE_DIRECTORY", dir.path().join("state"))
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let served = Served { child, socket, port, config, _dir: dir };
    let start = Instant::now();
    while raw_status(&served.socket).is_none() {
        let log = std::fs::read_to_string(served._dir.path().join("serve.log")).unwrap_or_default();
        assert!(start.elapsed() < Duration::from_secs(20), "serve did not answer /status within 20 s: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    served
}

/// `GET /status` over the unix socket by hand: the body of a 200 answer.
fn raw_status(socket: &Path) -> Option<String> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

#[test]
fn status_shows_what_the_running_daemon_sees_and_exits_as_its_report_says() {
    let d = serve(&format!("disabled_sources = {ALL_SOURCES}"));
    let sock = d.socket.to_str().unwrap();
    let cfg = d.config.to_str().unwrap();

    // The configured daemon.unix_socket, by default: the header names it, then check's view, then the daemon's.
    let (code, out, err) = rw(&["--config", cfg, "status"]);
    assert_eq!(code, 1, "coverage.incomplete is a warning: {out}{err}");
    let first = out.lines().next().unwrap();
    assert!(first.starts_with(&format!("asked the daemon on {sock} (last collection ")), "{out}");
    assert!(out.contains("\nroutewarden on ") && out.contains(": WARNING\n"), "{out}");
    assert!(out.contains("WARNING coverage.incomplete: "), "{out}");
    assert!(out.contains("\ndaemon:\n  collections: "), "{out}");
    assert!(out.contains("kube-proxy chains added or removed since start: 0"), "{out}");
    assert!(out.contains("  journal:    not followed"), "{out}");
    assert!(out.contains("  kubernetes: exporter off"), "{out}");

    // --output json prints the daemon's JSON as it sent it; the report type reads it without losing a field.
    let (code, json, err) = rw(&["status", "--socket", sock, "--output", "json"]);
    assert_eq!(code, 1, "{err}");
    let sent: serde_json::Value = serde_json::from_str(&raw_status(&d.socket).unwrap()).unwrap();
    let printed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(printed, sent, "status --output json is not what the daemon serves");
    let report: routewarden::report::Report = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_value(&report).unwrap(), printed, "the report does not round-trip");
    assert!(printed["daemon"]["collections"].as_u64().unwrap() >= 1, "{printed:#}");

    // --url asks the loopback listener; with the configured socket missing, daemon.listen is asked instead.
    let url = format!("http://127.0.0.1:{}", d.port);
    let (code, out, err) = rw(&["status", "--url", &url]);
    assert_eq!(code, 1, "{err}");
    assert!(out.starts_with(&format!("asked the daemon on {url} (")), "{out}");
    let moved = d.config.with_file_name("moved.toml");
    let text = std::fs::read_to_string(&d.config).unwrap().replace(sock, "/nonexistent/routewarden.sock");
    std::fs::write(&moved, text).unwrap();
    let (code, out, err) = rw(&["--config", moved.to_str().unwrap(), "status"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.starts_with(&format!("asked the daemon on {url} (")), "{out}");
}

#[test]
fn status_exits_3_when_a_source_of_the_daemon_failed() {
    // The processes source reads a procfs that is not there: it fails, and the daemon's report says so.
    let sources = ALL_SOURCES.replace("\"processes\", ", "");
    let d = serve(&format!("disabled_sources = {sources}\nproc_dir = \"/nonexistent/proc\""));
    let (code, out, err) = rw(&["status", "--socket", d.socket.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("sources failed: processes"), "{out}");
    assert!(out.contains("\ndaemon:\n"), "{out}");
}

/// The message `status` gives when nobody answers on `tried`.
fn no_daemon(err: &str, tried: &str) {
    let want = format!(
        "routewarden: no routewarden daemon answers on {tried}: is routewarden.service running? `routewarden check` \
         collects without it\n"
    );
    assert_eq!(err, want);
}

#[test]
fn status_says_clearly_when_no_daemon_answers() {
    let dir = tempfile::tempdir().unwrap();

    // No socket file.
    let missing = dir.path().join("missing.sock");
    let (code, out, err) = rw(&["status", "--socket", missing.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    no_daemon(&err, &format!("{} (no such socket)", missing.display()));

    // A socket file left behind, nobody listening (a daemon that was killed).
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (code, _, err) = rw(&["status", "--socket", stale.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    no_daemon(&err, &format!("{} (connection refused)", stale.display()));

    // A port nobody listens on.
    let url = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = rw(&["status", "--url", &url]);
    assert_eq!(code, 3, "{err}");
    no_daemon(&err, &format!("{url} (connection refused)"));

    // By default: the configured socket is missing, so daemon.listen is asked too, and both are named.
    let port = free_port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[daemon]\nlisten = \"127.0.0.1:{port}\"\nunix_socket = \"{}\"\n", missing.display()),
    )
    .unwrap();
    let (code, _, err) = rw(&["--config", config.to_str().unwrap(), "status"]);
    assert_eq!(code, 3, "{err}");
    no_daemon(
        &err,
        &format!("{} (no such socket) nor on http://127.0.0.1:{port} (connection refused)", missing.display()),
    );

    // A URL that is not one is a usage error.
    let (code, _, err) = rw(&["status", "--url", "https://127.0.0.1:9977"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("is https"), "{err}");
}

/// A listener on a thread that answers each connection with `answer(stream)`; the streams are kept open.
fn listener(answer: fn(&mut std::net::TcpStream)) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for mut s in l.incoming().flatten() {
            answer(&mut s);
            kept.push(s);
        }
    });
    format!("http://{addr}")
}

#[test]
fn status_gives_up_on_a_daemon_that_never_answers_at_its_deadline() {
    // Accepts, reads the request, never answers (a daemon stuck, or a squatter that holds connections).
    let url = listener(|s| {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
    });
    let start = Instant::now();
    let (code, err) = rw_bounded(&["status", "--url", &url, "--timeout", "1s"]);
    let took = start.elapsed();
    assert_eq!(code, 3, "{err}");
    assert_eq!(err, format!("routewarden: the daemon on {url} did not answer within 1s\n"));
    assert!(took < Duration::from_secs(4), "status took {took:?} with --timeout 1s");

    // The same on a unix socket that accepts and never answers.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hung.sock");
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let kept: Vec<_> = l.incoming().flatten().collect();
        drop(kept);
    });
    let start = Instant::now();
    let (code, err) = rw_bounded(&["status", "--socket", path.to_str().unwrap(), "--timeout", "500ms"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("did not answer within 500ms"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(4));
}

fn reply(s: &mut std::net::TcpStream, head: &str, body: &str) {
    let mut buf = [0u8; 1024];
    let _ = s.read(&mut buf);
    let _ = write!(s, "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
}

#[test]
fn status_names_an_answer_that_is_not_a_routewarden_report() {
    // The daemon before its first collection.
    let url =
        listener(|s| reply(s, "HTTP/1.1 503 Service Unavailable", "{\"error\":\"no collection has finished yet\"}\n"));
    let (code, _, err) = rw(&["status", "--url", &url]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(err, format!("routewarden: the daemon on {url} answered HTTP 503: no collection has finished yet\n"));

    // Something else on the port (issue 27: a local user's squatter answering `{"verdict":"ok"}`).
    let url = listener(|s| reply(s, "HTTP/1.1 200 OK", "{\"verdict\":\"ok\"}"));
    let (code, out, err) = rw(&["status", "--url", &url]);
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    assert!(
        err.starts_with(&format!("routewarden: {url} answered with something that is not a routewarden report: ")),
        "{err}"
    );

    // Not HTTP at all.
    let url = listener(|s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
    });
    let (code, err) = rw_bounded(&["status", "--url", &url, "--timeout", "2s"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.starts_with(&format!("routewarden: talking HTTP to {url}: ")), "{err}");

    // An endless answer stops at the size bound, well within the deadline.
    let url = listener(|s| {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        let chunk = vec![b' '; 1 << 20];
        while s.write_all(&chunk).is_ok() {}
    });
    let (code, err) = rw_bounded(&["status", "--url", &url]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(err, format!("routewarden: {url} answered with more than 67108864 bytes: not a routewarden report\n"));
}

#[test]
fn status_as_another_user_than_root_is_told_to_run_as_root() {
    // Needs root to make the root-only directory and become another user; the message is what a user sees.
    if !nix_is_root() {
        let msg = "skipping: needs root to run status as another user against a root-only socket";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg} (CI=true turns this skip into a failure)");
        let _ = std::io::stderr().write_all(format!("{msg}\n").as_bytes());
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let d = serve(&format!("disabled_sources = {ALL_SOURCES}"));
    // The socket in a root-only directory, as /run/routewarden is: another user cannot even see it.
    let dir = d.socket.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let as_nobody = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_routewarden")])
            .args(args)
            .output()
            .unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = as_nobody(&["--config", "/dev/null", "status", "--socket", d.socket.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        err,
        format!(
            "routewarden: cannot reach {}: permission denied (the daemon's socket is root-only: mode 0660 in \
             /run/routewarden); run `sudo routewarden status`\n",
            d.socket.display()
        )
    );
    // By default (the configured socket): the root-only directory hides it, and status says so rather than
    // asking daemon.listen instead.
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = open.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[daemon]\nlisten = \"127.0.0.1:{}\"\nunix_socket = \"{}\"\n", d.port, d.socket.display()),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = as_nobody(&["--config", config.to_str().unwrap(), "status"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("permission denied") && err.contains("sudo routewarden status"), "{err}");
}

/// Whether this test runs as root (the effective uid in /proc/self/status).
fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}
