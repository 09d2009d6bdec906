//! Facts about the host and set-up of child processes, through nix: the node's hostname and the parent-death
//! signal for children routewarden spawns.

use nix::sys::prctl;
use nix::sys::signal::Signal;

/// The kernel's hostname (the UTS namespace's nodename), or `unknown` when it cannot be read.
///
/// A name that is not UTF-8 is kept with replacement characters.
pub fn hostname() -> String {
    match nix::unistd::gethostname() {
        Ok(name) => name.to_string_lossy().into_owned(),
        Err(_) => "unknown".into(),
    }
}

/// Asks the kernel to send SIGTERM to the calling process when its parent goes away (PR_SET_PDEATHSIG).
///
/// Meant for a `std::os::unix::process::CommandExt::pre_exec` hook, between fork and exec, so that a child such as
/// a following `journalctl` does not outlive a routewarden that was killed:
///
/// ```ignore
/// // SAFETY: set_parent_death_signal is async-signal-safe.
/// unsafe { command.pre_exec(routewarden::sys::host::set_parent_death_signal) };
/// ```
///
/// It is async-signal-safe, as code in the forked child of a multi-threaded process must be: it makes the single
/// prctl(2) system call and reads errno, with no allocation, lock or buffered I/O (the error, if any, is an
/// `io::Error` holding the raw errno, which does not allocate either).
///
/// What the kernel watches is the thread that forked the child, not the whole parent process: a child spawned
/// from a short-lived thread is signalled when that thread ends. And a parent that died before this call is not
/// noticed: the child is then already re-parented.
pub fn set_parent_death_signal() -> std::io::Result<()> {
    prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_is_the_kernels() {
        let want = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname(), want.trim());
    }

    #[test]
    fn parent_death_signal_is_sigterm() {
        // The setting belongs to the calling thread, this test's own; it is put back before the test ends.
        let before = prctl::get_pdeathsig().unwrap();
        set_parent_death_signal().unwrap();
        let after = prctl::get_pdeathsig().unwrap();
        prctl::set_pdeathsig(before).unwrap();
        assert_eq!(after, Some(Signal::SIGTERM));
    }
}
