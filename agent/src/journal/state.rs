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

/// Writes the file atomically (a temporary file, then rename), so a crash never leaves half a cursor; on failure
/// the temporary file is removed (a full file system leaves it empty).
pub fn write_atomically(path: &Path, content: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let written =
        ensure_dir(path).and_then(|()| std::fs::write(&tmp, content)).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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
}
