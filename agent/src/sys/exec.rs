//! The one wrapper every subprocess goes through: configured path, `LC_ALL=C`, its own process group, the
//! parent-death signal, a deadline for the whole group (or, for a streaming child, a handle that kills it), a cap
//! on standard output and the tail of stderr in the error.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// A subprocess that could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("could not start {program}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    Timeout { program: PathBuf, timeout: Duration },
    #[error("{program} wrote more than {limit} bytes on standard output and was killed")]
    TooLarge { program: PathBuf, limit: usize },
    #[error("{program} exited with {status}: {stderr}")]
    Failed { program: PathBuf, status: std::process::ExitStatus, stderr: String },
    #[error("reading the output of {program}")]
    Io { program: PathBuf, source: std::io::Error },
}

/// The most standard output `run` keeps: ten times the iptables-save of 50k Services (24.5 MB, BENCHMARKS.md).
pub const MAX_STDOUT: usize = 256 << 20;
/// The bytes of stderr kept for an error: the last ones, where tools say why they stopped.
pub const STDERR_TAIL: usize = 4096;

/// `program args...` with the environment every child gets: `LC_ALL=C`, no colours, stdin from /dev/null,
/// stdout and stderr piped, its own process group (so the whole group can be killed), and SIGTERM when
/// routewarden dies (so a killed daemon leaves no child behind).
#[allow(clippy::disallowed_methods)] // The one place that may.
fn command<S: AsRef<std::ffi::OsStr>>(program: &Path, args: &[S]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the hook runs between fork and exec and only makes the prctl(2) call, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(super::host::set_parent_death_signal);
    }
    cmd
}

/// SIGKILL to the child's whole process group: whatever it started and left behind goes with it. Called only while
/// the child is not yet reaped or just after, so the group id cannot name someone else's group.
fn kill_group(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The last `cap` bytes written to it.
struct Tail {
    buf: Vec<u8>,
    cap: usize,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        if self.buf.len() > 2 * self.cap {
            self.buf.drain(..self.buf.len() - self.cap);
        }
    }

    fn text(mut self) -> String {
        let cut = self.buf.len().saturating_sub(self.cap);
        let text = String::from_utf8_lossy(&self.buf.split_off(cut)).trim().to_string();
        if cut > 0 {
            format!("...{text}")
        } else {
            text
        }
    }
}

/// Runs `program args...` and returns its standard output, or an error naming the program.
///
/// The deadline covers the whole run: starting, output and exit. The child runs in its own process group, and the
/// group is killed at the deadline, when stdout passes [`MAX_STDOUT`], and once the child has exited (so a
/// backgrounded grandchild that keeps the pipes open cannot hold the caller). Both pipes are read on the calling
/// thread, so a hanging tool leaves no thread behind, and the child is always reaped.
pub fn run<S: AsRef<std::ffi::OsStr>>(program: &Path, args: &[S], timeout: Duration) -> Result<Vec<u8>, ExecError> {
    run_capped(program, args, timeout, MAX_STDOUT)
}

/// [`run`] with its own cap on standard output.
pub fn run_capped<S: AsRef<std::ffi::OsStr>>(
    program: &Path,
    args: &[S],
    timeout: Duration,
    max_stdout: usize,
) -> Result<Vec<u8>, ExecError> {
    let prog = || program.to_path_buf();
    let start = Instant::now();
    let mut child = command(program, args).spawn().map_err(|source| ExecError::Spawn { program: prog(), source })?;
    let result = drive(&mut child, start + timeout, max_stdout);
    // Whatever happened, nothing of the group survives and the child is reaped.
    kill_group(&child);
    let waited = child.wait();
    let (stdout, stderr, status) = match result {
        Ok((out, err, status)) => (out, err, status),
        Err(Stop::Deadline) => return Err(ExecError::Timeout { program: prog(), timeout }),
        Err(Stop::TooLarge) => return Err(ExecError::TooLarge { program: prog(), limit: max_stdout }),
        Err(Stop::Io(source)) => return Err(ExecError::Io { program: prog(), source }),
    };
    let status = match status {
        Some(s) => s,
        None => waited.map_err(|source| ExecError::Io { program: prog(), source })?,
    };
    if !status.success() {
        return Err(ExecError::Failed { program: prog(), status, stderr: stderr.text() });
    }
    Ok(stdout)
}

/// Why `drive` stopped before the child was done.
enum Stop {
    Deadline,
    TooLarge,
    Io(std::io::Error),
}

/// Reads both pipes until end of file and waits for the exit, all before `deadline`. Once the child itself has
/// exited, its group is killed so that descendants holding the pipes let them close.
fn drive(child: &mut Child, deadline: Instant, max_stdout: usize) -> Result<(Vec<u8>, Tail, Option<ExitStatus>), Stop> {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Vec::new();
    let mut err = Tail { buf: Vec::new(), cap: STDERR_TAIL };
    let mut status = None;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if status.is_none() {
            status = child.try_wait().map_err(Stop::Io)?;
            if status.is_some() {
                kill_group(child);
            }
        }
        let closed = stdout.is_none() && stderr.is_none();
        if closed && status.is_some() {
            return Ok((out, err, status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Stop::Deadline);
        }
        // Short slices while the child runs, so its exit is noticed even while a descendant holds the pipes.
        let slice = left.min(Duration::from_millis(if status.is_some() { 200 } else { 20 }));
        if closed {
            std::thread::sleep(slice);
            continue;
        }
        let wait = PollTimeout::try_from(slice).unwrap_or(PollTimeout::ZERO);
        let (out_ready, err_ready) = {
            let mut fds = Vec::with_capacity(2);
            if let Some(s) = &stdout {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            if let Some(s) = &stderr {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, wait) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Stop::Io(e.into())),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let mut it = fds.iter();
            let o = stdout.is_some() && it.next().is_some_and(ready);
            let e = stderr.is_some() && it.next().is_some_and(ready);
            (o, e)
        };
        if out_ready {
            if let Some(s) = stdout.as_mut() {
                match s.read(&mut chunk) {
                    Ok(0) => stdout = None,
                    Ok(n) if out.len() + n > max_stdout => return Err(Stop::TooLarge),
                    Ok(n) => out.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Stop::Io(e)),
                }
            }
        }
        if err_ready {
            if let Some(s) = stderr.as_mut() {
                match s.read(&mut chunk) {
                    Ok(0) => stderr = None,
                    Ok(n) => err.push(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => stderr = None,
                }
            }
        }
    }
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
    spawn_streaming_with(program, args, |_| {})
}

/// [`spawn_streaming`], with each line of stderr (at most [`STDERR_LINE_BYTES`]) also handed to `on_stderr` as it
/// comes, on the thread that reads stderr: what the program warns about while it keeps running.
pub fn spawn_streaming_with<S: AsRef<std::ffi::OsStr>>(
    program: &Path,
    args: &[S],
    mut on_stderr: impl FnMut(&str) + Send + 'static,
) -> Result<Streaming, ExecError> {
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
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                on_stderr(&line);
                tail.push(line);
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
                kill_group(&c);
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
        if let Ok(c) = self.0.lock() {
            if let Some(c) = c.as_ref() {
                kill_group(c);
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
                Some(mut c) => {
                    let status = c.wait().map_err(|source| ExecError::Io { program: program.clone(), source })?;
                    // Anything it left behind in its group goes with it.
                    kill_group(&c);
                    status
                }
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
        assert_eq!(
            crate::sys::chain(&err),
            "could not start /nonexistent/iptables-save: No such file or directory (os error 2)"
        );
        let io = ExecError::Io { program: "/usr/bin/journalctl".into(), source: std::io::Error::from_raw_os_error(5) };
        assert_eq!(
            crate::sys::chain(&io),
            "reading the output of /usr/bin/journalctl: Input/output error (os error 5)"
        );
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

    /// Whether `pid` is gone (or only a zombie waiting for whoever adopted it).
    fn gone(pid: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next()).unwrap_or(None);
            if stat.is_empty() || state == Some('Z') || state == Some('X') {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_tool_that_backgrounds_a_child_and_exits_does_not_hold_the_caller() {
        let start = Instant::now();
        let out = run(Path::new("/bin/sh"), &["-c", "sleep 60 & echo $!"], Duration::from_secs(30)).unwrap();
        assert!(start.elapsed() < Duration::from_secs(15), "waited {:?} for the backgrounded child", start.elapsed());
        let pid = String::from_utf8(out).unwrap();
        assert!(gone(pid.trim()), "the backgrounded child {pid} still runs");
    }

    #[test]
    fn a_hanging_tool_is_killed_with_its_whole_group_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 60 & echo $! > {}; sleep 60", pidfile.display());
        // 3 s: the shell must have started its grandchild and written the pid first, even on loaded cores.
        let err = run(Path::new("/bin/sh"), &["-c", &script], Duration::from_secs(3)).unwrap_err();
        assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        assert!(gone(pid.trim()), "the grandchild {pid} outlived the deadline");
    }

    #[test]
    fn endless_output_is_cut_at_the_cap() {
        let err = run_capped(Path::new("/usr/bin/yes"), &[] as &[&str], Duration::from_secs(30), 1 << 20).unwrap_err();
        assert!(matches!(err, ExecError::TooLarge { limit: 1048576, .. }), "{err}");
    }

    #[test]
    fn a_flood_on_stderr_keeps_only_its_tail() {
        let script = "head -c 50000000 /dev/zero | tr '\\0' x >&2; echo THE-REASON >&2; exit 1";
        let err = run(Path::new("/bin/sh"), &["-c", script], Duration::from_secs(30)).unwrap_err().to_string();
        assert!(err.len() < 2 * STDERR_TAIL, "{} bytes of error", err.len());
        assert!(err.ends_with("THE-REASON") && err.contains("exit status: 1"), "{}", &err[err.len() - 100..]);
    }

    #[test]
    fn a_streaming_child_is_killed_with_its_group() {
        let mut c = spawn_streaming(Path::new("/bin/sh"), &["-c", "sleep 60 & echo $!; sleep 60"]).unwrap();
        let mut line = String::new();
        BufReader::new(c.take_stdout().unwrap()).read_line(&mut line).unwrap();
        c.stop().unwrap_err();
        assert!(gone(line.trim()), "the streaming child's child {line} still runs");
    }

    #[test]
    fn returns_stdout_with_c_locale() {
        let out = run(Path::new("/bin/sh"), &["-c", "echo $LC_ALL"], Duration::from_secs(5)).unwrap();
        assert_eq!(out, b"C\n");
    }
}
