//! Why a source failed, as a closed [`Failure`]: decided from the typed error where it happened (the subprocess
//! wrapper knows a missing binary, a deadline or a size bound; the kernel's errno says permission), never from the
//! message's words. The rules turn the failure into a remedy.

use std::error::Error;
use std::io::ErrorKind;

use crate::model::Failure;
use crate::sources::host_view::HostViewError;
use crate::sources::iptables::{entries::DecodeError, IptablesError, ParseError};
use crate::sources::routes::RoutesError;
use crate::sys::exec::ExecError;
use crate::sys::nfnetlink::NetlinkError;
use crate::sys::xtables::XtablesError;

/// The configuration key that sets the deadline of every external command and netlink dump.
pub const COMMAND_TIMEOUT_KEY: &str = "command_timeout_secs";
/// The configuration key that bounds one legacy iptables table.
pub const IPTABLES_MAX_KEY: &str = "iptables_legacy_max_bytes";

/// The failure of `e`: the outermost error in its chain whose type tells, else the errno of an I/O error in it,
/// else [`Failure::Other`].
pub fn classify(e: &(dyn Error + 'static)) -> Failure {
    let mut io_kind = None;
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(f) = typed(err) {
            return f;
        }
        if io_kind.is_none() {
            io_kind = io_of(err);
        }
        cur = err.source();
    }
    io_kind.unwrap_or(Failure::Other)
}

/// What one error's own type says, when it says something.
fn typed(err: &(dyn Error + 'static)) -> Option<Failure> {
    if err.downcast_ref::<HostViewError>().is_some() {
        return Some(Failure::HostViewMissing);
    }
    if let Some(e) = err.downcast_ref::<ExecError>() {
        return Some(match e {
            ExecError::Spawn { program, source } if source.kind() == ErrorKind::NotFound => {
                Failure::MissingTool { binary: program.display().to_string() }
            }
            ExecError::Spawn { source, .. } => from_io(source),
            ExecError::Timeout { .. } => Failure::TimedOut { key: Some(COMMAND_TIMEOUT_KEY.into()) },
            // The bound on a tool's standard output is fixed (sys::exec::MAX_STDOUT): no key raises it.
            ExecError::TooLarge { .. } => Failure::OverSizeBound { key: None },
            ExecError::Failed { .. } => Failure::Other,
            ExecError::Io { source, .. } => from_io(source),
        });
    }
    // Transparent: the kernel reader's error is inside, not the next in the chain.
    if let Some(IptablesError::Read(e)) = err.downcast_ref::<IptablesError>() {
        return typed(e);
    }
    if let Some(e) = err.downcast_ref::<XtablesError>() {
        return Some(match e {
            XtablesError::Socket { source, .. } | XtablesError::Getsockopt { source, .. } => from_io(source),
            XtablesError::TooLarge { .. } => Failure::OverSizeBound { key: Some(IPTABLES_MAX_KEY.into()) },
            XtablesError::Name(_) | XtablesError::Changing { .. } => Failure::Other,
        });
    }
    if let Some(e) = err.downcast_ref::<NetlinkError>() {
        return Some(match e {
            NetlinkError::Socket(io) | NetlinkError::Send(io) | NetlinkError::Recv(io) | NetlinkError::Kernel(io) => {
                from_io(io)
            }
            NetlinkError::Malformed { .. } => Failure::Parse,
            NetlinkError::Interrupted(_) => Failure::Other,
        });
    }
    if let Some(RoutesError::Timeout(_)) = err.downcast_ref::<RoutesError>() {
        return Some(Failure::TimedOut { key: Some(COMMAND_TIMEOUT_KEY.into()) });
    }
    if let Some(e) = err.downcast_ref::<rtnetlink::Error>() {
        return Some(match e {
            rtnetlink::Error::NetlinkError(msg) => from_io(&msg.to_io()),
            rtnetlink::Error::UnexpectedMessage(_)
            | rtnetlink::Error::InvalidHardwareAddress(_)
            | rtnetlink::Error::InvalidIp(_)
            | rtnetlink::Error::InvalidAddress(..)
            | rtnetlink::Error::InvalidNla(_) => Failure::Parse,
            _ => Failure::Other,
        });
    }
    if err.downcast_ref::<DecodeError>().is_some()
        || err.downcast_ref::<ParseError>().is_some()
        || err.downcast_ref::<crate::sources::cilium_agent::AgentError>().is_some()
    {
        return Some(Failure::Parse);
    }
    None
}

fn io_of(err: &(dyn Error + 'static)) -> Option<Failure> {
    err.downcast_ref::<std::io::Error>().map(from_io)
}

/// An errno as a failure: EPERM and EACCES are permission, ENOENT not found, a socket deadline a timeout.
fn from_io(e: &std::io::Error) -> Failure {
    match e.kind() {
        ErrorKind::PermissionDenied => Failure::PermissionDenied,
        ErrorKind::NotFound => Failure::NotFound,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Failure::TimedOut { key: None },
        _ => Failure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::xtables::Family;
    use std::time::Duration;

    fn io(errno: i32) -> std::io::Error {
        std::io::Error::from_raw_os_error(errno)
    }

    #[test]
    fn each_wrapper_says_its_context_and_the_cause_once() {
        use crate::sources::links::LinksError;
        let chain = |e: &dyn Error| crate::model::strict_chain(e);
        let inner = XtablesError::Getsockopt {
            what: "IPT_SO_GET_INFO",
            family: Family::Ipv4,
            table: "nat".into(),
            source: io(libc::EPERM),
        };
        let want = "getsockopt IPT_SO_GET_INFO for the IPv4 table \"nat\": Operation not permitted (os error 1)";
        assert_eq!(chain(&inner), want);
        let wrapped: crate::sources::host_view::Guarded<IptablesError> =
            crate::sources::host_view::Guarded::Source(inner.into());
        assert_eq!(chain(wrapped.error()), want);
        let socket = XtablesError::Socket { family: Family::Ipv6, source: io(libc::EAFNOSUPPORT) };
        assert_eq!(
            chain(&socket),
            "opening an IPv6 socket for iptables getsockopt: Address family not supported by protocol (os error 97)"
        );
        let names = IptablesError::TableNames { path: "/proc/net/ip_tables_names".into(), source: io(libc::ENOENT) };
        assert_eq!(chain(&names), "reading /proc/net/ip_tables_names: No such file or directory (os error 2)");
        let decode = IptablesError::Decode {
            family: Family::Ipv4,
            table: "nat".into(),
            source: DecodeError { offset: 8, what: "an entry shorter than its header" },
        };
        assert_eq!(
            chain(&decode),
            "decoding the IPv4 table \"nat\" from the kernel: at byte 8: an entry shorter than its header"
        );
        assert_eq!(
            chain(&LinksError::Connect(io(libc::EMFILE))),
            "opening an rtnetlink socket: Too many open files (os error 24)"
        );
        assert_eq!(
            chain(&RoutesError::Runtime(io(libc::EAGAIN))),
            "starting the netlink runtime: Resource temporarily unavailable (os error 11)"
        );
        let view = HostViewError::BpffsUnreadable { path: "/host/sys/fs/bpf".into(), source: io(libc::EACCES) };
        let guarded: crate::sources::host_view::Guarded<LinksError> = view.into();
        assert_eq!(
            chain(guarded.error()),
            "cannot stat /host/sys/fs/bpf to tell whether it is a bpffs mount: Permission denied (os error 13)"
        );
    }

    #[test]
    fn each_error_gets_its_kind() {
        let missing = ExecError::Spawn { program: "/usr/sbin/nft".into(), source: io(libc::ENOENT) };
        assert_eq!(classify(&missing), Failure::MissingTool { binary: "/usr/sbin/nft".into() });
        let slow = ExecError::Timeout { program: "/usr/sbin/nft".into(), timeout: Duration::from_secs(10) };
        assert_eq!(classify(&slow), Failure::TimedOut { key: Some(COMMAND_TIMEOUT_KEY.into()) });
        let big = XtablesError::TooLarge { family: Family::Ipv4, table: "nat".into(), size: 9, max: 1 };
        assert_eq!(classify(&big), Failure::OverSizeBound { key: Some(IPTABLES_MAX_KEY.into()) });
        let eperm = XtablesError::Socket { family: Family::Ipv4, source: io(libc::EPERM) };
        assert_eq!(classify(&eperm), Failure::PermissionDenied);
        assert_eq!(classify(&NetlinkError::Kernel(io(libc::EACCES))), Failure::PermissionDenied);
        assert_eq!(classify(&NetlinkError::Malformed { offset: 3, what: "short" }), Failure::Parse);
        assert_eq!(classify(&io(libc::ENOENT)), Failure::NotFound);
        assert_eq!(classify(&io(libc::EIO)), Failure::Other);
        let view = HostViewError::NoBpffs { path: "/host/sys/fs/bpf".into() };
        assert_eq!(classify(&view), Failure::HostViewMissing);
    }

    #[test]
    fn the_kind_is_found_through_the_sources_wrappers() {
        // The iptables source wraps the kernel's error; the host-view guard wraps the source's.
        let inner = XtablesError::Getsockopt {
            what: "IPT_SO_GET_INFO",
            family: Family::Ipv4,
            table: "nat".into(),
            source: io(libc::EPERM),
        };
        let wrapped: crate::sources::host_view::Guarded<crate::sources::iptables::IptablesError> =
            crate::sources::host_view::Guarded::Source(inner.into());
        assert_eq!(classify(wrapped.error()), Failure::PermissionDenied);
        let big = XtablesError::TooLarge { family: Family::Ipv4, table: "nat".into(), size: 9, max: 1 };
        let wrapped: crate::sources::host_view::Guarded<crate::sources::iptables::IptablesError> =
            crate::sources::host_view::Guarded::Source(big.into());
        assert_eq!(classify(wrapped.error()), Failure::OverSizeBound { key: Some(IPTABLES_MAX_KEY.into()) });
        let routes = RoutesError::Timeout(Duration::from_secs(10));
        assert_eq!(classify(&routes), Failure::TimedOut { key: Some(COMMAND_TIMEOUT_KEY.into()) });
    }
}
