//! `[kubernetes]` as the exporter and `routewarden untaint` read it: validated by `settings` (which builds
//! [`ExporterSettings`] from the configuration file), with the paths joined under the host root, the heartbeat a
//! `Duration` and the Node name and taint key checked as the API server checks them.

use std::path::PathBuf;
use std::time::Duration;

/// `[kubernetes]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterSettings {
    /// `kubeconfig` under the host root, then the kubelet's other kubeconfig under it: the first that exists when
    /// the exporter starts is read (the first when neither does, so the error names it).
    pub kubeconfigs: [PathBuf; 2],
    /// The host root: absolute paths a kubeconfig names (certificates, keys, token files) are taken under it.
    pub host_root: PathBuf,
    /// `node_name` when set; else the kubelet's node name, else the host name.
    pub node_name: Option<NodeName>,
    /// Between heartbeats of unchanged conditions (10 s to a day).
    pub heartbeat: Duration,
    /// Whether the exporter manages the taint (`taint`).
    pub taint: bool,
    /// The taint's key (effect NoSchedule); `untaint` removes it whether or not `taint` is set.
    pub taint_key: TaintKey,
}

impl ExporterSettings {
    /// The taint the exporter manages, when it manages one.
    pub fn managed_taint(&self) -> Option<&TaintKey> {
        self.taint.then_some(&self.taint_key)
    }
}

/// A Node's name as the API server accepts it: a DNS subdomain (lower-case letters, digits, '-' and '.', labels
/// neither empty nor starting or ending with '-', at most 253 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeName(String);

impl NodeName {
    /// `name` when it is a valid Node name.
    pub fn parse(name: &str) -> Option<NodeName> {
        is_dns_subdomain(name).then(|| NodeName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A taint key as the API server validates it: a qualified name, `[prefix/]name`, the prefix a DNS subdomain,
/// the name up to 63 letters, digits, '-', '_' or '.' that start and end with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaintKey(String);

impl TaintKey {
    /// `key` when it is a valid taint key.
    pub fn parse(key: &str) -> Option<TaintKey> {
        let (prefix, name) = match key.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, key),
        };
        let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && alnum(name.chars().next())
            && alnum(name.chars().last());
        (name_ok && prefix.is_none_or(is_dns_subdomain)).then(|| TaintKey(key.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TaintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_dns_subdomain(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_and_taint_keys_are_checked_as_the_api_server_checks_them() {
        for ok in ["worker-1", "worker-1.example", "a", &"a".repeat(63)] {
            assert_eq!(NodeName::parse(ok).map(|n| n.as_str().to_string()).as_deref(), Some(ok));
        }
        for bad in ["", "Worker_1", "-a", "a-", "a..b", &"a".repeat(254)] {
            assert_eq!(NodeName::parse(bad), None, "{bad:?}");
        }
        for ok in ["routewarden.io/service-routing-not-ready", "NotReady_1", "example.com/not-ready", "a"] {
            assert_eq!(TaintKey::parse(ok).map(|k| k.to_string()).as_deref(), Some(ok));
        }
        for bad in ["", "a/b/c", "Example.com/x", "x/-a", "-a", &"a".repeat(64), "/a", "a/"] {
            assert_eq!(TaintKey::parse(bad), None, "{bad:?}");
        }
    }
}
