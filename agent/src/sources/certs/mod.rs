//! Certificates: kubelet PKI, kubeconfigs with embedded client certificates, the control-plane PKI, and
//! configured paths (globs, under the host root). A corrupt or unreadable file is a per-file error, never a failed
//! source; private keys are skipped and key material is never kept.
//!
//! Each glob is walked from its literal prefix without following directory symlinks (a `self -> .` or `up -> ..`
//! loop, or a `rootlink -> /`, is never entered), in name order, bounded in entries, depth, file size and time;
//! a file reached twice (a symlink to a certificate next to it) is read once, by device and inode.

pub mod parse;

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::model::certs::CertState;

/// Bounds of one collection's walk, over all patterns.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Directory entries looked at.
    pub entries: usize,
    /// Directory levels below a pattern's literal prefix.
    pub depth: usize,
    /// The largest file read (a certificate bundle is a few kB).
    pub file_bytes: u64,
    /// Time for the whole walk.
    pub time: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds { entries: 50_000, depth: 16, file_bytes: 4 << 20, time: Duration::from_secs(10) }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid certificate path pattern {pattern:?}")]
pub struct CertsError {
    pattern: String,
    source: glob::PatternError,
}

pub fn fetch(config: &Config) -> Result<CertState, CertsError> {
    fetch_bounded(config, Bounds::default())
}

/// [`fetch`] within `bounds`; what the bounds cut off is a per-path error.
pub fn fetch_bounded(config: &Config, bounds: Bounds) -> Result<CertState, CertsError> {
    let mut state = CertState {
        warning_days: config.certificates.warning_days,
        critical_days: config.certificates.critical_days,
        ..CertState::default()
    };
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + bounds.time;
    let mut visited = 0usize;
    let opts = glob::MatchOptions { require_literal_separator: true, ..glob::MatchOptions::new() };
    for pattern in &config.certificates.paths {
        let full = config.host_path(Path::new(pattern));
        let matcher = glob::Pattern::new(&full.to_string_lossy())
            .map_err(|source| CertsError { pattern: pattern.clone(), source })?;
        let (root, rest) = literal_prefix(&full);
        let depth = if rest.iter().any(|c| c == "**") { bounds.depth } else { rest.len() };
        let walk = walkdir::WalkDir::new(&root).follow_links(false).max_depth(depth).sort_by_file_name();
        for entry in walk {
            visited += 1;
            if visited > bounds.entries || Instant::now() > deadline {
                let why = if visited > bounds.entries {
                    format!("stopped after {} directory entries", bounds.entries)
                } else {
                    format!("stopped after {:?}", bounds.time)
                };
                state.errors.push((root.clone(), format!("certificate search {why}; the rest was not looked at")));
                return Ok(state);
            }
            let entry = match entry {
                Ok(e) => e,
                Err(e) if e.io_error().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) => continue,
                Err(e) => {
                    let path = e.path().map_or_else(|| root.clone(), Path::to_path_buf);
                    state.errors.push((path, e.to_string()));
                    continue;
                }
            };
            // Directories are walked only as themselves: a symlink to one is never followed.
            if entry.file_type().is_dir() || !matcher.matches_path_with(entry.path(), opts) {
                continue;
            }
            let path = entry.path().to_path_buf();
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    state.errors.push((path, e.to_string()));
                    continue;
                }
            };
            if !meta.is_file() || !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            match read_capped(&path, bounds.file_bytes) {
                Ok(data) => {
                    let (certs, errors) = parse::certificates(&data, &path);
                    state.certificates.extend(certs);
                    state.errors.extend(errors.into_iter().map(|e| (path.clone(), e)));
                }
                Err(e) => state.errors.push((path, crate::model::error_chain(&e))),
            }
        }
    }
    Ok(state)
}

/// The leading components of `path` without glob characters, and the rest.
fn literal_prefix(path: &Path) -> (PathBuf, Vec<String>) {
    let mut root = PathBuf::new();
    let mut rest = Vec::new();
    for c in path.components() {
        let text = c.as_os_str().to_string_lossy();
        if rest.is_empty() && (matches!(c, Component::RootDir) || !text.contains(['*', '?', '['])) {
            root.push(c);
        } else {
            rest.push(text.into_owned());
        }
    }
    (root, rest)
}

/// Why a certificate file was not read (kept in the state as text, per path).
#[derive(Debug, thiserror::Error)]
enum FileError {
    /// Opening or reading it failed: the OS error says why.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("larger than {0} bytes: not a certificate")]
    TooLarge(u64),
}

fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    let f = std::fs::File::open(path)?;
    let mut data = Vec::new();
    f.take(cap + 1).read_to_end(&mut data)?;
    if data.len() as u64 > cap {
        return Err(FileError::TooLarge(cap));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_bad_pattern_and_an_unreadable_file_say_their_cause_once() {
        let source = glob::Pattern::new("/etc/[x").unwrap_err();
        let e = CertsError { pattern: "/etc/[x".into(), source };
        assert_eq!(
            crate::model::strict_chain(&e),
            "invalid certificate path pattern \"/etc/[x\": Pattern syntax error near position 5: invalid range pattern"
        );
        let dir = tempfile::tempdir().unwrap();
        let gone = read_capped(&dir.path().join("gone.pem"), 10).unwrap_err();
        assert_eq!(crate::model::strict_chain(&gone), "No such file or directory (os error 2)");
        std::fs::write(dir.path().join("big.pem"), [b'x'; 11]).unwrap();
        let big = read_capped(&dir.path().join("big.pem"), 10).unwrap_err();
        assert_eq!(crate::model::strict_chain(&big), "larger than 10 bytes: not a certificate");
    }

    fn cert_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["node".into()]).unwrap().self_signed(&key).unwrap().pem()
    }

    fn config(root: &Path, paths: &[&str]) -> Config {
        let mut c = Config { host_root: root.to_path_buf(), ..Config::default() };
        c.certificates.paths = paths.iter().map(|p| p.to_string()).collect();
        c
    }

    #[test]
    fn symlink_loops_and_a_link_to_the_root_are_not_followed_and_each_file_counts_once() {
        let d = tempfile::tempdir().unwrap();
        let pki = d.path().join("etc/kubernetes/pki");
        std::fs::create_dir_all(pki.join("a")).unwrap();
        std::fs::write(pki.join("a/ca.crt"), cert_pem()).unwrap();
        symlink("..", pki.join("a/up")).unwrap();
        symlink(".", pki.join("self")).unwrap();
        symlink("/", pki.join("a/rootlink")).unwrap();
        symlink("a/ca.crt", pki.join("same.crt")).unwrap();
        let start = Instant::now();
        let state = fetch(&config(d.path(), &["/etc/kubernetes/pki/**/*.crt"])).unwrap();
        assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
        assert_eq!(state.certificates.len(), 1, "{:?}", state.certificates);
        assert_eq!(state.certificates[0].path, pki.join("a/ca.crt"));
        assert!(state.errors.is_empty(), "{:?}", state.errors);
    }

    #[test]
    fn the_walk_is_bounded_and_says_where_it_stopped() {
        let d = tempfile::tempdir().unwrap();
        let pki = d.path().join("pki");
        for i in 0..50 {
            std::fs::create_dir_all(pki.join(format!("d{i}"))).unwrap();
        }
        let bounds = Bounds { entries: 20, ..Bounds::default() };
        let state = fetch_bounded(&config(d.path(), &["/pki/**/*.crt"]), bounds).unwrap();
        assert_eq!(state.errors.len(), 1, "{:?}", state.errors);
        assert!(state.errors[0].1.contains("stopped after 20 directory entries"), "{:?}", state.errors);
    }

    #[test]
    fn a_huge_or_special_file_is_not_read_whole() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("pki")).unwrap();
        std::fs::write(d.path().join("pki/big.crt"), vec![b'x'; 5 << 20]).unwrap();
        #[allow(clippy::disallowed_methods)] // a test's own helper tool
        let made = std::process::Command::new("mkfifo").arg(d.path().join("pki/fifo.crt")).status().unwrap();
        assert!(made.success());
        let state = fetch(&config(d.path(), &["/pki/*.crt"])).unwrap();
        assert_eq!(state.errors.len(), 1, "{:?}", state.errors);
        assert!(state.errors[0].1.contains("larger than"), "{:?}", state.errors);
    }

    #[test]
    fn plain_paths_and_single_level_globs_still_match() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("var/lib/kubelet/pki/sub")).unwrap();
        std::fs::write(d.path().join("var/lib/kubelet/pki/a.pem"), cert_pem()).unwrap();
        std::fs::write(d.path().join("var/lib/kubelet/pki/sub/b.pem"), cert_pem()).unwrap();
        std::fs::write(d.path().join("var/lib/kubelet/kubeconfig"), cert_pem()).unwrap();
        let c = config(d.path(), &["/var/lib/kubelet/pki/*.pem", "/var/lib/kubelet/kubeconfig", "/nope/*.crt"]);
        let state = fetch(&c).unwrap();
        let paths: Vec<&Path> = state.certificates.iter().map(|c| c.path.as_path()).collect();
        assert_eq!(
            paths,
            [d.path().join("var/lib/kubelet/pki/a.pem"), d.path().join("var/lib/kubelet/kubeconfig")],
            "{:?}",
            state.errors
        );
    }
}
