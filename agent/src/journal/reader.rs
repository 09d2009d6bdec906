//! Reading the journal through `journalctl --output=json`: a one-shot scan (scan-journal) and a follower for the
//! daemon that persists its cursor, restarts journalctl with backoff, and reports itself failed meanwhile. Entries
//! go through the [`Assembler`] (multi-line records) before the engine. After a restart the follower replays the
//! rules' windows before the saved cursor without counting those lines again, so active findings survive.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::assemble::Assembler;
use super::engine::Engine;
use super::entry::{parse_entry, Entry};
use super::rules::RuleSet;
use super::state::{Change, CursorStore, SavedCursor};
use crate::model::journal::Match;
use crate::model::journal::{Ignored, IgnoredFiles, MAX_LINE};
use crate::report::{Finding, JournalScan as Scan};
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
    #[error("reading the journal")]
    Io(#[from] std::io::Error),
    #[error("{program} stopped delivering entries: the journal has entries {behind} s newer than the last one read")]
    Hung { program: PathBuf, behind: u64 },
    #[error("{0}")]
    CursorRefused(String),
    #[error("{program} printed nothing for {} s: killed", secs.as_secs_f64())]
    Stalled { program: PathBuf, secs: Duration },
}

/// Runs every rule over a saved journal (or stdin). Findings are those active at the newest entry's time;
/// episodes are every span a finding was active, over the whole journal. A journalctl that prints nothing for
/// `stall` is killed and the scan fails (stdin is the caller's pipe and is read to its end).
pub fn scan(
    journalctl: &Path,
    input: &Input,
    units: &[String],
    mut engine: Engine,
    stall: Duration,
) -> Result<Scan, ReadError> {
    let mut scan = Scan {
        api_server: engine.rules().api_server.describe(),
        entries: 0,
        bad_lines: 0,
        overlong_lines: 0,
        matches: Vec::new(),
        counts: Default::default(),
        findings: Vec::new(),
        episodes: Vec::new(),
        episodes_dropped: 0,
        ignored_files: IgnoredFiles::new(),
    };
    let ignored = Arc::new(Mutex::new(IgnoredFiles::new()));
    let mut asm = Assembler::new();
    // Rule ids by index, for the matches list (the engine is borrowed while it feeds).
    let ids: Vec<String> = engine.rules().rules.iter().map(|c| c.rule.id.clone()).collect();
    let record = |r: Entry, engine: &mut Engine, matches: &mut Vec<Match>| {
        engine.feed_with(&r, |i| {
            matches.push(Match { realtime_usec: r.realtime_usec, unit: r.unit.clone(), rule: ids[i].clone() });
        });
    };
    let mut feed = |piece: Piece<'_>, engine: &mut Engine, scan: &mut Scan| match piece {
        Piece::Line(line) if line.iter().all(u8::is_ascii_whitespace) => {}
        Piece::Line(line) => match parse_entry(line) {
            Ok(e) => {
                scan.entries += 1;
                asm.push(e, |r| record(r, engine, &mut scan.matches));
            }
            Err(_) => scan.bad_lines += 1,
        },
        Piece::Overlong(_) => scan.overlong_lines += 1,
        Piece::Idle => {}
    };
    match input {
        Input::Stdin => read_lines(std::io::stdin().lock(), MAX_LINE, false, |l| feed(l, &mut engine, &mut scan))?,
        _ => {
            let seen = Arc::clone(&ignored);
            let mut child =
                exec::spawn_streaming_with(journalctl, &journalctl_args(input, units, false, Start::Beginning), {
                    move |line| {
                        if let Ok(mut f) = seen.lock() {
                            note_ignored(&mut f, line);
                        }
                    }
                })?;
            let watch = StallWatch::start(child.killer(), stall);
            if let Some(out) = child.take_stdout() {
                let read = read_lines(out, MAX_LINE, false, |l| {
                    watch.progress();
                    feed(l, &mut engine, &mut scan)
                });
                if watch.stalled() {
                    let _ = child.stop();
                    return Err(ReadError::Stalled { program: journalctl.to_path_buf(), secs: stall });
                }
                if let Err(e) = read {
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
    scan.ignored_files = ignored.lock().map(|f| f.clone()).unwrap_or_default();
    Ok(scan)
}

/// Why a scan proves nothing about some of the journal (`None` when every file was read): journalctl ignored
/// files written by a newer systemd, so `scan-journal` exits 3 as for a source that failed.
pub fn unreadable(scan: &Scan) -> Option<String> {
    ignored_files_say(&scan.ignored_files).0
}

/// Why a scan that read no journal entry proves nothing, with what was read and where to look (`None` once an
/// entry was read): "no findings" over nothing is no all-clear, and `scan-journal` exits 3 as `check` does for a
/// failed source.
pub fn nothing_read(scan: &Scan, input: &Input) -> Option<String> {
    if scan.entries > 0 {
        return None;
    }
    let read = match (scan.bad_lines, scan.overlong_lines) {
        (0, 0) => "nothing".to_string(),
        (bad, 0) => format!("{bad} lines that are not journal entries"),
        (0, long) => format!("{long} lines longer than {MAX_LINE} bytes"),
        (bad, long) => format!("{bad} lines that are not journal entries and {long} longer than {MAX_LINE} bytes"),
    };
    let hint = match input {
        Input::Stdin => {
            "give journalctl's JSON output, e.g. `journalctl -u kubelet -o json | routewarden scan-journal -` \
                         (plain `journalctl` text is not read)"
                .to_string()
        }
        Input::Directory(d) => format!(
            "{} holds no journal entries: give the directory that holds the *.journal files (e.g. /var/log/journal or \
             /var/log/journal/<machine-id>)",
            d.display()
        ),
        Input::File(f) => format!("{} holds no journal entries: give a *.journal file", f.display()),
        Input::Root(r) => format!("the journal under {} holds no entries of the units followed", r.display()),
        Input::System => "this machine's journal holds no entries of the units followed (no journal files, or the \
                          journal is elsewhere: use --directory or --file)"
            .to_string(),
    };
    Some(format!("read no journal entries ({read}), so the scan proves nothing: {hint}"))
}

/// Kills a one-shot journalctl that prints nothing for its deadline (a hung journald, a hung file system): the
/// reader marks progress per line, a thread checks it and ends with the handle.
struct StallWatch {
    progress: Arc<AtomicU64>,
    stalled: Arc<AtomicBool>,
    _stop: std::sync::mpsc::Sender<()>,
}

impl StallWatch {
    fn start(killer: exec::Killer, stall: Duration) -> StallWatch {
        let (progress, stalled) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (seen, flag) = (Arc::clone(&progress), Arc::clone(&stalled));
        std::thread::spawn(move || {
            let tick = (stall / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
            let (mut last, mut since) = (0, Instant::now());
            // Ends when the handle is dropped (the sender is gone).
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                let now = seen.load(Ordering::Relaxed);
                if now != last {
                    (last, since) = (now, Instant::now());
                } else if since.elapsed() >= stall {
                    flag.store(true, Ordering::SeqCst);
                    killer.kill();
                    return;
                }
            }
        });
        StallWatch { progress, stalled, _stop: stop }
    }

    fn progress(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    fn stalled(&self) -> bool {
        self.stalled.load(Ordering::SeqCst)
    }
}

/// At most this many ignored journal files are kept.
const MAX_IGNORED: usize = 32;

/// The file and why, from one line of journalctl's stderr (`None` for any other line).
pub fn ignored_file(line: &str) -> Option<(String, Ignored)> {
    if let Some(rest) = line.strip_prefix("Too many journal files") {
        let path = rest.split_once("ignoring file '")?.1.strip_suffix("'.")?;
        return Some((path.to_string(), Ignored::TooManyFiles));
    }
    let rest = line.strip_prefix("Journal file ")?.strip_suffix(", ignoring file.")?;
    [
        (" uses an unsupported feature", Ignored::UnsupportedFeature),
        (" is truncated", Ignored::Truncated),
        (" corrupted", Ignored::Corrupted),
    ]
    .into_iter()
    .find_map(|(why, kind)| rest.strip_suffix(why).map(|path| (path.to_string(), kind)))
}

fn note_ignored(files: &mut IgnoredFiles, line: &str) -> bool {
    match ignored_file(line) {
        Some((path, why)) if files.len() < MAX_IGNORED || files.contains_key(&path) => {
            files.insert(path, why) != Some(why)
        }
        _ => false,
    }
}

/// What journalctl's ignored files mean for the journal source: an error when a file's format is newer than
/// this journalctl (its entries are never read: no all-clear may rest on it), a note for the others.
pub fn ignored_files_say(files: &IgnoredFiles) -> (Option<String>, Option<String>) {
    let list = |kind: Ignored| files.iter().filter(move |(_, k)| **k == kind).map(|(p, _)| p.as_str());
    let unsupported: Vec<&str> = list(Ignored::UnsupportedFeature).collect();
    let error = (!unsupported.is_empty()).then(|| {
        format!(
            "journalctl cannot read {} journal file(s) written by a newer systemd (\"uses an unsupported feature\"), so \
             their entries are not read: {}. Use a journalctl at least as new as the node's systemd",
            unsupported.len(),
            unsupported.join(", ")
        )
    });
    let others: Vec<String> = [
        (Ignored::Truncated, "truncated"),
        (Ignored::Corrupted, "corrupted"),
        (Ignored::TooManyFiles, "over journalctl's file limit"),
    ]
    .into_iter()
    .filter_map(|(kind, word)| {
        let l: Vec<&str> = list(kind).collect();
        (!l.is_empty()).then(|| format!("{word}: {}", l.join(", ")))
    })
    .collect();
    let note = (!others.is_empty()).then(|| format!("journalctl ignores journal files ({})", others.join("; ")));
    (error, note)
}

/// One piece of journalctl's output, as [`read_lines`] hands it out.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    /// A line (with its newline, if it had one) of at most `max` bytes, of any bytes.
    Line(&'a [u8]),
    /// A line longer than `max`, skipped; its length.
    Overlong(u64),
    /// Every line read so far was handed out: journalctl has nothing more waiting (only when asked for).
    Idle,
}

/// Reads newline-separated lines of up to `max` bytes, including invalid UTF-8, without loss; a longer line is
/// skipped to its newline (memory stays at `max` whatever the input) and reported as [`Piece::Overlong`]. With
/// `idle`, also reports [`Piece::Idle`] whenever the buffered input is used up, so a record held back by the
/// assembler is not held for long, and at the end.
fn read_lines(r: impl Read, max: usize, idle: bool, mut f: impl FnMut(Piece<'_>)) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(1 << 16, r);
    let mut line: Vec<u8> = Vec::with_capacity(4096);
    // Bytes of the overlong line being skipped, if one is.
    let mut skipping: Option<u64> = None;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            match skipping {
                Some(n) => f(Piece::Overlong(n)),
                None if !line.is_empty() => f(Piece::Line(&line)),
                None => {}
            }
            if idle {
                f(Piece::Idle);
            }
            return Ok(());
        }
        let (used, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        match skipping.as_mut() {
            Some(n) => *n += used as u64,
            None if line.len() + used > max => {
                skipping = Some((line.len() + used) as u64);
                line = Vec::with_capacity(4096);
            }
            None => line.extend_from_slice(&available[..used]),
        }
        r.consume(used);
        if complete {
            match skipping.take() {
                Some(n) => f(Piece::Overlong(n)),
                None => f(Piece::Line(&line)),
            }
            line.clear();
            if idle && r.buffer().is_empty() {
                f(Piece::Idle);
            }
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
    /// Set while journalctl prints only lines that are not entries ([`GARBAGE_LINES`] in a row).
    garbage: Option<String>,
    /// Lines skipped: not journal entries, and longer than [`MAX_LINE`].
    not_entries: u64,
    overlong_lines: u64,
    /// Replaying what a previous run already read (after a restart), so the findings are not yet those of now:
    /// true from the start until the saved cursor's entry (or a newer one) is read, or [`REPLAY_AT_MOST`] passed.
    replaying: bool,
    /// Why the saved cursor was not used (unreadable, damaged, refused by journalctl): reading started from the
    /// look-back window instead. Said in the journal source; the source stays ok.
    cursor_note: Option<String>,
    /// journalctl refused the saved cursor: later restarts do not offer it again.
    saved_refused: bool,
    /// Files the running journalctl said it ignores (cleared when it is started again: it says them again).
    ignored: IgnoredFiles,
}

/// How long after journalctl started a replay counts as finished even if the saved cursor's entry never came
/// (vacuumed) and nothing newer was logged.
const REPLAY_AT_MOST: Duration = Duration::from_secs(30);

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
#[derive(Debug, Clone, Default)]
pub struct JournalView {
    pub findings: Vec<Finding>,
    /// `None` while healthy; the reason while journalctl is down.
    pub error: Option<String>,
    pub matches: std::collections::BTreeMap<String, u64>,
    pub lines: std::collections::BTreeMap<String, u64>,
    pub lag_seconds: f64,
    /// Lines skipped: not journal entries, and longer than [`MAX_LINE`].
    pub not_entries: u64,
    pub overlong_lines: u64,
    /// The cursor file's content for the newest entry this view counts (`None` before the first).
    pub cursor: Option<String>,
    /// The follower is still replaying what a previous run read: its findings may be those of the past.
    pub replaying: bool,
    /// Why the saved cursor was not used and reading started from the look-back window (the source stays ok).
    pub cursor_note: Option<String>,
}

/// The daemon's handle on the follower thread.
pub struct Follower {
    shared: Arc<Mutex<Followed>>,
    store: CursorStore,
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
            garbage: None,
            not_entries: 0,
            overlong_lines: 0,
            replaying: true,
            cursor_note: None,
            saved_refused: false,
            ignored: IgnoredFiles::new(),
        }));
        let store = CursorStore::new(opts.cursor_file.clone());
        let thread_shared = Arc::clone(&shared);
        std::thread::spawn(move || follow(&opts, &thread_shared, &on_change));
        Follower { shared, store }
    }

    /// The findings active at `now_usec`, the follower's health and counters, and the cursor they describe (taken
    /// together, under one lock). The error is journalctl's, else the garbage it prints, else the cursor file's.
    pub fn view(&self, now_usec: u64) -> JournalView {
        let store_error = self.store.error(Instant::now());
        match self.shared.lock() {
            Ok(mut j) => {
                j.engine.advance(now_usec);
                let (unreadable, ignored_note) = ignored_files_say(&j.ignored);
                JournalView {
                    findings: j.engine.findings(),
                    error: j.error.clone().or_else(|| j.garbage.clone()).or(unreadable).or(store_error),
                    matches: j.engine.counts.clone(),
                    lines: j.engine.lines.clone(),
                    lag_seconds: j.lag_seconds,
                    not_entries: j.not_entries,
                    overlong_lines: j.overlong_lines,
                    cursor: (!j.cursor.is_empty()).then(|| format!("{}\n{}\n", j.cursor, j.cursor_usec)),
                    replaying: j.replaying,
                    cursor_note: match (j.cursor_note.clone(), ignored_note) {
                        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
                        (a, b) => a.or(b),
                    },
                }
            }
            Err(_) => JournalView {
                findings: Vec::new(),
                error: Some("journal state poisoned".into()),
                matches: Default::default(),
                lines: Default::default(),
                lag_seconds: 0.0,
                not_entries: 0,
                overlong_lines: 0,
                cursor: None,
                replaying: true,
                cursor_note: None,
            },
        }
    }

    /// Saves the cursor of `view` (the state about to be published), so a restart, even after `kill -9`, counts
    /// exactly the entries the published counters do not hold. While saving fails, retries with backoff (`force`:
    /// at once, on stop). Returns what changed, for the caller to log once and re-render.
    pub fn persist(&mut self, view: &JournalView, force: bool) -> Change {
        self.store.save(view.cursor.as_deref(), Instant::now(), force)
    }

    /// Whether a failed save is due to be tried again.
    pub fn retry_due(&self) -> bool {
        self.store.retry_due(Instant::now())
    }

    pub fn cursor_file(&self) -> &Path {
        self.store.path()
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
            // The saved cursor was refused (and is said in the source): start again at once from the look-back.
            Err(ReadError::CursorRefused(_)) => continue,
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
    let (in_memory, refused) = shared.lock().map(|s| (s.cursor.clone(), s.saved_refused)).unwrap_or_default();
    let saved = match (in_memory.is_empty() && !refused).then(|| super::state::load(&opts.cursor_file)) {
        Some(Ok(saved)) => saved,
        Some(Err(why)) => {
            let why = crate::model::error_chain(&why);
            let note = format!(
                "the saved journal cursor {} cannot be used ({why}): read from the look-back window ({} s) instead",
                opts.cursor_file.display(),
                opts.lookback_secs
            );
            log::warn!(source = "journal"; "{note}");
            if let Ok(mut s) = shared.lock() {
                s.cursor_note = Some(note);
            }
            on_change();
            None
        }
        None => None,
    };
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
    let from_saved = in_memory.is_empty() && matches!(start, Start::AfterCursor(_));
    if let Ok(mut s) = shared.lock() {
        s.ignored.clear();
    }
    let mut child = {
        let (shared, on_change) = (Arc::clone(shared), on_change.clone());
        exec::spawn_streaming_with(&opts.journalctl, &journalctl_args(&opts.input, &opts.units, true, start), {
            move |line| {
                let changed = shared.lock().is_ok_and(|mut s| note_ignored(&mut s.ignored, line));
                if changed {
                    log::warn!(source = "journal"; "journalctl: {line}");
                    on_change();
                }
            }
        })?
    };
    if replay.is_none() {
        if let Ok(mut s) = shared.lock() {
            s.replaying = false;
        }
    }
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
            std::thread::sleep(REPLAY_AT_MOST.saturating_sub(HEALTHY_AFTER));
            if running.load(Ordering::SeqCst) {
                let ended = shared.lock().map(|mut s| std::mem::replace(&mut s.replaying, false)).unwrap_or(false);
                if ended {
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
            // The findings are those of now once the saved cursor's entry, or a newer one, is read.
            if s.replaying
                && replay.as_ref().is_none_or(|(cursor, usec)| r.cursor == *cursor || r.realtime_usec > *usec)
            {
                s.replaying = false;
                matched = true;
            }
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
    let mut health = LineHealth::default();
    let result = stdout.map(|out| {
        read_lines(out, MAX_LINE, true, |piece| match piece {
            Piece::Line(line) if line.iter().all(u8::is_ascii_whitespace) => {}
            Piece::Line(line) => match parse_entry(line) {
                Ok(e) => {
                    if health.streak > 0 {
                        note_line(shared, &mut health, None, on_change);
                    }
                    asm.push(e, &mut record)
                }
                Err(err) => {
                    let err = crate::model::error_chain(&err);
                    log::debug!("skipping a journalctl line that is not an entry: {err}");
                    note_line(shared, &mut health, Some((format!("{err}: {}", excerpt(line)), false)), on_change);
                }
            },
            Piece::Overlong(n) => {
                let what = format!("a line of {n} bytes, longer than the {MAX_LINE} read");
                note_line(shared, &mut health, Some((what, true)), on_change);
            }
            Piece::Idle => asm.flush(&mut record),
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
    match child.wait() {
        // journalctl refuses a cursor it cannot seek to ("Failed to seek to cursor: Invalid argument") before it
        // prints any entry: the saved cursor is gone, the next start reads the look-back window.
        Err(ExecError::Failed { stderr, .. }) if from_saved && first && stderr.contains("cursor") => {
            let note = format!(
                "journalctl refused the saved journal cursor in {} ({}): read from the look-back window ({} s) instead",
                opts.cursor_file.display(),
                stderr.trim(),
                opts.lookback_secs
            );
            log::warn!(source = "journal"; "{note}");
            if let Ok(mut s) = shared.lock() {
                s.saved_refused = true;
                s.cursor_note = Some(note.clone());
            }
            Err(ReadError::CursorRefused(note))
        }
        Err(e) => Err(e.into()),
        Ok(_) => Ok(()),
    }
}

/// Unparsable lines in a row, with no entry between, after which the follower says the journal is not being read.
pub const GARBAGE_LINES: u64 = 100;

/// The run of lines that were not entries since the last entry (pure): after [`GARBAGE_LINES`] of them the
/// journal source is failing, naming the last one; an entry ends it.
#[derive(Debug, Default)]
struct LineHealth {
    streak: u64,
    flagged: bool,
}

impl LineHealth {
    /// A line that is not an entry (`what` says what it was); the message when the run reaches the limit.
    fn bad(&mut self, what: &str) -> Option<String> {
        self.streak += 1;
        (self.streak == GARBAGE_LINES && !self.flagged).then(|| {
            self.flagged = true;
            format!("journalctl printed {GARBAGE_LINES} lines in a row that are not journal entries; the last: {what}")
        })
    }

    /// An entry; true when it ends a run that had been flagged.
    fn good(&mut self) -> bool {
        self.streak = 0;
        std::mem::take(&mut self.flagged)
    }
}

/// Counts a skipped line (`bad`: what it was, and whether it was too long) or an entry after skipped lines, and
/// sets or clears the follower's garbage state.
fn note_line(
    shared: &Arc<Mutex<Followed>>,
    health: &mut LineHealth,
    bad: Option<(String, bool)>,
    on_change: &impl Fn(),
) {
    let (flag, cleared) = match &bad {
        None => (None, health.good()),
        Some((what, _)) => (health.bad(what), false),
    };
    if let Ok(mut s) = shared.lock() {
        match bad {
            Some((_, true)) => s.overlong_lines += 1,
            Some((_, false)) => s.not_entries += 1,
            None => {}
        }
        if cleared {
            s.garbage = None;
        }
        if flag.is_some() {
            s.garbage.clone_from(&flag);
        }
    }
    on_change_if(flag.is_some() || cleared, on_change);
}

/// The start of a line for a message: at most 80 bytes, lossy UTF-8, control characters escaped.
fn excerpt(line: &[u8]) -> String {
    let cut = &line[..line.len().min(80)];
    let text: String = String::from_utf8_lossy(cut).trim_end().escape_debug().collect();
    let more = if line.len() > 80 { "..." } else { "" };
    format!("\"{text}\"{more}")
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

/// The hang probe's deadline (at most; shorter when `hang_check` is shorter).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    /// journalctl's warnings as users pasted them (an OKD node's `journalctl --verify`, rkt's troubleshooting
    /// guide) and as systemd's `src/shared/journal-util.c` words them; other stderr lines are not files.
    #[test]
    fn the_files_journalctl_ignores_are_read_from_its_warnings() {
        let lines = [
            "Journal file /var/log/journal/674cc4f6256143379fd7935e328f9d5a/system@0005fc3742709c54-6eca9ce9bfe3ba10.journal~ uses an unsupported feature, ignoring file.",
            "Use SYSTEMD_LOG_LEVEL=debug journalctl --file=/var/log/journal/x/system.journal to see the details.",
            "Journal file /var/log/journal/x/system@2.journal~ corrupted, ignoring file.",
            "Journal file /run/log/journal/x/system.journal is truncated, ignoring file.",
            "Too many journal files (limit is at 7168) in scope, ignoring file '/var/log/journal/x/user-1000.journal'.",
            "Data from the specified boot (+0) is not available: No such boot ID in journal",
        ];
        let mut files = IgnoredFiles::new();
        let changed: Vec<bool> = lines.iter().map(|l| note_ignored(&mut files, l)).collect();
        assert_eq!(changed, [true, false, true, true, true, false]);
        assert!(!note_ignored(&mut files, lines[0]), "said again, nothing changes");
        assert_eq!(files.len(), 4);
        let (error, note) = ignored_files_say(&files);
        let error = error.unwrap();
        assert!(error.contains("newer systemd") && error.contains("6eca9ce9bfe3ba10.journal~"), "{error}");
        let note = note.unwrap();
        assert!(note.contains("corrupted: /var/log/journal/x/system@2.journal~"), "{note}");
        assert!(note.contains("truncated: /run/log/journal/x/system.journal"), "{note}");
        assert!(note.contains("limit: /var/log/journal/x/user-1000.journal"), "{note}");
        // Only corrupted or truncated files: a note, the source stays ok.
        files.retain(|_, k| *k != Ignored::UnsupportedFeature);
        assert_eq!(ignored_files_say(&files).0, None);
        // Bounded.
        for i in 0..100 {
            note_ignored(&mut files, &format!("Journal file /j/{i}.journal corrupted, ignoring file."));
        }
        assert_eq!(files.len(), MAX_IGNORED);
    }

    use super::*;

    #[test]
    fn a_read_error_says_its_cause_once() {
        let e = ReadError::from(std::io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(crate::model::strict_chain(&e), "reading the journal: Input/output error (os error 5)");
        let spawn =
            ExecError::Spawn { program: "/bin/journalctl".into(), source: std::io::Error::from_raw_os_error(2) };
        assert_eq!(
            crate::model::strict_chain(&ReadError::from(spawn)),
            "could not start /bin/journalctl: No such file or directory (os error 2)"
        );
    }

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
            Ok(SavedCursor { cursor: "s=1;i=2".into(), usec: Some(1_790_000_000_000_000) })
        );
        assert_eq!(SavedCursor::parse("s=1\n"), Ok(SavedCursor { cursor: "s=1".into(), usec: None }));
        assert!(SavedCursor::parse("\n").is_err());
    }

    fn pieces(data: &[u8], max: usize, idle: bool) -> Vec<String> {
        let mut out = Vec::new();
        read_lines(data, max, idle, |p| {
            out.push(match p {
                Piece::Line(l) => format!("line {}", l.len()),
                Piece::Overlong(n) => format!("overlong {n}"),
                Piece::Idle => "idle".into(),
            })
        })
        .unwrap();
        out
    }

    #[test]
    fn lines_of_any_bytes_are_read_whole_up_to_the_cap() {
        let mut data = b"short\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 100_000));
        data.extend(b"\xff\xfe\n\nlast-without-newline");
        assert_eq!(pieces(&data, MAX_LINE, false), vec!["line 6", "line 100003", "line 1", "line 20"]);
        assert_eq!(pieces(&data, MAX_LINE, true), vec!["line 6", "line 100003", "line 1", "line 20", "idle"]);
    }

    #[test]
    fn a_line_over_the_cap_is_skipped_to_its_newline_and_counted() {
        let mut data = b"a\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 300_000));
        data.extend(b"\nb\n");
        assert_eq!(pieces(&data, 1000, false), vec!["line 2", "overlong 300001", "line 2"]);
        // Input without any newline (`scan-journal -` on a binary file): one overlong line, not an abort.
        assert_eq!(pieces(&vec![b'y'; 200_000], 1000, false), vec!["overlong 200000"]);
        // Exactly at the cap is a line.
        assert_eq!(
            pieces(&[b'z'; 999].iter().chain(b"\n").copied().collect::<Vec<_>>(), 1000, false),
            vec!["line 1000"]
        );
    }

    #[test]
    fn the_reader_keeps_at_most_the_cap_in_memory() {
        // 64 MiB without a newline through a reader that counts what it hands out: the line buffer never grows
        // past the cap (the skipped bytes are never copied).
        struct Endless(u64);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = (buf.len() as u64).min(self.0) as usize;
                buf[..n].fill(b'q');
                self.0 -= n as u64;
                Ok(n)
            }
        }
        let mut got = Vec::new();
        read_lines(Endless(64 << 20), MAX_LINE, false, |p| got.push(format!("{p:?}"))).unwrap();
        assert_eq!(got, vec![format!("Overlong({})", 64u64 << 20)]);
    }

    #[test]
    fn a_run_of_garbage_lines_is_flagged_once_and_an_entry_ends_it() {
        let mut h = LineHealth::default();
        for _ in 1..GARBAGE_LINES {
            assert_eq!(h.bad("x"), None);
        }
        let msg = h.bad("expected value: \"garbage\"").unwrap();
        assert!(msg.contains("100 lines in a row") && msg.contains("garbage"), "{msg}");
        assert_eq!(h.bad("x"), None, "flagged once");
        assert!(h.good());
        assert!(!h.good());
        assert_eq!(h.bad("x"), None, "a new run starts from zero");
    }

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt(b"not json\n"), "\"not json\"");
        assert_eq!(excerpt(b"\x1b[31m\xff"), "\"\\u{1b}[31m\u{fffd}\"");
        assert!(excerpt(&[b'a'; 500]).ends_with("\"..."));
    }

    /// A fake journalctl: a shell script in a temporary directory.
    fn fake_journalctl(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("journalctl");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        path
    }

    fn engine() -> Engine {
        Engine::new(RuleSet::with_defaults(Vec::new()).unwrap())
    }

    #[test]
    fn a_scan_of_a_journalctl_that_prints_nothing_ends_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let j = fake_journalctl(dir.path(), "exec sleep 600");
        let started = Instant::now();
        let err = scan(&j, &Input::System, &[], engine(), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, ReadError::Stalled { .. }), "{err}");
        assert!(err.to_string().contains("printed nothing for 0.3 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(60), "the scan waited for the sleeping journalctl");
    }

    #[test]
    fn a_scan_counts_overlong_and_garbage_lines_and_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let entry = r#"{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"1790000000000000","_SYSTEMD_UNIT":"kubelet.service","MESSAGE":"x"}"#;
        let j = fake_journalctl(
            dir.path(),
            &format!("echo 'garbage'; head -c 3000000 /dev/zero | tr '\\0' x; echo; echo '{entry}'"),
        );
        let sc = scan(&j, &Input::System, &[], engine(), Duration::from_secs(30)).unwrap();
        assert_eq!((sc.entries, sc.bad_lines, sc.overlong_lines), (1, 1, 1));
    }

    #[test]
    fn after_a_restart_the_view_says_replaying_until_the_saved_cursors_entry_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |cursor: &str, usec: u64| {
            format!(
                r#"{{"__CURSOR":"{cursor}","__REALTIME_TIMESTAMP":"{usec}","_SYSTEMD_UNIT":"kubelet.service","MESSAGE":"x"}}"#
            )
        };
        let now = (crate::sys::now_unix() * 1e6) as u64;
        let j = fake_journalctl(
            dir.path(),
            &format!(
                "sleep 1; echo '{}'; echo '{}'; exec sleep 5",
                entry("s=1", now - 2_000_000),
                entry("s=2", now - 1_000_000)
            ),
        );
        let cursor_file = dir.path().join("journal.cursor");
        std::fs::write(&cursor_file, format!("s=2\n{}\n", now - 1_000_000)).unwrap();
        let rules = RuleSet::with_defaults(Vec::new()).unwrap();
        assert!(rules.replay_secs() > 0, "the default rules replay");
        let opts = FollowOptions {
            journalctl: j,
            input: Input::System,
            units: vec!["kubelet.service".into()],
            cursor_file,
            lookback_secs: 3600,
            hang_check: Duration::from_secs(600),
        };
        let f = Follower::start(opts, rules, || {});
        assert!(f.view(now).replaying, "a restart with a saved cursor replays first");
        let started = Instant::now();
        while f.view(now).replaying {
            assert!(started.elapsed() < Duration::from_secs(10), "the replay never ended at the cursor's entry");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(started.elapsed() < REPLAY_AT_MOST, "ended by the cursor's entry, not by the time bound");
    }

    #[allow(clippy::disallowed_methods)] // A FIFO for the test, made the ordinary way.
    fn mkfifo(path: &Path) {
        assert!(std::process::Command::new("mkfifo").arg(path).status().unwrap().success());
    }

    /// A follower on a journalctl that writes its arguments to `args` and prints one entry (or, given a saved
    /// cursor, refuses it as journalctl does when `refuse`), with `cursor_file` as left by `damage`.
    fn follow_with_cursor(dir: &Path, damage: impl FnOnce(&Path), refuse: bool) -> (Follower, PathBuf) {
        let now = (crate::sys::now_unix() * 1e6) as u64;
        let args = dir.join("args");
        let refusal = if refuse {
            "case \"$*\" in *--after-cursor*) echo 'Failed to seek to cursor: Invalid argument' >&2; exit 1;; esac"
        } else {
            ""
        };
        let entry = format!(
            r#"{{"__CURSOR":"s=9","__REALTIME_TIMESTAMP":"{}","_SYSTEMD_UNIT":"kubelet.service","MESSAGE":"x"}}"#,
            now - 1_000_000
        );
        let j = fake_journalctl(
            dir,
            &format!("echo \"$@\" >> {}\n{refusal}\necho '{entry}'; exec sleep 10", args.display()),
        );
        let cursor_file = dir.join("journal.cursor");
        damage(&cursor_file);
        let opts = FollowOptions {
            journalctl: j,
            input: Input::System,
            units: vec!["kubelet.service".into()],
            cursor_file,
            lookback_secs: 3600,
            hang_check: Duration::from_secs(600),
        };
        (Follower::start(opts, RuleSet::with_defaults(Vec::new()).unwrap(), || {}), args)
    }

    /// Waits until the follower has read the entry; the view then.
    fn read_entry(f: &Follower) -> JournalView {
        let started = Instant::now();
        loop {
            let view = f.view((crate::sys::now_unix() * 1e6) as u64);
            if view.cursor.is_some() {
                return view;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no entry read: {view:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_cursor_file_that_cannot_be_used_is_gone_said_in_the_source_and_the_lookback_is_read() {
        type Damage = Box<dyn FnOnce(&Path)>;
        let cases: Vec<(&str, Damage)> = vec![
            ("NUL bytes", Box::new(|p: &Path| std::fs::write(p, [0u8; 150]).unwrap())),
            ("garbage", Box::new(|p: &Path| std::fs::write(p, "hello world\n").unwrap())),
            ("too long", Box::new(|p: &Path| std::fs::write(p, format!("s={}\n", "a".repeat(2000))).unwrap())),
            ("1 GiB", Box::new(|p: &Path| std::fs::File::create(p).unwrap().set_len(1 << 30).unwrap())),
            ("a FIFO", Box::new(|p: &Path| mkfifo(p))),
        ];
        for (what, damage) in cases {
            let dir = tempfile::tempdir().unwrap();
            let (f, args) = follow_with_cursor(dir.path(), damage, false);
            let view = read_entry(&f);
            assert_eq!(view.error, None, "{what}: the source stays ok");
            let note =
                view.cursor_note.unwrap_or_else(|| panic!("{what}: the source does not say the cursor was gone"));
            assert!(note.contains("journal.cursor") && note.contains("look-back window"), "{what}: {note}");
            let args = std::fs::read_to_string(args).unwrap();
            assert!(args.contains("--since=@") && !args.contains("--after-cursor"), "{what}: {args}");
        }
    }

    #[test]
    fn a_cursor_journalctl_refuses_is_gone_and_the_lookback_is_read_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (f, args) = follow_with_cursor(dir.path(), |p| std::fs::write(p, "s=0123;i=77\n").unwrap(), true);
        let started = Instant::now();
        let view = read_entry(&f);
        assert!(started.elapsed() < Duration::from_secs(5), "the refused cursor held the journal up");
        assert_eq!(view.error, None);
        let note = view.cursor_note.expect("the source says the cursor was refused");
        assert!(note.contains("refused") && note.contains("Failed to seek to cursor"), "{note}");
        let args = std::fs::read_to_string(args).unwrap();
        let runs: Vec<&str> = args.lines().collect();
        assert_eq!(runs.len(), 2, "{args}");
        assert!(runs[0].contains("--after-cursor=s=0123;i=77") && runs[1].contains("--since=@"), "{args}");
    }
}
