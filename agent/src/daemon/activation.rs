//! Socket activation (sd_listen_fds(3)): the listeners systemd's `routewarden.socket` holds from boot, passed as
//! descriptors 3.. with `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`. [`parse`] reads the variables (pure);
//! [`take`] takes the descriptors (through `sys::activation`), checks each is a listening stream socket and gives
//! each its role: the name `http`, `unix` or `metrics` says it; any other name (systemd names descriptors after
//! their socket unit unless `FileDescriptorName=` is set, and that name applies to every socket of the unit) goes
//! by family: a unix socket is the unix socket, a TCP one the loopback listener.

use std::os::fd::OwnedFd;

use crate::sys::activation::{self as sys, Family};

/// At most this many descriptors are taken (routewarden serves three listeners; more is a broken unit).
pub const MAX_FDS: usize = 16;

/// The descriptors passed to this process: one name per descriptor, from `FIRST_FD` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    pub names: Vec<String>,
}

/// `LISTEN_*` variables that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    #[error("LISTEN_PID={0:?} is not a process id")]
    Pid(String),
    /// Not an error of the variables: they were meant for another process (a parent that did not unset them).
    #[error("LISTEN_PID={listen_pid} is not this process ({own}): its descriptors are another process's")]
    OtherProcess { listen_pid: u32, own: u32 },
    #[error("LISTEN_FDS={0:?} is not a number of descriptors")]
    Count(String),
    #[error("LISTEN_FDS={0} is more than the {MAX_FDS} descriptors routewarden takes")]
    TooMany(usize),
    #[error("LISTEN_FDNAMES={names:?} names {named} descriptors but LISTEN_FDS passes {count}")]
    Names { names: String, named: usize, count: usize },
}

/// Reads the variables as sd_listen_fds_with_names(3) does: without `LISTEN_PID` or `LISTEN_FDS` (or with
/// `LISTEN_FDS=0`) nothing was passed; `LISTEN_PID` must be `own`; `LISTEN_FDNAMES`, when set, holds one
/// colon-separated name per descriptor (without it each is `unknown`).
pub fn parse(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    own: u32,
) -> Result<Option<Passed>, ActivationError> {
    let (Some(pid), Some(fds)) = (pid, fds) else { return Ok(None) };
    let listen_pid: u32 = match pid.trim().parse() {
        Ok(p) if p > 0 => p,
        _ => return Err(ActivationError::Pid(pid.to_string())),
    };
    if listen_pid != own {
        return Err(ActivationError::OtherProcess { listen_pid, own });
    }
    let count: usize = fds.trim().parse().map_err(|_| ActivationError::Count(fds.to_string()))?;
    if count > MAX_FDS {
        return Err(ActivationError::TooMany(count));
    }
    if count == 0 {
        return Ok(None);
    }
    let names: Vec<String> = match names {
        None => vec!["unknown".to_string(); count],
        Some(n) => {
            let list: Vec<String> = n.split(':').map(str::to_string).collect();
            if list.len() != count {
                return Err(ActivationError::Names { names: n.to_string(), named: list.len(), count });
            }
            list
        }
    };
    Ok(Some(Passed { names }))
}

/// What an inherited socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The loopback HTTP listener (`daemon.listen`).
    Http,
    /// The unix socket (`daemon.unix_socket`).
    Unix,
    /// The network metrics listener (`[metrics] listen`).
    Metrics,
}

impl Role {
    fn family(self) -> Family {
        match self {
            Role::Http | Role::Metrics => Family::Inet,
            Role::Unix => Family::Unix,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Http => "HTTP (daemon.listen)",
            Role::Unix => "unix socket (daemon.unix_socket)",
            Role::Metrics => "metrics (metrics.listen)",
        })
    }
}

/// The role of a descriptor named `name` of `family`: by name when it is `http`, `unix` or `metrics`, otherwise by
/// family (`metrics` only by name); `None` for a family routewarden never serves.
pub fn role(name: &str, family: Family) -> Option<Role> {
    match (name, family) {
        ("http", _) => Some(Role::Http),
        ("unix", _) => Some(Role::Unix),
        ("metrics", _) => Some(Role::Metrics),
        (_, Family::Inet) => Some(Role::Http),
        (_, Family::Unix) => Some(Role::Unix),
        (_, Family::Other(_)) => None,
    }
}

fn family_name(f: Family) -> String {
    match f {
        Family::Inet => "TCP/IP".into(),
        Family::Unix => "unix".into(),
        Family::Other(n) => format!("address family {n}"),
    }
}

/// An inherited descriptor that cannot serve: the daemon refuses to start (binding anew would give the port
/// away, which is what socket activation prevents).
#[derive(Debug, thiserror::Error)]
pub enum InheritedError {
    #[error(transparent)]
    Variables(#[from] ActivationError),
    #[error("inherited descriptor {fd} ({name:?})")]
    Io { fd: i32, name: String, source: std::io::Error },
    #[error(
        "inherited descriptor {fd} ({name:?}) is not a listening stream socket (ListenStream= in the socket unit)"
    )]
    NotListening { fd: i32, name: String },
    #[error("inherited descriptor {fd} ({name:?}) is a {found} socket; the {role} listener needs a {want} one")]
    Family { fd: i32, name: String, found: String, want: String, role: Role },
    #[error("inherited descriptors {first} and {second} are both for the {role} listener: give each socket a FileDescriptorName= (http, unix, metrics)")]
    Twice { first: i32, second: i32, role: Role },
}

/// The listeners systemd passed, by role; each is close-on-exec.
#[derive(Debug, Default)]
pub struct Inherited {
    pub http: Option<std::net::TcpListener>,
    pub unix: Option<std::os::unix::net::UnixListener>,
    pub metrics: Option<std::net::TcpListener>,
    /// Descriptors of a family no listener takes (closed), said in the log: "fd 5 (\"x\"): address family 16".
    pub ignored: Vec<String>,
    /// The variables were another process's (said in the log; nothing was taken).
    pub not_ours: Option<ActivationError>,
}

/// Takes what systemd passed to this process and removes the `LISTEN_*` variables (always, so no child of the
/// daemon sees them). Call it once, before any thread starts.
pub fn take() -> Result<Inherited, InheritedError> {
    let var = |n: &str| std::env::var(n).ok();
    let parsed = parse(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    );
    sys::unset_listen_env();
    let passed = match parsed {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(Inherited::default()),
        Err(e @ ActivationError::OtherProcess { .. }) => {
            return Ok(Inherited { not_ours: Some(e), ..Default::default() })
        }
        Err(e) => return Err(e.into()),
    };
    let fds = sys::take_passed(passed.names.len());
    let mut out = Inherited::default();
    let mut seen: Vec<(Role, i32)> = Vec::new();
    for ((fd, name), number) in fds.into_iter().zip(passed.names).zip(sys::FIRST_FD..) {
        let fd: OwnedFd = fd.map_err(|source| InheritedError::Io { fd: number, name: name.clone(), source })?;
        let kind = sys::kind(&fd).map_err(|source| InheritedError::Io { fd: number, name: name.clone(), source })?;
        let Some(role) = role(&name, kind.family) else {
            out.ignored.push(format!("fd {number} ({name:?}): {}", family_name(kind.family)));
            continue;
        };
        if kind.family != role.family() {
            let (found, want) = (family_name(kind.family), family_name(role.family()));
            return Err(InheritedError::Family { fd: number, name, found, want, role });
        }
        if !kind.stream || !kind.listening {
            return Err(InheritedError::NotListening { fd: number, name });
        }
        if let Some((_, first)) = seen.iter().find(|(r, _)| *r == role) {
            return Err(InheritedError::Twice { first: *first, second: number, role });
        }
        seen.push((role, number));
        match role {
            Role::Http => out.http = Some(fd.into()),
            Role::Metrics => out.metrics = Some(fd.into()),
            Role::Unix => out.unix = Some(fd.into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: u32 = 4242;

    fn p(pid: Option<&str>, fds: Option<&str>, names: Option<&str>) -> Result<Option<Passed>, ActivationError> {
        parse(pid, fds, names, OWN)
    }

    #[test]
    fn descriptors_passed_to_this_process_come_with_their_names() {
        let got = p(Some("4242"), Some("2"), Some("http:unix")).unwrap().unwrap();
        assert_eq!(got.names, ["http", "unix"]);
        // Without LISTEN_FDNAMES each is "unknown", as sd_listen_fds_with_names says.
        assert_eq!(p(Some("4242"), Some("1"), None).unwrap().unwrap().names, ["unknown"]);
        // systemd's default name (the unit's) and an empty one are kept as given; `role` decides by family.
        let got = p(Some("4242"), Some("2"), Some("routewarden.socket:")).unwrap().unwrap();
        assert_eq!(got.names, ["routewarden.socket", ""]);
    }

    #[test]
    fn nothing_passed_is_no_descriptor_and_no_error() {
        assert_eq!(p(None, None, None), Ok(None));
        assert_eq!(p(None, Some("2"), Some("http:unix")), Ok(None), "LISTEN_FDS without LISTEN_PID");
        assert_eq!(p(Some("4242"), None, None), Ok(None), "LISTEN_PID without LISTEN_FDS");
        assert_eq!(p(Some("4242"), Some("0"), None), Ok(None));
    }

    #[test]
    fn variables_of_another_process_are_said_to_be_its_own() {
        let e = p(Some("1"), Some("2"), Some("http:unix")).unwrap_err();
        assert_eq!(e, ActivationError::OtherProcess { listen_pid: 1, own: OWN });
        assert!(e.to_string().contains("LISTEN_PID=1 is not this process (4242)"), "{e}");
    }

    #[test]
    fn a_broken_pid_count_or_name_list_is_a_clear_error() {
        for pid in ["", "x", "-5", "0", "99999999999999999999"] {
            let e = p(Some(pid), Some("1"), None).unwrap_err();
            assert_eq!(e, ActivationError::Pid(pid.into()));
            assert!(e.to_string().starts_with("LISTEN_PID="), "{e}");
        }
        for fds in ["", "two", "-1", "1.5", "18446744073709551616"] {
            let e = p(Some("4242"), Some(fds), None).unwrap_err();
            assert_eq!(e, ActivationError::Count(fds.into()), "{fds}");
        }
        let e = p(Some("4242"), Some("100000"), None).unwrap_err();
        assert_eq!(e.to_string(), "LISTEN_FDS=100000 is more than the 16 descriptors routewarden takes");
        let e = p(Some("4242"), Some("3"), Some("http:unix")).unwrap_err();
        assert_eq!(e.to_string(), "LISTEN_FDNAMES=\"http:unix\" names 2 descriptors but LISTEN_FDS passes 3");
        let e = p(Some("4242"), Some("1"), Some("http:unix")).unwrap_err();
        assert_eq!(e, ActivationError::Names { names: "http:unix".into(), named: 2, count: 1 });
    }

    #[test]
    fn a_name_says_the_role_and_otherwise_the_family_does() {
        assert_eq!(role("http", Family::Inet), Some(Role::Http));
        assert_eq!(role("metrics", Family::Inet), Some(Role::Metrics));
        assert_eq!(role("unix", Family::Unix), Some(Role::Unix));
        // A name that does not fit the family keeps its role: `take` then refuses the socket, naming both.
        assert_eq!(role("http", Family::Unix), Some(Role::Http));
        assert_eq!(role("routewarden.socket", Family::Inet), Some(Role::Http));
        assert_eq!(role("routewarden.socket", Family::Unix), Some(Role::Unix));
        assert_eq!(role("unknown", Family::Other(16)), None);
    }
}
