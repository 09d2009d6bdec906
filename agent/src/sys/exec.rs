//! The one wrapper every subprocess goes through: configured path, `LC_ALL=C`, a timeout, stderr in the error.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A subprocess that could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("could not start {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    Timeout { program: PathBuf, timeout: Duration },
    #[error("{program} exited with {status}: {stderr}")]
    Failed { program: PathBuf, status: std::process::ExitStatus, stderr: String },
    #[error("reading the output of {program}: {source}")]
    Io { program: PathBuf, source: std::io::Error },
}

/// Runs `program args...` and returns its standard output, or an error naming the program.
pub fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<Vec<u8>, ExecError> {
    let prog = || program.to_path_buf();
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ExecError::Spawn { program: prog(), source })?;

    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let res = stdout.as_mut().map(|s| s.read_to_end(&mut buf)).transpose();
        res.map(|_| buf)
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.as_mut().map(|s| s.read_to_end(&mut buf));
        buf
    });

    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ExecError::Timeout { program: prog(), timeout });
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(source) => return Err(ExecError::Io { program: prog(), source }),
        }
    };
    let stdout = out_thread
        .join()
        .unwrap_or_else(|_| Ok(Vec::new()))
        .map_err(|source| ExecError::Io { program: prog(), source })?;
    let stderr = err_thread.join().unwrap_or_default();
    if !status.success() {
        let text = String::from_utf8_lossy(&stderr).trim().to_string();
        return Err(ExecError::Failed { program: prog(), status, stderr: text });
    }
    Ok(stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_stderr_and_status_of_a_failing_command() {
        let err = run(Path::new("/bin/sh"), &["-c", "echo boom >&2; exit 3"], Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(err.contains("boom") && err.contains("exit status: 3"), "{err}");
    }

    #[test]
    fn kills_a_command_that_overruns_its_timeout() {
        let start = Instant::now();
        let err = run(Path::new("/bin/sleep"), &["5"], Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn names_a_missing_binary() {
        let err = run(Path::new("/nonexistent/iptables-save"), &[], Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/iptables-save"), "{err}");
    }

    #[test]
    fn returns_stdout_with_c_locale() {
        let out = run(Path::new("/bin/sh"), &["-c", "echo $LC_ALL"], Duration::from_secs(5)).unwrap();
        assert_eq!(out, b"C\n");
    }
}
