//! Journal rules in their configured form (TOML `[[rules]]`); `journal::rules` compiles them. And what reading a
//! journal yields besides findings: matched entries, episodes, the files journalctl ignores, the line bound
//! (`journal::reader` fills them; `report::JournalScan` and the outputs carry them).

use serde::{Deserialize, Serialize};

use super::{Severity, Timestamp};

/// A rules file: `[[rules]]` entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One rule (see the header of `default_rules.toml`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    #[serde(default)]
    pub units: Vec<String>,
    #[serde(default)]
    pub pattern: Option<String>,
    /// More patterns, any of which matches (one per writer or era, so each stays readable).
    #[serde(default)]
    pub patterns: Vec<String>,
    #[serde(default)]
    pub levels: Vec<String>,
    pub severity: Severity,
    #[serde(default = "default_window")]
    pub window_secs: u64,
    #[serde(default = "one")]
    pub threshold: u32,
    #[serde(default)]
    pub clear_after_secs: Option<u64>,
    #[serde(default)]
    pub clear_pattern: Option<String>,
    /// A line that matches a pattern but also this one does not count for the rule (a benign line that shares the
    /// failure's words, such as cAdvisor probing a runtime the node does not run).
    #[serde(default)]
    pub unless: Option<String>,
    #[serde(default)]
    pub all_of: Vec<String>,
    #[serde(default)]
    pub for_secs: u64,
    /// Silence longer than this means the rule (or a correlation's part) stopped recurring; default 30 s.
    #[serde(default)]
    pub recur_secs: Option<u64>,
    pub summary: String,
    #[serde(default)]
    pub remedy: String,
}

impl Rule {
    /// Every pattern of the rule: `pattern`, then `patterns`.
    pub fn all_patterns(&self) -> impl Iterator<Item = &String> {
        self.pattern.iter().chain(self.patterns.iter())
    }

    /// Whether the rule matches lines (rather than correlating other rules).
    pub fn matches_lines(&self) -> bool {
        self.pattern.is_some() || !self.patterns.is_empty()
    }

    /// The silence after which the rule counts as no longer recurring, in seconds.
    pub fn recur_secs(&self) -> u64 {
        self.recur_secs.unwrap_or(DEFAULT_RECUR_SECS)
    }
}

/// Default of `recur_secs`: the kubelet repeats its failure lines every few seconds.
pub const DEFAULT_RECUR_SECS: u64 = 30;

fn default_window() -> u64 {
    300
}

fn one() -> u32 {
    1
}

/// The API server endpoint the kubelet talks to, as `apiserver` in journal rule patterns stands for it: the
/// `server:` of the kubelet's kubeconfig, or, when none was found, any host on the ports API servers are known to
/// listen on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub enum ApiServer {
    /// No kubeconfig (or none with a usable `server:`): the known ports.
    #[default]
    Unknown,
    /// From a kubeconfig's `server:` URL.
    Known {
        /// The URL as the kubeconfig has it.
        url: String,
        /// Host as a URL carries it: a name, an IPv4 address or a bracketed IPv6 address (`[fd00::1]`).
        host: String,
        /// The port, explicit or the scheme's default.
        port: u16,
        /// Whether the URL leaves the port out (then a URL in a log line has none either).
        default_port: bool,
        /// The file it came from (empty when given on the command line).
        from: String,
    },
}

impl ApiServer {
    /// Parses an `http(s)://host[:port][/path]` URL; `None` when it is not one.
    pub fn from_url(url: &str, from: &str) -> Option<ApiServer> {
        let url = url.trim();
        let (rest, scheme_port) = if let Some(r) = url.strip_prefix("https://") {
            (r, 443)
        } else if let Some(r) = url.strip_prefix("http://") {
            (r, 80)
        } else {
            return None;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // userinfo is not used by kubeconfigs; refuse rather than guess.
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (inner, after) = v6.split_once(']')?;
            if inner.is_empty() || !inner.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
                return None;
            }
            (format!("[{inner}]"), after.strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let host_ok = |h: &str| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !host.starts_with('[') && !host_ok(&host) {
            return None;
        }
        let (port, default_port) = match port {
            None => (scheme_port, true),
            Some(p) => (p.parse().ok().filter(|&p: &u16| p != 0)?, false),
        };
        Some(ApiServer::Known {
            url: url.to_string(),
            host: host.to_ascii_lowercase(),
            port,
            default_port,
            from: from.into(),
        })
    }

    /// The endpoint and where it came from, in words.
    pub fn describe(&self) -> String {
        match self {
            ApiServer::Unknown => {
                "not known (no kubelet kubeconfig with a server): any host on the known API server ports".into()
            }
            ApiServer::Known { url, from, .. } if from.is_empty() => format!("{url} (as given)"),
            ApiServer::Known { url, from, .. } => format!("{url} (from {from})"),
        }
    }

    /// Host and port as a log line's `dial tcp` target or URL authority has them, as a regex.
    pub fn regex(&self) -> String {
        match self {
            ApiServer::Unknown => FALLBACK_API_SERVER.to_string(),
            ApiServer::Known { host, port, default_port, .. } => {
                let h = regex::escape(host);
                if *default_port {
                    // A URL in the line has no port (as the kubeconfig's), a dial target always has it.
                    format!("{h}(?::{port})?")
                } else {
                    format!("{h}:{port}")
                }
            }
        }
    }
}

/// What `{apiserver}` stands for without a kubeconfig: any host on 6443 (kubeadm), 443 (the kubernetes Service,
/// managed clusters), 8443 (minikube), 9345 (the rke2 supervisor), 6444 (the k3s agent's load balancer), 16443
/// (microk8s), and 8080 on loopback only (the old insecure port: pods' probes use 8080 too).
pub const FALLBACK_API_SERVER: &str =
    r#"(?:[^\s"\\/]*:(?:6443|443|8443|9345|6444|16443)|(?:127\.0\.0\.1|localhost|\[::1\]):8080)"#;

/// The longest journalctl line read: journald keeps a stream line to 48 KiB (`LineMax=`), which JSON can make
/// about 4 times longer as an array of bytes. A longer line is skipped to its newline without being buffered, and
/// counted.
pub const MAX_LINE: usize = 1 << 20;

/// One matched entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Match {
    pub realtime_usec: u64,
    pub unit: String,
    pub rule: String,
}

/// A finding's span: from when it started to its last match (or, for a correlation, the last moment all its
/// parts were recurring together).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Episode {
    pub id: String,
    pub severity: Severity,
    /// Written as RFC 3339, seconds.
    pub start: Timestamp,
    pub end: Timestamp,
    pub start_usec: u64,
    pub end_usec: u64,
    /// Matching lines in the episode (of a correlation: of its parts).
    pub count: u64,
    pub sample: String,
    /// Still open at the time the engine was last advanced to.
    pub ongoing: bool,
}

/// Why journalctl ignores a journal file, as it warns on stderr (systemd `src/shared/journal-util.c`,
/// `journal_access_check_and_warn`, the same words from v246 to v257) and keeps going without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ignored {
    /// "uses an unsupported feature": written by a newer systemd than this journalctl. Every entry in it is
    /// unread, for as long as this journalctl runs: the journal source fails.
    UnsupportedFeature,
    /// "is truncated" (a file being created or cut short), "corrupted" (typically an old `.journal~` left by an
    /// unclean shutdown), "Too many journal files": said in the source's note; the source stays ok.
    Truncated,
    Corrupted,
    TooManyFiles,
}

/// Journal files a journalctl said it ignores, and why (the reader keeps a bounded number).
pub type IgnoredFiles = std::collections::BTreeMap<String, Ignored>;
