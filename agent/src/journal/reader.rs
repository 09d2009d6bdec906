//! Reading the journal through `journalctl --output=json`: a one-shot scan (scan-journal) and a follower for the
//! daemon that persists its cursor, restarts journalctl with backoff, and reports itself failed meanwhile. Entries
//! go through the [`Assembler`] (multi-line records) before the engine. After a restart the follower replays the
//! rules' windows before the saved cursor without counting those lines again, so active findings survive.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::assemble::Assembler;
use super::engine::{Engine, Episode, Match};
use super::entry::{parse_entry, Entry};
use super::rules::RuleSet;
use crate::report::Finding;
use crate::sys::exec::{self, ExecError};

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
        "--output-fields=MESSAGE,_SYSTEMD_UNIT,_TRANSPORT,_PID,CONTAINER_NAME".to_string(),
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
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("reading the journal: {0}")]
    Io(#[from] std::io::Error),
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
    /// Findings active at the newest entry's time.
    pub findings: Vec<Finding>,
    /// Every episode of every finding over the journal's span, in time order.
    pub episodes: Vec<Episode>,
    /// Episodes beyond the engine's bound, left out (oldest first).
    #[serde(skip_serializing_if = "is_zero")]
    pub episodes_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Runs every rule over a saved journal (or stdin). Findings are those active at the newest entry's time;
/// episodes are every span a finding was active, over the whole journal.
pub fn scan(journalctl: &Path, input: &Input, units: &[String], mut engine: Engine) -> Result<Scan, ReadError> {
    let mut scan = Scan {
        entries: 0,
        bad_lines: 0,
        matches: Vec::new(),
        counts: Default::default(),
        findings: Vec::new(),
        episodes: Vec::new(),
        episodes_dropped: 0,
    };
    let mut asm = Assembler::new();
    // Rule ids by index, for the matches list (the engine is borrowed while it feeds).
    let ids: Vec<String> = engine.rules().rules.iter().map(|c| c.rule.id.clone()).collect();
    let record = |r: Entry, engine: &mut Engine, matches: &mut Vec<Match>| {
        engine.feed_with(&r, |i| {
            matches.push(Match { realtime_usec: r.realtime_usec, unit: r.unit.clone(), rule: ids[i].clone() });
        });
    };
    let mut feed = |line: &[u8], engine: &mut Engine, scan: &mut Scan| {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match parse_entry(line) {
            Ok(e) => {
                scan.entries += 1;
                asm.push(e, |r| record(r, engine, &mut scan.matches));
            }
            Err(_) => scan.bad_lines += 1,
        }
    };
    match input {
        Input::Stdin => for_each_line(std::io::stdin().lock(), |l| feed(l, &mut engine, &mut scan))?,
        _ => {
            let mut child = exec::spawn_streaming(journalctl, &journalctl_args(input, units, false, Start::Beginning))?;
            if let Some(out) = child.take_stdout() {
                if let Err(e) = for_each_line(out, |l| feed(l, &mut engine, &mut scan)) {
                    let _ = child.stop();
                    return Err(e.into());
                }
            }
            child.wait()?;
        }
    }
    asm.flush(|r| record(r, &mut engine, &mut scan.matches));
    engine.advance(engine.last_usec);
    scan.counts = engine.counts.clone();
    scan.findings = engine.findings();
    scan.episodes = engine.episodes();
    scan.episodes_dropped = engine.episodes_dropped;
    Ok(scan)
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

/// Like [`for_each_line`], and calls `f(None)` whenever every line read so far was handed out (journalctl has
/// nothing more waiting), so a record held back by the assembler is not held for long.
fn for_each_line_or_idle(r: impl Read, mut f: impl FnMut(Option<&[u8]>)) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(1 << 16, r);
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            f(None);
            return Ok(());
        }
        f(Some(&buf));
        if r.buffer().is_empty() {
            f(None);
        }
    }
}

/// What the follower thread shares with its [`Follower`] handle.
struct Followed {
    engine: Engine,
    /// `None` while healthy; the reason while journalctl is down.
    error: Option<String>,
    /// How far behind the newest entry was when it was read, in seconds.
    lag_seconds: f64,
    /// Cursor of the newest entry read, and its time (µs).
    cursor: String,
    cursor_usec: u64,
}

/// Options of the follower.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    pub journalctl: PathBuf,
    pub input: Input,
    pub units: Vec<String>,
    /// Where the cursor of the newest entry read is persisted.
    pub cursor_file: PathBuf,
    pub lookback_secs: u64,
    /// How often to ask journalctl (one-shot) for the newest entry, to catch a following journalctl that hangs.
    pub hang_check: Duration,
}

/// The journal as the follower sees it at one moment: what the daemon puts into the report and metrics.
#[derive(Debug, Clone)]
pub struct JournalView {
    pub findings: Vec<Finding>,
    /// `None` while healthy; the reason while journalctl is down.
    pub error: Option<String>,
    pub matches: std::collections::BTreeMap<String, u64>,
    pub lines: std::collections::BTreeMap<String, u64>,
    pub lag_seconds: f64,
}

/// The daemon's handle on the follower thread.
pub struct Follower {
    shared: Arc<Mutex<Followed>>,
    cursor_file: PathBuf,
    saved: String,
}

impl Follower {
    /// Starts following the journal on a thread that lives as long as the process. `on_change` is called when
    /// the set of active findings may have changed (a match, or journalctl failing or recovering).
    pub fn start(
        opts: FollowOptions,
        rules: RuleSet,
        on_change: impl Fn() + Send + Sync + Clone + 'static,
    ) -> Follower {
        let shared = Arc::new(Mutex::new(Followed {
            engine: Engine::new(rules),
            error: None,
            lag_seconds: 0.0,
            cursor: String::new(),
            cursor_usec: 0,
        }));
        let cursor_file = opts.cursor_file.clone();
        let thread_shared = Arc::clone(&shared);
        std::thread::spawn(move || follow(&opts, &thread_shared, &on_change));
        Follower { shared, cursor_file, saved: String::new() }
    }

    /// The findings active at `now_usec` and the follower's health and counters.
    pub fn view(&self, now_usec: u64) -> JournalView {
        match self.shared.lock() {
            Ok(mut j) => {
                j.engine.advance(now_usec);
                JournalView {
                    findings: j.engine.findings(),
                    error: j.error.clone(),
                    matches: j.engine.counts.clone(),
                    lines: j.engine.lines.clone(),
                    lag_seconds: j.lag_seconds,
                }
            }
            Err(_) => JournalView {
                findings: Vec::new(),
                error: Some("journal state poisoned".into()),
                matches: Default::default(),
                lines: Default::default(),
                lag_seconds: 0.0,
            },
        }
    }

    /// Persists the newest cursor when it moved, so a restart neither loses nor double-counts entries.
    pub fn save_cursor(&mut self) -> std::io::Result<()> {
        let (cursor, usec) = self.shared.lock().map(|s| (s.cursor.clone(), s.cursor_usec)).unwrap_or_default();
        if !cursor.is_empty() && cursor != self.saved {
            save_cursor(&self.cursor_file, &format!("{cursor}\n{usec}\n"))?;
            self.saved = cursor;
        }
        Ok(())
    }

    pub fn cursor_file(&self) -> &Path {
        &self.cursor_file
    }
}

/// Follows until the process exits, restarting journalctl with backoff.
fn follow(
    opts: &FollowOptions,
    shared: &Arc<Mutex<Followed>>,
    on_change: &(impl Fn() + Send + Sync + Clone + 'static),
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let why = match follow_once(opts, shared, on_change) {
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
    let saved = SavedCursor::parse(&std::fs::read_to_string(&opts.cursor_file).unwrap_or_default());
    let replay_secs = shared.lock().map(|s| s.engine.rules().replay_secs()).unwrap_or(0).min(opts.lookback_secs);
    let (start, mut replay) = match (in_memory.as_str(), saved) {
        (c, _) if !c.is_empty() => (Start::AfterCursor(c.to_string()), None),
        // The saved cursor's time is known: replay the rules' windows before it, counting nothing again.
        (_, Some(SavedCursor { cursor, usec: Some(usec) })) if replay_secs > 0 => {
            (Start::Since((usec / 1_000_000).saturating_sub(replay_secs)), Some((cursor, usec)))
        }
        (_, Some(SavedCursor { cursor, .. })) => (Start::AfterCursor(cursor), None),
        _ => (Start::Since((crate::sys::now_unix() as u64).saturating_sub(opts.lookback_secs)), None),
    };
    let mut child = exec::spawn_streaming(&opts.journalctl, &journalctl_args(&opts.input, &opts.units, true, start))?;
    // A quiet journal may send nothing for hours: once journalctl has stayed up a moment, it counts as healthy.
    let running = Arc::new(AtomicBool::new(true));
    {
        let (running, shared, on_change) = (Arc::clone(&running), Arc::clone(shared), on_change.clone());
        std::thread::spawn(move || {
            std::thread::sleep(HEALTHY_AFTER);
            if running.load(Ordering::SeqCst) {
                let cleared = shared.lock().map(|mut s| s.error.take().is_some()).unwrap_or(false);
                if cleared {
                    on_change();
                }
            }
        });
    }
    let stdout = child.take_stdout();
    let hung = Arc::new(AtomicU64::new(0));
    watch_for_hang(opts, shared, child.killer(), Arc::clone(&running), Arc::clone(&hung));
    let mut first = true;
    let mut asm = Assembler::new();
    let mut record = |r: Entry| {
        let mut matched = false;
        if let Ok(mut s) = shared.lock() {
            if first || s.error.is_some() {
                s.error = None;
                matched = true;
                first = false;
            }
            // While replaying, entries up to the saved cursor's time were counted by the previous run (journalctl
            // may interleave files, so this is decided per entry, not by position); the cursor's entry ends it.
            let replayed = replay.as_ref().is_some_and(|(_, usec)| r.realtime_usec <= *usec);
            if replay.as_ref().is_some_and(|(cursor, _)| r.cursor == *cursor) {
                replay = None;
            }
            s.engine.set_counting(!replayed);
            s.engine.feed_with(&r, |_| matched = true);
            if !replayed {
                s.lag_seconds = (crate::sys::now_unix() - r.realtime_usec as f64 / 1e6).max(0.0);
                s.cursor.clone_from(&r.cursor);
                s.cursor_usec = r.realtime_usec;
            }
        }
        on_change_if(matched, on_change);
    };
    let result = stdout.map(|out| {
        for_each_line_or_idle(out, |line| match line {
            Some(line) => match parse_entry(line) {
                Ok(e) => asm.push(e, &mut record),
                Err(err) => log::debug!("skipping a journalctl line that is not an entry: {err}"),
            },
            None => asm.flush(&mut record),
        })
    });
    if let Ok(mut s) = shared.lock() {
        s.engine.set_counting(true);
    }
    running.store(false, Ordering::SeqCst);
    let behind = hung.load(Ordering::SeqCst);
    if behind > 0 {
        let _ = child.stop();
        return Err(ReadError::Hung { program: opts.journalctl.clone(), behind });
    }
    if let Some(Err(e)) = result {
        let _ = child.stop();
        return Err(e.into());
    }
    child.wait()?;
    Ok(())
}

/// Every `hang_check`, asks journalctl (one-shot, same filters, with a deadline) for the newest entry. When the
/// journal holds an entry more than `hang_check` newer than the last one the follower read, and the follower read
/// nothing since the previous check, the following journalctl is stuck: it is killed and restarted. A probe that
/// fails or overruns its deadline tells nothing; the next check asks again.
fn watch_for_hang(
    opts: &FollowOptions,
    shared: &Arc<Mutex<Followed>>,
    killer: exec::Killer,
    running: Arc<AtomicBool>,
    hung: Arc<AtomicU64>,
) {
    let (opts, shared) = (opts.clone(), Arc::clone(shared));
    std::thread::spawn(move || {
        let mut args = journalctl_args(&opts.input, &opts.units, false, Start::Beginning);
        args.insert(0, "--lines=1".into());
        let deadline = opts.hang_check.min(PROBE_TIMEOUT);
        let mut last_seen = shared.lock().map(|s| s.engine.last_usec).unwrap_or(0);
        loop {
            std::thread::sleep(opts.hang_check);
            if !running.load(Ordering::SeqCst) {
                return;
            }
            let read = shared.lock().map(|s| s.engine.last_usec).unwrap_or(0);
            let newest = match exec::run(&opts.journalctl, &args, deadline) {
                Ok(out) => out.split(|&b| b == b'\n').filter_map(|l| parse_entry(l).ok()).next_back(),
                Err(e) => {
                    log::debug!("journal hang probe: {}", crate::model::error_chain(&e));
                    None
                }
            };
            let Some(newest) = newest.map(|e| e.realtime_usec) else { continue };
            let behind = newest.saturating_sub(read) / 1_000_000;
            if read == last_seen && behind > opts.hang_check.as_secs().max(1) && running.load(Ordering::SeqCst) {
                hung.store(behind, Ordering::SeqCst);
                killer.kill();
                return;
            }
            last_seen = read;
        }
    });
}

fn on_change_if(changed: bool, on_change: &impl Fn()) {
    if changed {
        on_change();
    }
}

/// The cursor file: the cursor, then (since the journal replay) the entry's time in µs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SavedCursor {
    cursor: String,
    usec: Option<u64>,
}

impl SavedCursor {
    fn parse(text: &str) -> Option<SavedCursor> {
        let mut lines = text.lines().map(str::trim);
        let cursor = lines.next().filter(|c| !c.is_empty())?.to_string();
        Some(SavedCursor { cursor, usec: lines.next().and_then(|u| u.parse().ok()) })
    }
}

/// The hang probe's deadline (at most; shorter when `hang_check` is shorter).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

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
    fn saved_cursors_with_and_without_their_time() {
        assert_eq!(
            SavedCursor::parse("s=1;i=2\n1790000000000000\n"),
            Some(SavedCursor { cursor: "s=1;i=2".into(), usec: Some(1_790_000_000_000_000) })
        );
        assert_eq!(SavedCursor::parse("s=1\n"), Some(SavedCursor { cursor: "s=1".into(), usec: None }));
        assert_eq!(SavedCursor::parse("\n"), None);
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
