//! The journal's cursor file in the state directory: written atomically with the state it describes, a failure to
//! write it kept as data (the journal source says so) and retried with backoff, never logged more than once per
//! change, and no temporary file left behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The first retry after a failed save, and the longest wait between retries.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// Where the cursor is saved, what was saved last and why saving fails, if it does.
#[derive(Debug)]
pub struct CursorStore {
    path: PathBuf,
    /// The content last written, so an unchanged cursor is not written again.
    saved: Option<String>,
    /// The directory took a probe file (before any cursor was saved).
    checked: bool,
    failure: Option<Failure>,
}

#[derive(Debug)]
struct Failure {
    error: String,
    retry_at: Instant,
    backoff: Duration,
}

/// What a save attempt changed, for the caller to log and re-render once per change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing new: written, already saved, or waiting for the next retry.
    None,
    /// Saving failed for a new reason (the message).
    Failed(String),
    /// Saving works again after failing.
    Recovered,
}

impl CursorStore {
    pub fn new(path: PathBuf) -> CursorStore {
        CursorStore { path, saved: None, checked: false, failure: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the cursor cannot be saved, with when it is retried; `None` while saving works.
    pub fn error(&self, now: Instant) -> Option<String> {
        self.failure.as_ref().map(|f| {
            format!(
                "{}; the journal is read, but a restart would count entries again; retrying in {} s",
                f.error,
                f.retry_at.saturating_duration_since(now).as_secs().max(1)
            )
        })
    }

    /// Whether a failed save is due to be tried again.
    pub fn retry_due(&self, now: Instant) -> bool {
        self.failure.as_ref().is_some_and(|f| now >= f.retry_at)
    }

    /// Saves `content` (the cursor and its time) when it changed; with `None` (no entry read yet) checks that the
    /// directory can hold the file. While failing, tries again only once the backoff has passed (or when `force`).
    pub fn save(&mut self, content: Option<&str>, now: Instant, force: bool) -> Change {
        if !force && self.failure.as_ref().is_some_and(|f| now < f.retry_at) {
            return Change::None;
        }
        let result = match content {
            Some(c) if self.saved.as_deref() != Some(c) => write_atomically(&self.path, c),
            // Unchanged and saved: nothing to do unless a failure (of a probe) is being retried.
            Some(_) if self.failure.is_none() => return Change::None,
            _ if self.failure.is_none() && (self.saved.is_some() || self.checked) => return Change::None,
            _ => probe(&self.path),
        };
        match result {
            Ok(()) => {
                match content {
                    Some(c) => self.saved = Some(c.to_string()),
                    None => self.checked = true,
                }
                match self.failure.take() {
                    Some(_) => Change::Recovered,
                    None => Change::None,
                }
            }
            Err(e) => {
                let error = format!("saving the journal cursor to {}: {e}", self.path.display());
                let backoff = self.failure.as_ref().map_or(FIRST_RETRY, |f| (f.backoff * 2).min(MAX_RETRY));
                let new = self.failure.as_ref().is_none_or(|f| f.error != error);
                self.failure = Some(Failure { error: error.clone(), retry_at: now + backoff, backoff });
                if new {
                    Change::Failed(error)
                } else {
                    Change::None
                }
            }
        }
    }
}

/// Writes the file atomically (a temporary file, then rename), so a crash never leaves half a cursor: the file's
/// data and then the directory are synced, so after a crash the name holds the old cursor or the new one, never
/// zeroes. Whatever sits at the temporary name (a file a crash left, a FIFO) is removed and the file created anew
/// (`O_EXCL`), so opening it never blocks. On failure the temporary file is removed (a full file system leaves it
/// empty).
pub fn write_atomically(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let written = ensure_dir(path)
        .and_then(|()| match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .and_then(|()| std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp))
        .and_then(|mut f| f.write_all(content.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .and_then(|()| sync_dir(path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Syncs the directory holding `path`, so a rename into it survives a crash.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => std::fs::File::open(".")?.sync_all(),
    }
}

/// The most a cursor file holds: a journald cursor is about 140 bytes, the time 16 digits.
pub const MAX_CURSOR_FILE: u64 = 4096;
/// The longest cursor accepted.
pub const MAX_CURSOR: usize = 1024;

/// The cursor file: the cursor, then (since the journal replay) the entry's time in µs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCursor {
    pub cursor: String,
    pub usec: Option<u64>,
}

/// Why a cursor file's text is no cursor routewarden wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("it is empty")]
    Empty,
    #[error("a cursor of {0} bytes, longer than {MAX_CURSOR}")]
    TooLong(usize),
    /// The first 40 characters.
    #[error("not a journal cursor: {0:?}")]
    NotACursor(String),
    /// The first 40 characters of the second line.
    #[error("not a time in µs: {0:?}")]
    NotATime(String),
    #[error("more than a cursor and its time")]
    Trailing,
}

/// Why the cursor file cannot be used: it could not be read, or what it holds is no cursor. Each says it all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] crate::sys::host::FileError),
    #[error(transparent)]
    Parse(#[from] CursorError),
}

impl SavedCursor {
    /// The cursor and its time, or why this text is no cursor routewarden wrote (NUL bytes a crash left, garbage,
    /// a cursor too long).
    pub fn parse(text: &str) -> Result<SavedCursor, CursorError> {
        let mut lines = text.lines().map(str::trim);
        let cursor = lines.next().filter(|c| !c.is_empty()).ok_or(CursorError::Empty)?;
        // journald's cursors are `s=<hex>;i=<hex>;b=<hex>;m=<hex>;t=<hex>;x=<hex>`.
        if cursor.len() > MAX_CURSOR {
            return Err(CursorError::TooLong(cursor.len()));
        }
        if !cursor.contains('=') || !cursor.bytes().all(|b| b.is_ascii_alphanumeric() || b"=;_-".contains(&b)) {
            return Err(CursorError::NotACursor(cursor.chars().take(40).collect()));
        }
        let usec = match lines.next() {
            None | Some("") => None,
            Some(u) => Some(u.parse().map_err(|_| CursorError::NotATime(u.chars().take(40).collect()))?),
        };
        if lines.any(|l| !l.is_empty()) {
            return Err(CursorError::Trailing);
        }
        Ok(SavedCursor { cursor: cursor.to_string(), usec })
    }
}

/// Reads the cursor file bounded and without blocking (only a regular file of at most [`MAX_CURSOR_FILE`] bytes;
/// a FIFO or a device is refused at once): `Ok(None)` when there is none, `Err` saying why one cannot be used.
pub fn load(path: &Path) -> Result<Option<SavedCursor>, LoadError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let text = crate::sys::host::read_regular(path, MAX_CURSOR_FILE)?;
    Ok(Some(SavedCursor::parse(&text)?))
}

/// Checks that the directory exists (creating it) and takes a byte (a full file system refuses it).
fn probe(path: &Path) -> std::io::Result<()> {
    let test = path.with_extension("write-test");
    let written = ensure_dir(path).and_then(|()| std::fs::write(&test, b"x"));
    let _ = std::fs::remove_file(&test);
    written
}

fn ensure_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_save_leaves_no_temporary_file_and_is_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.cursor");
        // A non-empty directory where the cursor file should be: the temporary file is written, the rename fails.
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("x"), b"").unwrap();
        let mut store = CursorStore::new(path.clone());
        let t0 = Instant::now();
        let change = store.save(Some("s=1\n1\n"), t0, false);
        assert!(matches!(&change, Change::Failed(e) if e.contains("journal.cursor")), "{change:?}");
        assert!(!dir.path().join("journal.tmp").exists(), "the temporary file stayed behind");
        let err = store.error(t0).unwrap();
        assert!(err.contains("saving the journal cursor") && err.contains("retrying in 1 s"), "{err}");
        // The same failure again is no new change (logged once), and is not retried before its time.
        assert_eq!(store.save(Some("s=2\n2\n"), t0, false), Change::None);
        assert!(!store.retry_due(t0 + Duration::from_millis(500)));
        assert!(store.retry_due(t0 + FIRST_RETRY));
        assert_eq!(store.save(Some("s=2\n2\n"), t0 + FIRST_RETRY, false), Change::None);
        // Backoff doubles: the next retry is 2 s after the second failure.
        assert!(!store.retry_due(t0 + FIRST_RETRY + Duration::from_millis(1500)));
        assert!(store.retry_due(t0 + FIRST_RETRY + Duration::from_secs(2)));
        // Fixed: the retry saves and recovers.
        std::fs::remove_dir_all(&path).unwrap();
        let t = t0 + Duration::from_secs(10);
        assert_eq!(store.save(Some("s=3\n3\n"), t, false), Change::Recovered);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "s=3\n3\n");
        assert_eq!(store.error(t), None);
        assert!(!dir.path().join("journal.tmp").exists());
    }

    #[test]
    fn an_unusable_directory_is_found_before_any_entry_and_retried_until_it_works() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the state directory should be.
        let state = dir.path().join("state");
        std::fs::write(&state, b"").unwrap();
        let mut store = CursorStore::new(state.join("journal.cursor"));
        let t0 = Instant::now();
        assert!(matches!(store.save(None, t0, false), Change::Failed(_)));
        assert!(store.error(t0).is_some());
        std::fs::remove_file(&state).unwrap();
        assert_eq!(store.save(None, t0 + Duration::from_millis(10), false), Change::None, "not yet due");
        assert_eq!(store.save(None, t0 + FIRST_RETRY, false), Change::Recovered);
        assert!(state.is_dir() && std::fs::read_dir(&state).unwrap().next().is_none(), "the probe left a file");
        // Backoff is capped.
        let mut store = CursorStore::new(dir.path().join("file/journal.cursor"));
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let mut t = t0;
        for _ in 0..20 {
            store.save(None, t, true);
            t += MAX_RETRY * 2;
        }
        assert!(store.retry_due(t - MAX_RETRY * 2 + MAX_RETRY));
    }

    #[test]
    fn an_unchanged_cursor_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.cursor");
        let mut store = CursorStore::new(path.clone());
        let t = Instant::now();
        assert_eq!(store.save(Some("s=1\n1\n"), t, false), Change::None);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(store.save(Some("s=1\n1\n"), t, false), Change::None);
        assert!(!path.exists(), "written again although unchanged");
        store.save(Some("s=2\n2\n"), t, false);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "s=2\n2\n");
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // A FIFO for the test, made the ordinary way.
    fn a_fifo_at_the_temporary_name_does_not_block_the_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.cursor");
        let fifo = dir.path().join("journal.tmp");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let mut store = CursorStore::new(p);
            let _ = tx.send(store.save(Some("s=1\n1\n"), Instant::now(), false));
        });
        let change = rx.recv_timeout(Duration::from_secs(5)).expect("saving blocked on the FIFO at journal.tmp");
        assert_eq!(change, Change::None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "s=1\n1\n");
        assert!(!fifo.exists());
    }

    #[test]
    fn a_saved_cursor_loads_and_a_damaged_one_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.cursor");
        assert_eq!(load(&path).unwrap(), None);
        write_atomically(&path, "s=ab;i=1\n1790000000000000\n").unwrap();
        assert_eq!(
            load(&path).unwrap(),
            Some(SavedCursor { cursor: "s=ab;i=1".into(), usec: Some(1_790_000_000_000_000) })
        );
        let why = |path: &Path| crate::model::strict_chain(&load(path).unwrap_err());
        std::fs::write(&path, [0u8; 64]).unwrap();
        assert_eq!(why(&path), format!("not a journal cursor: {:?}", "\0".repeat(40)));
        std::fs::write(&path, "s=1\nnot-a-time\n").unwrap();
        assert_eq!(why(&path), "not a time in µs: \"not-a-time\"");
        std::fs::write(&path, "s=1\n1\nmore\n").unwrap();
        assert_eq!(why(&path), "more than a cursor and its time");
        std::fs::write(&path, b"s=1\n\xff\n").unwrap();
        assert_eq!(why(&path), "not UTF-8: invalid utf-8 sequence of 1 bytes from index 4");
        std::fs::File::create(&path).unwrap().set_len(1 << 30).unwrap();
        assert_eq!(why(&path), "1073741824 bytes is more than the 4096 bytes allowed");
        assert_eq!(
            why(dir.path()),
            "not a regular file (FileType { is_file: false, is_dir: true, is_symlink: false, .. })"
        );
    }
}
