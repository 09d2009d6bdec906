//! Facts about the host and set-up of child processes, through nix: the node's hostname and the parent-death
//! signal for children routewarden spawns; `read_regular`, the bounded, never-blocking read of a file a user
//! (or a kubeconfig) named.

use std::path::Path;

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

/// Why a file the user named could not be read. The path is the caller's to say (it names what the file is for);
/// an OS error is the cause, not repeated in the message.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening or reading it failed (the OS error says why).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("not a regular file ({0:?})")]
    NotRegular(std::fs::FileType),
    #[error("{size} bytes is more than the {cap} bytes allowed")]
    TooLarge { size: u64, cap: u64 },
    /// It grew past the bound while it was read.
    #[error("more than the {cap} bytes allowed")]
    Grew { cap: u64 },
    #[error("not UTF-8")]
    NotUtf8(#[source] std::string::FromUtf8Error),
}

/// Reads a file the user named (`--config`, `--snapshot`, the files a kubeconfig names): only a regular file or `/dev/null` (a FIFO or another
/// device would hang or never end), at most `cap` bytes, as UTF-8; the error says which of these it was.
pub fn read_regular(path: &Path, cap: u64) -> Result<String, FileError> {
    use std::io::Read;
    // `--config /dev/null` is the usual way to say "the defaults".
    let Some(f) = open_regular(path, cap)? else { return Ok(String::new()) };
    let mut data = Vec::new();
    f.take(cap + 1).read_to_end(&mut data)?;
    if data.len() as u64 > cap {
        return Err(FileError::Grew { cap });
    }
    String::from_utf8(data).map_err(FileError::NotUtf8)
}

/// Opens a file the user named for a streaming read, with the checks of [`read_regular`]: a regular file of at
/// most `cap` bytes (the reader is limited to `cap + 1` bytes, so a file that grows is cut off, and that shows as
/// an error of its parser); `None` for `/dev/null`.
pub fn open_regular(path: &Path, cap: u64) -> Result<Option<std::io::Take<std::fs::File>>, FileError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO waits for a writer otherwise; for a regular file it changes nothing.
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        if path == Path::new("/dev/null") {
            return Ok(None);
        }
        return Err(FileError::NotRegular(meta.file_type()));
    }
    if meta.len() > cap {
        return Err(FileError::TooLarge { size: meta.len(), cap });
    }
    Ok(Some(f.take(cap + 1)))
}

/// The inode of the namespace a `/proc/<pid>/ns/<kind>` link names (stat follows it into nsfs): two processes
/// share a namespace when these are equal. Reading another process's link needs ptrace read access to it.
pub fn ns_inode(link: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(link).map(|m| m.ino())
}

/// Whether `path` lies on a bpffs mount (statfs's f_type is BPF_FS_MAGIC).
pub fn is_bpffs(path: &Path) -> std::io::Result<bool> {
    let st = nix::sys::statfs::statfs(path).map_err(std::io::Error::from)?;
    Ok(st.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
}

/// This process's own cgroup file (not a host path: it always describes the caller).
const OWN_CGROUP: &str = "/proc/self/cgroup";

/// The systemd unit this process runs in, when systemd started it (`$INVOCATION_ID` is set) and its cgroup v2 path
/// ends in a unit: `0::/system.slice/routewarden-wait@kube\x2dproxy.service` is that service.
pub fn own_systemd_unit() -> Option<String> {
    std::env::var_os("INVOCATION_ID")?;
    let text = read_regular(Path::new(OWN_CGROUP), 64 << 10).ok()?;
    unit_of_cgroup(&text)
}

/// The unit in `/proc/self/cgroup`'s text: the last path component of the cgroup v2 line (`0::PATH`) that names a
/// service or scope.
pub fn unit_of_cgroup(text: &str) -> Option<String> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    path.rsplit('/').find(|c| c.ends_with(".service") || c.ends_with(".scope")).map(str::to_string)
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
