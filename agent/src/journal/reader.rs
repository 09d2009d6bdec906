//! Reading the journal through `journalctl --output=json`: a one-shot scan (scan-journal) and a follower for the
//! daemon that persists its cursor, restarts journalctl with backoff, and reports itself failed meanwhile.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::engine::{Engine, Match};
use super::entry::parse_entry;
use crate::report::Finding;

/// Where entries come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// The system journal.
    System,
    /// The system journal of the host mounted at this root (`journalctl --root`).
    Root(PathBuf),
    File(PathBuf),
    Directory(PathBuf),
    /// `journalctl -o json` lines on standard input.
    Stdin,
}

/// journalctl's arguments (pure): JSON output with only the fields used, the units' entries and kernel messages.
pub fn journalctl_args(input: &Input, units: &[String], follow: bool, start: Start) -> Vec<String> {
    let mut a = vec![
        "--output=json".to_string(),
        "--all".to_string(),
        "--no-pager".to_string(),
        "--output-fields=MESSAGE,_SYSTEMD_UNIT,_TRANSPORT,SYSLOG_IDENTIFIER".to_string(),
    ];
    match input {
        Input::File(f) => a.push(format!("--file={}", f.display())),
        Input::Directory(d) => a.push(format!("--directory={}", d.display())),
        Input::Root(r) => a.push(format!("--root={}", r.display())),
        Input::System | Input::Stdin => {}
    }
    if follow {
        a.push("--follow".into());
    }
    match start {
        Start::Beginning => {}
        Start::AfterCursor(c) => a.push(format!("--after-cursor={c}")),
        Start::Since(unix) => a.push(format!("--since=@{unix}")),
    }
    if !units.is_empty() {
        for u in units {
            a.push(format!("_SYSTEMD_UNIT={u}"));
        }
        a.push("+".into());
        a.push("_TRANSPORT=kernel".into());
    }
    a
}

/// Where reading starts.
#[derive(Debug, Clone)]
pub enum Start {
    Beginning,
    AfterCursor(String),
    /// Unix seconds.
    Since(u64),
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("starting {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("reading the journal: {0}")]
    Io(#[from] std::io::Error),
    #[error("{program} exited with {status}: {stderr}")]
    Exited { program: PathBuf, status: std::process::ExitStatus, stderr: String },
    #[error("{program} stopped delivering entries: the journal has entries {behind} s newer than the last one read")]
    Hung { program: PathBuf, behind: u64 },
}

/// Result of `scan-journal`.
#[derive(Debug, Serialize)]
pub struct Scan {
    pub entries: u64,
    /// Lines that were not journal entries (reported, not fatal).
    pub bad_lines: u64,
    pub matches: Vec<Match>,
    pub counts: std::collections::BTreeMap<String, u64>,
    pub findings: Vec<Finding>,
}

/// Runs every rule over a saved journal (or stdin). Findings are those active at the newest entry's time.
pub fn scan(journalctl: &Path, input: &Input, units: &[String], mut engine: Engine) -> Result<Scan, ReadError> {
    let mut scan =
        Scan { entries: 0, bad_lines: 0, matches: Vec::new(), counts: Default::default(), findings: Vec::new() };
    let mut feed = |line: &[u8], engine: &mut Engine| {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match parse_entry(line) {
            Ok(e) => {
                scan.entries += 1;
                let mut hit = Vec::new();
                engine.feed_with(&e, |i| hit.push(i));
                for i in hit {
                    let rule = engine.rules().rules[i].rule.id.clone();
                    scan.matches.push(Match { realtime_usec: e.realtime_usec, unit: e.unit.clone(), rule });
                }
            }
            Err(_) => scan.bad_lines += 1,
        }
    };
    match input {
        Input::Stdin => for_each_line(std::io::stdin().lock(), |l| feed(l, &mut engine))?,
        _ => {
            let mut child = spawn(journalctl, &journalctl_args(input, units, false, Start::Beginning))?;
            let stdout = child.stdout.take();
            let stderr = drain_stderr(&mut child);
            if let Some(out) = stdout {
                for_each_line(out, |l| feed(l, &mut engine))?;
            }
            let status = child.wait()?;
            if !status.success() {
                return Err(ReadError::Exited { program: journalctl.into(), status, stderr: stderr.join_text() });
            }
        }
    }
    engine.advance(engine.last_usec);
    scan.counts = engine.counts.clone();
    scan.findings = engine.findings();
    Ok(scan)
}

fn spawn(journalctl: &Path, args: &[String]) -> Result<Child, ReadError> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(journalctl);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to end journalctl when routewarden dies, so
    // a killed daemon never leaves a following journalctl behind.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.args(args)
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ReadError::Spawn { program: journalctl.into(), source })
}

/// Reads newline-separated records of any length, including invalid UTF-8, without loss.
fn for_each_line(r: impl Read, mut f: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(1 << 16, r);
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        f(&buf);
    }
}

/// The last lines journalctl wrote to stderr, collected on a thread.
struct StderrTail(Arc<Mutex<Vec<String>>>, Option<std::thread::JoinHandle<()>>);

impl StderrTail {
    /// The lines, once the child has exited and its stderr is fully read.
    fn join_text(mut self) -> String {
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
        self.0.lock().map(|v| v.join("; ")).unwrap_or_default()
    }
}

fn drain_stderr(child: &mut Child) -> StderrTail {
    let tail = Arc::new(Mutex::new(Vec::new()));
    let mut handle = None;
    if let Some(err) = child.stderr.take() {
        let t = Arc::clone(&tail);
        handle = Some(std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Ok(mut v) = t.lock() {
                    v.push(line);
                    if v.len() > 5 {
                        v.remove(0);
                    }
                }
            }
        }));
    }
    StderrTail(tail, handle)
}

/// What the follower shares with the daemon.
pub struct Followed {
    pub engine: Engine,
    /// `None` while healthy; the reason while journalctl is down.
    pub error: Option<String>,
    /// How far behind the newest entry was when it was read, in seconds.
    pub lag_seconds: f64,
    /// Cursor of the newest entry read; the owner persists it (see [`save_cursor`]).
    pub cursor: String,
    pub changes: u64,
}

/// Options of the follower.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    pub journalctl: PathBuf,
    pub input: Input,
    pub units: Vec<String>,
    pub cursor_file: PathBuf,
    pub lookback_secs: u64,
    /// How often to ask journalctl (one-shot) for the newest entry, to catch a following journalctl that hangs.
    pub hang_check: Duration,
}

/// Follows the journal on a thread until the process exits. `on_change` is called when the set of active findings
/// may have changed (a match, or journalctl failing or recovering).
pub fn follow(opts: FollowOptions, shared: Arc<Mutex<Followed>>, on_change: impl Fn() + Send + Sync + Clone + 'static) {
    std::thread::spawn(move || {
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = Instant::now();
            let result = follow_once(&opts, &shared, &on_change);
            let why = match result {
                Ok(()) => "journalctl ended".to_string(),
                Err(e) => crate::model::error_chain(&e),
            };
            if let Ok(mut s) = shared.lock() {
                s.error = Some(format!("{why}; restarting in {} s", backoff.as_secs()));
            }
            on_change();
            log::warn!(source = "journal"; "journal reader stopped: {why}; restarting in {} s", backoff.as_secs());
            std::thread::sleep(backoff);
            backoff = if started.elapsed() > Duration::from_secs(60) {
                Duration::from_secs(1)
            } else {
                (backoff * 2).min(Duration::from_secs(30))
            };
        }
    });
}

/// How long a restarted journalctl must keep running, without entries, before the source counts as healthy again.
const HEALTHY_AFTER: Duration = Duration::from_secs(2);

fn follow_once(
    opts: &FollowOptions,
    shared: &Arc<Mutex<Followed>>,
    on_change: &(impl Fn() + Send + Sync + 'static + Clone),
) -> Result<(), ReadError> {
    // Resume after the newest entry this process read (the cursor file lags it by up to a second), else after
    // the saved cursor, else the look-back window.
    let in_memory = shared.lock().map(|s| s.cursor.clone()).unwrap_or_default();
    let saved = std::fs::read_to_string(&opts.cursor_file).unwrap_or_default();
    let start = match (in_memory.as_str(), saved.trim()) {
        (c, _) if !c.is_empty() => Start::AfterCursor(c.to_string()),
        (_, c) if !c.is_empty() => Start::AfterCursor(c.to_string()),
        _ => {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            Start::Since(now.saturating_sub(opts.lookback_secs))
        }
    };
    let mut child = spawn(&opts.journalctl, &journalctl_args(&opts.input, &opts.units, true, start))?;
    let stderr = drain_stderr(&mut child);
    // A quiet journal may send nothing for hours: once journalctl has stayed up a moment, it counts as healthy.
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    {
        let (running, shared, on_change) = (Arc::clone(&running), Arc::clone(shared), on_change.clone());
        std::thread::spawn(move || {
            std::thread::sleep(HEALTHY_AFTER);
            if running.load(std::sync::atomic::Ordering::SeqCst) {
                let cleared = shared.lock().map(|mut s| s.error.take().is_some()).unwrap_or(false);
                if cleared {
                    on_change();
                }
            }
        });
    }
    let stdout = child.stdout.take();
    // Shared with the hang watcher: killing and reaping both happen under this lock, so a signal never reaches a
    // reaped pid.
    let child = Arc::new(Mutex::new(child));
    let hung = Arc::new(std::sync::atomic::AtomicU64::new(0));
    watch_for_hang(opts, shared, Arc::clone(&child), Arc::clone(&running), Arc::clone(&hung));
    let mut first = true;
    let result = stdout.map(|out| {
        for_each_line(out, |line| {
            let e = match parse_entry(line) {
                Ok(e) => e,
                Err(err) => {
                    log::debug!("skipping a journalctl line that is not an entry: {err}");
                    return;
                }
            };
            let mut matched = false;
            if let Ok(mut s) = shared.lock() {
                if first || s.error.is_some() {
                    s.error = None;
                    matched = true;
                    first = false;
                }
                s.engine.feed_with(&e, |_| matched = true);
                s.lag_seconds = (crate::sys::now_unix() - e.realtime_usec as f64 / 1e6).max(0.0);
                s.cursor.clone_from(&e.cursor);
                if matched {
                    s.changes += 1;
                }
            }
            if matched {
                on_change();
            }
        })
    });
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    let status = {
        let mut child = child.lock().map_err(|_| std::io::Error::other("journalctl handle poisoned"))?;
        let _ = child.kill();
        child.wait()?
    };
    let behind = hung.load(std::sync::atomic::Ordering::SeqCst);
    if behind > 0 {
        return Err(ReadError::Hung { program: opts.journalctl.clone(), behind });
    }
    result.transpose()?;
    if !status.success() {
        return Err(ReadError::Exited { program: opts.journalctl.clone(), status, stderr: stderr.join_text() });
    }
    Ok(())
}

/// Every `hang_check`, asks journalctl (one-shot, same filters) for the newest entry. When the journal holds an
/// entry more than `hang_check` newer than the last one the follower read, and the follower read nothing since the
/// previous check, the following journalctl is stuck: it is killed (by pid, our own child), and restarted.
fn watch_for_hang(
    opts: &FollowOptions,
    shared: &Arc<Mutex<Followed>>,
    child: Arc<Mutex<Child>>,
    running: Arc<std::sync::atomic::AtomicBool>,
    hung: Arc<std::sync::atomic::AtomicU64>,
) {
    let (opts, shared) = (opts.clone(), Arc::clone(shared));
    std::thread::spawn(move || {
        let mut args = journalctl_args(&opts.input, &opts.units, false, Start::Beginning);
        args.insert(0, "--lines=1".into());
        let mut last_seen = shared.lock().map(|s| s.engine.last_usec).unwrap_or(0);
        loop {
            std::thread::sleep(opts.hang_check);
            if !running.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let read = shared.lock().map(|s| s.engine.last_usec).unwrap_or(0);
            let newest = Command::new(&opts.journalctl)
                .args(&args)
                .env("LC_ALL", "C")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()
                .and_then(|o| o.stdout.split(|&b| b == b'\n').filter_map(|l| parse_entry(l).ok()).next_back())
                .map(|e| e.realtime_usec)
                .unwrap_or(0);
            let behind = newest.saturating_sub(read) / 1_000_000;
            if read == last_seen && behind > opts.hang_check.as_secs().max(1) {
                if let Ok(mut c) = child.lock() {
                    if running.load(std::sync::atomic::Ordering::SeqCst) {
                        hung.store(behind, std::sync::atomic::Ordering::SeqCst);
                        let _ = c.kill();
                    }
                }
                return;
            }
            last_seen = read;
        }
    });
}

/// Writes the cursor atomically (temporary file, then rename), so a crash never leaves half a cursor.
pub fn save_cursor(path: &Path, cursor: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, cursor).and_then(|_| std::fs::rename(&tmp, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_select_units_plus_kernel_and_the_start() {
        let a = journalctl_args(
            &Input::Directory("/j".into()),
            &["kubelet.service".into()],
            true,
            Start::AfterCursor("s=1".into()),
        );
        assert!(a.contains(&"--directory=/j".to_string()) && a.contains(&"--follow".to_string()));
        assert!(a.contains(&"--after-cursor=s=1".to_string()));
        let tail: Vec<&str> = a.iter().rev().take(3).map(String::as_str).collect();
        assert_eq!(tail, vec!["_TRANSPORT=kernel", "+", "_SYSTEMD_UNIT=kubelet.service"]);
        let a = journalctl_args(&Input::System, &[], false, Start::Since(100));
        assert!(a.contains(&"--since=@100".to_string()) && !a.iter().any(|x| x == "+"));
    }

    #[test]
    fn lines_of_any_length_and_bytes_are_read_whole() {
        let mut data = b"short\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 100_000));
        data.extend(b"\xff\xfe\n\nlast-without-newline");
        let mut lines = Vec::new();
        for_each_line(&data[..], |l| lines.push(l.len())).unwrap();
        assert_eq!(lines, vec![6, 100_003, 1, 20]);
    }
}
