//! The one wrapper every subprocess goes through: configured path, `LC_ALL=C`, the parent-death signal, a
//! timeout (or, for a streaming child, a handle that kills it), stderr in the error.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
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

/// `program args...` with the environment every child gets: `LC_ALL=C`, no colours, stdin from /dev/null,
/// stdout and stderr piped, and SIGTERM when routewarden dies (so a killed daemon leaves no child behind).
#[allow(clippy::disallowed_methods)] // The one place that may.
fn command<S: AsRef<std::ffi::OsStr>>(program: &Path, args: &[S]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the hook runs between fork and exec and only makes the prctl(2) call, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(super::host::set_parent_death_signal);
    }
    cmd
}

/// Runs `program args...` and returns its standard output, or an error naming the program.
pub fn run<S: AsRef<std::ffi::OsStr>>(program: &Path, args: &[S], timeout: Duration) -> Result<Vec<u8>, ExecError> {
    let prog = || program.to_path_buf();
    let mut child = command(program, args).spawn().map_err(|source| ExecError::Spawn { program: prog(), source })?;

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

/// A child whose standard output is read as it comes (a following journalctl). The caller takes stdout; the
/// handle kills (by its own pid, under a lock shared with `wait`, so a signal never reaches a reaped pid) and
/// reaps it, and keeps the last lines of its stderr for the reason it exited.
#[derive(Debug)]
pub struct Streaming {
    program: PathBuf,
    child: Arc<Mutex<Option<Child>>>,
    stdout: Option<ChildStdout>,
    stderr: Option<std::thread::JoinHandle<Vec<String>>>,
}

/// Lines of stderr kept for the error message, and the longest line kept.
const STDERR_LINES: usize = 5;
const STDERR_LINE_BYTES: usize = 1024;

/// Starts `program args...` with stdout to read as a stream.
pub fn spawn_streaming<S: AsRef<std::ffi::OsStr>>(program: &Path, args: &[S]) -> Result<Streaming, ExecError> {
    let mut child =
        command(program, args).spawn().map_err(|source| ExecError::Spawn { program: program.to_path_buf(), source })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            let mut tail: Vec<String> = Vec::new();
            let mut r = BufReader::new(err);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                buf.truncate(STDERR_LINE_BYTES);
                tail.push(String::from_utf8_lossy(&buf).trim_end().to_string());
                if tail.len() > STDERR_LINES {
                    tail.remove(0);
                }
                buf.clear();
            }
            tail
        })
    });
    Ok(Streaming { program: program.to_path_buf(), child: Arc::new(Mutex::new(Some(child))), stdout, stderr })
}

/// A handle dropped without `wait` or `stop` (a panicking reader) still kills and reaps its child.
impl Drop for Streaming {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.child.lock() {
            if let Some(mut c) = guard.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Kills a streaming child from another thread; does nothing once it has been reaped.
#[derive(Debug, Clone)]
pub struct Killer(Arc<Mutex<Option<Child>>>);

impl Killer {
    pub fn kill(&self) {
        if let Ok(mut c) = self.0.lock() {
            if let Some(c) = c.as_mut() {
                let _ = c.kill();
            }
        }
    }
}

impl Streaming {
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    pub fn killer(&self) -> Killer {
        Killer(Arc::clone(&self.child))
    }

    /// Kills the child if it still runs and reaps it.
    pub fn stop(self) -> Result<(), ExecError> {
        self.killer().kill();
        self.wait().map(|_| ())
    }

    /// Waits for the child to exit; an exit other than success is an error carrying the tail of its stderr.
    pub fn wait(mut self) -> Result<ExitStatus, ExecError> {
        let program = self.program.clone();
        let status = {
            let mut guard = self.child.lock().map_err(|_| ExecError::Io {
                program: program.clone(),
                source: std::io::Error::other("child handle poisoned"),
            })?;
            match guard.take() {
                Some(mut c) => c.wait().map_err(|source| ExecError::Io { program: program.clone(), source })?,
                None => return Err(ExecError::Io { program, source: std::io::Error::other("already reaped") }),
            }
        };
        // The child has exited, so its stderr reaches end of file and the thread ends.
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default().join("; ");
        if !status.success() {
            return Err(ExecError::Failed { program, status, stderr });
        }
        Ok(status)
    }
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
        let err = run(Path::new("/nonexistent/iptables-save"), &[] as &[&str], Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/iptables-save"), "{err}");
    }

    #[test]
    fn a_streaming_child_is_read_as_it_comes_and_reports_its_stderr() {
        let mut c = spawn_streaming(Path::new("/bin/sh"), &["-c", "echo one; echo two; echo bad >&2; exit 4"]).unwrap();
        let mut out = String::new();
        c.take_stdout().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "one\ntwo\n");
        let err = c.wait().unwrap_err().to_string();
        assert!(err.contains("bad") && err.contains("exit status: 4"), "{err}");
    }

    #[test]
    fn a_streaming_child_can_be_killed_from_another_thread() {
        let mut c = spawn_streaming(Path::new("/bin/sleep"), &["30"]).unwrap();
        let killer = c.killer();
        let start = Instant::now();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            killer.kill();
        });
        let mut out = Vec::new();
        c.take_stdout().unwrap().read_to_end(&mut out).unwrap();
        assert!(c.wait().is_err());
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn returns_stdout_with_c_locale() {
        let out = run(Path::new("/bin/sh"), &["-c", "echo $LC_ALL"], Duration::from_secs(5)).unwrap();
        assert_eq!(out, b"C\n");
    }
}
