//! In a container (`host_root` other than "/"): checks that a source would read the host, not the container's
//! own view, before it reads. A source whose check fails is marked failed with the mount or setting that is
//! missing, never read as if the container's empty netns or empty directory were the node's (a false "missing").
//! On the node itself (`host_root = "/"`) every check passes without any I/O.

use std::path::PathBuf;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum HostViewError {
    #[error(
        "host_root {root} does not hold the host's root file system: {missing} does not exist (mount the host's / \
         there read-only and recursively, so its /proc and /sys come along: a hostPath volume `/` at {root} with \
         mountPropagation HostToContainer, or podman -v /:{root}:ro,rslave)"
    )]
    NoHostRoot { root: PathBuf, missing: PathBuf },
    #[error(
        "not in the host's network namespace: this process is in net:[{own}], the host's PID 1 ({link}) in \
         net:[{host}] (run the container with hostNetwork: true / podman --network host)"
    )]
    NotHostNetwork { own: u64, host: u64, link: PathBuf },
    #[error(
        "cannot read {link} to tell whether this is the host's network namespace (reading PID 1's namespace \
         links needs CAP_SYS_PTRACE when the container's user is not PID 1's)"
    )]
    NsUnreadable {
        link: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a bpffs mount: Cilium's and Calico's pinned maps cannot be seen (mount the host's \
         /sys/fs/bpf there: a hostPath volume with mountPropagation HostToContainer, or podman -v \
         /sys/fs/bpf:{path}:ro,rslave)"
    )]
    NoBpffs { path: PathBuf },
    #[error("cannot stat {path} to tell whether it is a bpffs mount")]
    BpffsUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A source's error or the host-view check that stopped it from reading. It adds no words of its own: the failed
/// slot is made from [`Guarded::error`], so the chain and [`super::failure::classify`] start at the wrapped error.
#[derive(Debug)]
pub enum Guarded<E: std::error::Error + 'static> {
    View(HostViewError),
    Source(E),
}

impl<E: std::error::Error + 'static> From<HostViewError> for Guarded<E> {
    fn from(e: HostViewError) -> Self {
        Guarded::View(e)
    }
}

impl<E: std::error::Error + 'static> Guarded<E> {
    /// The wrapped error: the check's or the source's.
    pub fn error(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            Guarded::View(e) => e,
            Guarded::Source(e) => e,
        }
    }
}

/// Runs `f` when `check` passed.
pub fn guarded<T, E: std::error::Error + 'static>(
    check: Result<(), HostViewError>,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, Guarded<E>> {
    check?;
    f().map_err(Guarded::Source)
}

fn in_container(config: &Config) -> bool {
    config.host_root != std::path::Path::new("/")
}

/// `host_root` holds the host's root: its procfs shows a PID 1.
pub fn root(config: &Config) -> Result<(), HostViewError> {
    if !in_container(config) {
        return Ok(());
    }
    let missing = config.host_path(&config.proc_dir).join("1");
    if missing.exists() {
        Ok(())
    } else {
        Err(HostViewError::NoHostRoot { root: config.host_root.clone(), missing })
    }
}

/// `root`, and this process is in the network namespace of the host's PID 1: netlink, the xtables socket options
/// and `/proc/net` all answer for the caller's namespace.
pub fn network(config: &Config) -> Result<(), HostViewError> {
    root(config)?;
    if !in_container(config) {
        return Ok(());
    }
    let proc = config.host_path(&config.proc_dir);
    let own_link = proc.join("thread-self/ns/net");
    let link = proc.join("1/ns/net");
    let own = crate::sys::host::ns_inode(&own_link)
        .or_else(|_| crate::sys::host::ns_inode(std::path::Path::new("/proc/thread-self/ns/net")))
        .map_err(|source| HostViewError::NsUnreadable { link: own_link, source })?;
    let host = crate::sys::host::ns_inode(&link)
        .map_err(|source| HostViewError::NsUnreadable { link: link.clone(), source })?;
    if own == host {
        Ok(())
    } else {
        Err(HostViewError::NotHostNetwork { own, host, link })
    }
}

/// `root`, and the configured bpffs under `host_root` is a bpffs mount.
pub fn bpffs(config: &Config) -> Result<(), HostViewError> {
    root(config)?;
    if !in_container(config) {
        return Ok(());
    }
    let path = config.host_path(&config.bpffs);
    match crate::sys::host::is_bpffs(&path) {
        Ok(true) => Ok(()),
        // A configured bpffs directory that does not exist in a container is a bpffs mount left out.
        Ok(false) => Err(HostViewError::NoBpffs { path }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(HostViewError::NoBpffs { path }),
        Err(source) => Err(HostViewError::BpffsUnreadable { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(root: &std::path::Path) -> Config {
        Config { host_root: root.to_path_buf(), ..Config::default() }
    }

    #[test]
    fn on_the_node_every_check_passes_without_reading() {
        let c =
            Config { proc_dir: "/nonexistent-proc".into(), bpffs: "/nonexistent-bpffs".into(), ..Config::default() };
        assert!(root(&c).is_ok() && network(&c).is_ok() && bpffs(&c).is_ok());
    }

    #[test]
    fn an_empty_host_root_names_the_mount_that_is_missing() {
        let dir = std::env::temp_dir().join(format!("rw-host-view-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for check in [root, network, bpffs] {
            let msg = check(&at(&dir)).unwrap_err().to_string();
            assert!(msg.contains("does not hold the host's root") && msg.contains("/proc/1"), "{msg}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_real_root_seen_through_a_prefix_passes_the_network_check() {
        // `/` seen as host_root "/." is the same root and this test runs in PID 1's network namespace when PID 1
        // is visible and readable; otherwise the error must name the link it could not read.
        let c = at(std::path::Path::new("/."));
        match network(&c) {
            Ok(()) => {}
            Err(HostViewError::NsUnreadable { link, .. }) => assert!(link.ends_with("1/ns/net")),
            Err(HostViewError::NotHostNetwork { .. }) => {} // tests run in a container or netns of their own
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_directory_that_is_not_bpffs_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("rw-host-view-bpf-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("proc/1")).unwrap();
        std::fs::create_dir_all(dir.join("sys/fs/bpf")).unwrap();
        let msg = bpffs(&at(&dir)).unwrap_err().to_string();
        assert!(msg.contains("is not a bpffs mount") && msg.contains("sys/fs/bpf"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
