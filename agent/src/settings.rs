//! Validated settings: the configuration file (`config::Config`, plain data) read, then each subsystem checking
//! its own part (zincati-style: fragments -> validated settings). What `Settings` holds is ready to use: the gate's
//! requirements parsed, the journal rules compiled (defaults, `rules.d`, inline), the Service CIDRs parsed.

use std::path::{Path, PathBuf};

use crate::config::{Config, DEFAULT_PATH};
use crate::journal::{RuleSet, RulesError};
use crate::kubernetes::{ExporterSettings, NodeName, TaintKey};
use crate::model::journal::Rule;
use crate::model::SourceId;
use crate::outputs::web_config::WebConfig;
use web_config::WebConfigError;

pub mod web_config;
use crate::rules::gate::{Requirement, RequirementError};

/// The configuration in force, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    /// `gate.requirements`, parsed.
    pub gate: Vec<Requirement>,
    /// The journal rules: the defaults, then `journal.rules_dir/*.toml` in name order, then inline rules. A broken
    /// file in `rules_dir` is an error here, not a failed load: only the journal depends on it (the daemon reports
    /// the journal source failed; `config validate` and `scan-journal` refuse).
    pub journal_rules: Result<RuleSet, JournalRulesError>,
    /// Where the file came from (`None`: built-in defaults).
    pub path: Option<PathBuf>,
    /// `[metrics]`: the network listener's address and its web configuration, loaded (`None`: no listener).
    pub metrics: Option<MetricsListener>,
    /// `daemon.listen`, parsed.
    pub listen: std::net::SocketAddr,
    /// `[kubernetes]`, as the exporter and `untaint` read it.
    pub kubernetes: ExporterSettings,
}

/// Why the journal rules in force could not be compiled (a broken file in `journal.rules_dir`): the journal alone
/// fails. Shared, as `Settings` is cloned.
#[derive(Debug, Clone, thiserror::Error)]
#[error("journal rules")]
pub struct JournalRulesError(#[source] pub std::sync::Arc<RulesError>);

/// Why the journal rules for this node could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NodeRulesError {
    #[error(transparent)]
    Rules(#[from] JournalRulesError),
    #[error("--api-server {0:?} is not an http(s)://host[:port] URL such as https://10.0.0.1:6443")]
    ApiServer(String),
    /// The rules compiled with `{apiserver}` standing for the API server found.
    #[error("journal rules")]
    ForApiServer(#[source] RulesError),
}

/// The network metrics listener, validated.
#[derive(Debug, Clone)]
pub struct MetricsListener {
    pub listen: std::net::SocketAddr,
    pub web: Option<WebConfig>,
}

/// A configuration that could not be loaded, naming the file and the key; the cause, when there is one, is the
/// error's source (print it with [`SettingsError::chain`]).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{path}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("{path}: disabled_sources names unknown source {name:?}{hint} (known: {known})")]
    UnknownSource { path: PathBuf, name: String, hint: Hint, known: String },
    #[error("{path}: {key} = {value} is too large (at most 86400)")]
    TooLarge { path: PathBuf, key: &'static str, value: u64 },
    #[error("{path}: {key} must be at least 1")]
    Zero { path: PathBuf, key: &'static str },
    #[error("{path}: service_cidrs entry {value:?} is not a CIDR such as 10.96.0.0/12")]
    Cidr { path: PathBuf, value: String },
    #[error("{path}: journal.api_server {value:?} is not an http(s)://host[:port] URL such as https://10.0.0.1:6443")]
    ApiServer { path: PathBuf, value: String },
    #[error("{path}: journal rules")]
    Rules { path: PathBuf, source: RulesError },
    #[error("{path}: journal.rules[{index}]")]
    InlineRule { path: PathBuf, index: usize, source: Box<toml::de::Error> },
    #[error("{path}: gate.requirements")]
    Requirement { path: PathBuf, source: RequirementError },
    #[error("{path}: daemon.listen {value:?} is not an address such as 127.0.0.1:9977 or localhost:9977")]
    Listen { path: PathBuf, value: String },
    #[error(
        "{path}: daemon.listen {value} is not loopback: that listener serves /status, /findings and /metrics over \
         plain HTTP without authentication to anyone who can reach it; use [metrics] listen (TLS and basic auth) \
         for remote scrapes, or set daemon.allow_remote = true to serve it anyway"
    )]
    Remote { path: PathBuf, value: String },
    #[error(
        "{path}: daemon.listen {daemon} and metrics.listen {metrics} would take the same port: give metrics.listen \
         another port (without one it takes {METRICS_DEFAULT_PORT})"
    )]
    SameAddress { path: PathBuf, daemon: String, metrics: String },
    #[error("{path}: {key} = {value} is out of range ({range})")]
    Range { path: PathBuf, key: &'static str, value: u64, range: &'static str },
    #[error(
        "{path}: certificates.critical_days = {critical} is more than certificates.warning_days = {warning} (the \
         critical threshold must come after the warning one)"
    )]
    Thresholds { path: PathBuf, critical: u64, warning: u64 },
    #[error("reading {path}: {what}")]
    Read { path: PathBuf, what: String },
    /// A mistake and where in the file it is: the mistake's whole text, then the place.
    #[error("{} (line {line}, column {column})", inner.chain())]
    At { line: usize, column: usize, inner: Box<SettingsError> },
    #[error("{path}, line {line}, column {column}: unknown key {key:?}{hint}")]
    UnknownKey { path: PathBuf, line: usize, column: usize, key: String, hint: Hint },
    /// Each mistake's whole text, one a line.
    #[error("{} mistakes:\n  {}", .0.len(), .0.iter().map(SettingsError::chain).collect::<Vec<_>>().join("\n  "))]
    Many(Vec<SettingsError>),
    #[error("{path}: metrics.listen {value:?} is not an address such as 10.0.0.5:9978 or 0.0.0.0")]
    MetricsListen { path: PathBuf, value: String },
    #[error("{path}: metrics.listen {value} is not loopback: set metrics.web_config to a web configuration with tls_server_config (or allow_plaintext = true to serve it without TLS)")]
    Plaintext { path: PathBuf, value: String },
    #[error("{path}: metrics.web_config")]
    WebConfig { path: PathBuf, source: WebConfigError },
    #[error("{path}: {key} {value:?}: {why}")]
    Kubernetes { path: PathBuf, key: &'static str, value: String, why: &'static str },
}

/// The largest configuration file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

pub use crate::sys::host::read_regular;

/// `[kubernetes]`: a node name the API server would accept (a DNS subdomain), a kubeconfig path, a taint key; the
/// kubeconfigs joined under host_root.
fn kubernetes(config: &Config, path: &Path) -> Result<ExporterSettings, SettingsError> {
    let k = &config.kubernetes;
    let err = |key, value: String, why| SettingsError::Kubernetes { path: path.into(), key, value, why };
    let node_name = match k.node_name.as_str() {
        "" => None,
        n => Some(NodeName::parse(n).ok_or_else(|| {
            err("kubernetes.node_name", n.to_string(), "not a Node name (lower-case letters, digits, '-' and '.')")
        })?),
    };
    if k.kubeconfig.as_os_str().is_empty() {
        return Err(err("kubernetes.kubeconfig", String::new(), "empty: name the kubeconfig file"));
    }
    let taint_key = TaintKey::parse(&k.taint_key).ok_or_else(|| {
        err(
            "kubernetes.taint_key",
            k.taint_key.clone(),
            "not a taint key (an optional DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.' that \
             start and end with a letter or digit)",
        )
    })?;
    Ok(ExporterSettings {
        kubeconfigs: [
            config.host_path(&k.kubeconfig),
            config.host_path(Path::new(crate::config::KUBELET_KUBECONFIG_FALLBACK)),
        ],
        host_root: config.host_root.clone(),
        node_name,
        heartbeat: std::time::Duration::from_secs(k.heartbeat_secs),
        taint: k.taint,
        taint_key,
    })
}

/// The metrics listener's port when `metrics.listen` names none: its own, so that `0.0.0.0` never collides with
/// `daemon.listen`'s 127.0.0.1:9977.
pub const METRICS_DEFAULT_PORT: u16 = 9978;

/// `daemon.listen` (or `serve --listen`): an address, or `localhost:PORT` (taken as 127.0.0.1, never resolved).
pub fn parse_daemon_listen(value: &str) -> Option<std::net::SocketAddr> {
    if let Some(port) = value.strip_prefix("localhost:").or_else(|| value.strip_prefix("LOCALHOST:")) {
        return port.parse::<u16>().ok().map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)));
    }
    value.parse().ok()
}

/// `metrics.listen`: an address, or an IP address alone (then [`METRICS_DEFAULT_PORT`]).
fn parse_metrics_listen(value: &str) -> Option<std::net::SocketAddr> {
    if let Ok(a) = value.parse() {
        return Some(a);
    }
    let ip = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    ip.parse::<std::net::IpAddr>().ok().map(|ip| std::net::SocketAddr::new(ip, METRICS_DEFAULT_PORT))
}

/// Whether two listeners would fight over one port: same port, and the same address or either unspecified in a
/// family that reaches the other (Linux refuses such a second bind).
fn overlap(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    let reaches = |x: std::net::IpAddr, y: std::net::IpAddr| x.is_unspecified() && (x.is_ipv6() || y.is_ipv4());
    a.port() == b.port() && (a.ip() == b.ip() || reaches(a.ip(), b.ip()) || reaches(b.ip(), a.ip()))
}

/// The listener checks: `daemon.listen` parses, is loopback unless `daemon.allow_remote`, and is not the metrics
/// listener's address.
fn daemon_listener(
    config: &Config,
    path: &Path,
    metrics: Option<&MetricsListener>,
) -> Result<std::net::SocketAddr, SettingsError> {
    let d = &config.daemon;
    let listen = parse_daemon_listen(&d.listen)
        .ok_or_else(|| SettingsError::Listen { path: path.into(), value: d.listen.clone() })?;
    if !listen.ip().is_loopback() && !d.allow_remote {
        return Err(SettingsError::Remote { path: path.into(), value: d.listen.clone() });
    }
    if let Some(m) = metrics.filter(|m| overlap(m.listen, listen)) {
        return Err(SettingsError::SameAddress {
            path: path.into(),
            daemon: d.listen.clone(),
            metrics: m.listen.to_string(),
        });
    }
    Ok(listen)
}

/// `[metrics]`: no listener when `listen` is empty; a non-loopback address needs TLS unless `allow_plaintext`.
fn metrics_listener(config: &Config, path: &Path) -> Result<Option<MetricsListener>, SettingsError> {
    let m = &config.metrics;
    if m.listen.is_empty() {
        return Ok(None);
    }
    let p = || path.to_path_buf();
    let listen = parse_metrics_listen(&m.listen)
        .ok_or_else(|| SettingsError::MetricsListen { path: p(), value: m.listen.clone() })?;
    let web = match &m.web_config {
        Some(w) => Some(web_config::load(w).map_err(|source| SettingsError::WebConfig { path: p(), source })?),
        None => None,
    };
    let tls = web.as_ref().is_some_and(|w| w.tls.is_some());
    if !listen.ip().is_loopback() && !tls && !m.allow_plaintext {
        return Err(SettingsError::Plaintext { path: p(), value: m.listen.clone() });
    }
    Ok(Some(MetricsListener { listen, web }))
}

impl Settings {
    /// Loads `path`, or the defaults when `path` is `None` and the default file does not exist.
    pub fn load(path: Option<&Path>) -> Result<Settings, SettingsError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => return Settings::validate(Config::default(), Path::new("(defaults)"), None),
        };
        let text = read_regular(&path, MAX_CONFIG_BYTES)
            .map_err(|e| SettingsError::Read { path: path.clone(), what: crate::model::error_chain(&e) })?;
        Settings::parse(&text, &path)
    }

    /// Parses and validates TOML text; `path` names the file in errors.
    /// Every mistake is reported, not only the first: all unknown keys (each with the nearest known key), then,
    /// when the types are right, every value that fails validation, each with its line where the file has it.
    pub fn parse(text: &str, path: &Path) -> Result<Settings, SettingsError> {
        let parse_error = |source| SettingsError::Parse { path: path.into(), source: Box::new(source) };
        let doc = match toml_edit::ImDocument::parse(text) {
            Ok(doc) => doc,
            // A syntax error: toml's message carries the line, column and a snippet.
            Err(_) => {
                return Err(toml::from_str::<Config>(text).err().map_or_else(|| syntax_fallback(path), parse_error))
            }
        };
        let mut errors = unknown_keys(&doc, text, path);
        let (unknown, sources_span) = unknown_sources(&doc, text, path);
        // Only an unknown name is said there already; a wrong type in `disabled_sources` is toml's to say.
        let sources_span = sources_span.filter(|_| !unknown.is_empty());
        errors.extend(unknown);
        let config = match toml::from_str::<Config>(text) {
            Ok(config) => config,
            Err(e) => {
                // An unknown field or source is already reported above, with its hint; anything else (a wrong type)
                // is added.
                let in_sources =
                    sources_span.zip(e.span()).is_some_and(|(s, at)| s.start <= at.start && at.end <= s.end);
                if errors.is_empty() || !(e.message().contains("unknown field") || in_sources) {
                    errors.push(parse_error(e));
                }
                return Err(many(errors));
            }
        };
        if !errors.is_empty() {
            return Err(many(errors));
        }
        Settings::validate(config, path, Some(path.to_path_buf())).map_err(|e| match e {
            SettingsError::Many(errors) => many(errors.into_iter().map(|e| at_line(e, &doc, text)).collect()),
            e => at_line(e, &doc, text),
        })
    }

    fn validate(config: Config, path: &Path, origin: Option<PathBuf>) -> Result<Settings, SettingsError> {
        let p = || path.to_path_buf();
        let mut errors = Vec::new();
        let d = &config.daemon;
        for (key, value) in [
            ("command_timeout_secs", config.command_timeout_secs),
            ("daemon.resync_secs", d.resync_secs),
            ("daemon.request_timeout_secs", d.request_timeout_secs),
            ("daemon.max_connections", d.max_connections as u64),
            ("gate.poll_secs", config.gate.poll_secs),
            ("journal.hang_check_secs", config.journal.hang_check_secs),
        ] {
            if value == 0 {
                errors.push(SettingsError::Zero { path: p(), key });
            } else if value > 86_400 {
                errors.push(SettingsError::TooLarge { path: p(), key, value });
            }
        }
        for (key, value, min, max, range) in [
            ("daemon.debounce_ms", d.debounce_ms, 0, 60_000, "0 to 60000"),
            ("kube_proxy.timeout_ms", config.kube_proxy.timeout_ms, 1, 60_000, "1 to 60000; 0 would never ask"),
            ("kubernetes.heartbeat_secs", config.kubernetes.heartbeat_secs, 10, 86_400, "10 to 86400"),
        ] {
            if !(min..=max).contains(&value) {
                errors.push(SettingsError::Range { path: p(), key, value, range });
            }
        }
        let certs = &config.certificates;
        if certs.critical_days > certs.warning_days {
            errors.push(SettingsError::Thresholds {
                path: p(),
                critical: certs.critical_days,
                warning: certs.warning_days,
            });
        }
        let mut gate = Vec::new();
        for r in &config.gate.requirements {
            match r.parse::<Requirement>() {
                Ok(r) => gate.push(r),
                Err(source) => errors.push(SettingsError::Requirement { path: p(), source }),
            }
        }
        for cidr in &config.service_cidrs {
            if crate::rules::neighbours::parse_cidr(cidr).is_none() {
                errors.push(SettingsError::Cidr { path: p(), value: cidr.clone() });
            }
        }
        let api = config.journal.api_server.trim();
        if !api.is_empty() && crate::model::journal::ApiServer::from_url(api, "").is_none() {
            errors.push(SettingsError::ApiServer { path: p(), value: api.into() });
        }
        let metrics = metrics_listener(&config, path).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let listen = daemon_listener(&config, path, metrics.as_ref()).map_err(|e| errors.push(e)).ok();
        let kubernetes = kubernetes(&config, path).map_err(|e| errors.push(e)).ok();
        let journal_rules = match journal_rules(&config, path) {
            Ok(rules) => Some(rules.map_err(|e| JournalRulesError(std::sync::Arc::new(e)))),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let (Some(listen), Some(kubernetes), Some(journal_rules)) = (listen, kubernetes, journal_rules) else {
            return Err(many(errors));
        };
        if !errors.is_empty() {
            return Err(many(errors));
        }
        Ok(Settings { config, gate, journal_rules, path: origin, metrics, listen, kubernetes })
    }

    /// The directory for state: `$STATE_DIRECTORY` when systemd set it, else `daemon.state_dir`.
    pub fn state_dir(&self) -> PathBuf {
        match std::env::var_os("STATE_DIRECTORY") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => self.config.daemon.state_dir.clone(),
        }
    }

    /// The journal rules with `{apiserver}` standing for the API server the kubelet uses: `api_server` when given
    /// (scan-journal's `--api-server`), else `journal.api_server`, else the `server:` of the first of
    /// `journal.kubelet_kubeconfigs` that has one; with the kubeconfigs that exist but could not be used.
    pub fn node_journal_rules(
        &self,
        api_server: Option<&str>,
    ) -> Result<(RuleSet, Vec<crate::sources::kubelet_api::KubeconfigError>), NodeRulesError> {
        let rules = self.journal_rules.as_ref().map_err(|e| e.clone())?;
        let mut config = self.config.clone();
        if let Some(a) = api_server {
            if crate::model::journal::ApiServer::from_url(a, "").is_none() {
                return Err(NodeRulesError::ApiServer(a.to_string()));
            }
            config.journal.api_server = a.to_string();
        }
        let found = crate::sources::kubelet_api::fetch(&config);
        let rules = rules.for_api_server(&found.api_server).map_err(NodeRulesError::ForApiServer)?;
        Ok((rules, found.errors))
    }

    /// The units the journal follower reads: `journal.units`, else every unit a rule names.
    pub fn journal_units(&self) -> Vec<String> {
        if self.config.journal.units.is_empty() {
            self.journal_rules.as_ref().map(RuleSet::units).unwrap_or_default()
        } else {
            self.config.journal.units.clone()
        }
    }
}

impl SettingsError {
    /// The text users see: the error and each of its causes once.
    pub fn chain(&self) -> String {
        crate::model::error_chain(self)
    }

    /// The error itself, without the line it was found at.
    pub fn inner(&self) -> &SettingsError {
        match self {
            SettingsError::At { inner, .. } => inner.inner(),
            e => e,
        }
    }
}

/// One error as it is, several as `Many` (in the order found).
fn many(mut errors: Vec<SettingsError>) -> SettingsError {
    if errors.len() == 1 {
        errors.remove(0)
    } else {
        SettingsError::Many(errors)
    }
}

/// Only reached if toml_edit refuses text that toml accepts (they share one parser): say so plainly.
fn syntax_fallback(path: &Path) -> SettingsError {
    SettingsError::Read { path: path.into(), what: "not valid TOML".into() }
}

/// "did you mean" for an unknown key: the nearest known key of the same table, when one is near enough.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint(pub Option<String>);

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(k) => write!(f, " (did you mean {k:?}?)"),
            None => Ok(()),
        }
    }
}

/// The keys a configuration may have: the defaults' tree, plus the keys whose default is "none" (not serialized).
fn known_keys() -> toml::Table {
    let mut known = toml::Table::try_from(Config::default()).unwrap_or_default();
    for (section, key) in [("daemon", "unix_socket"), ("metrics", "web_config"), ("journal", "directory")] {
        if let Some(toml::Value::Table(t)) = known.get_mut(section) {
            t.insert(key.into(), toml::Value::String(String::new()));
        }
    }
    known
}

/// Every key of `doc` the configuration does not have, each with its line, column and the nearest known key.
fn unknown_keys(doc: &toml_edit::ImDocument<&str>, text: &str, path: &Path) -> Vec<SettingsError> {
    let mut errors = Vec::new();
    walk_keys(doc.as_table(), &known_keys(), "", text, path, &mut errors);
    errors
}

fn walk_keys(
    table: &dyn toml_edit::TableLike,
    known: &toml::Table,
    prefix: &str,
    text: &str,
    path: &Path,
    errors: &mut Vec<SettingsError>,
) {
    for (key, item) in table.iter() {
        let dotted = format!("{prefix}{key}");
        match known.get(key) {
            // journal.rules holds rule tables, validated as rules; other values are checked by their types.
            Some(toml::Value::Table(inner)) => {
                if let Some(t) = item.as_table_like() {
                    walk_keys(t, inner, &format!("{dotted}."), text, path, errors);
                }
            }
            Some(_) => {}
            None => {
                let (line, column) = table.key(key).and_then(|k| k.span()).map_or((0, 0), |s| position(text, s.start));
                let hint = Hint(nearest(key, known.keys().map(String::as_str)).map(|k| format!("{prefix}{k}")));
                errors.push(SettingsError::UnknownKey { path: path.into(), line, column, key: dotted, hint });
            }
        }
    }
}

/// Every name in `disabled_sources` that is no collected source, each with its line and column and the nearest
/// name; and where the value is, so the same mistake is not reported again by the deserializer.
fn unknown_sources(
    doc: &toml_edit::ImDocument<&str>,
    text: &str,
    path: &Path,
) -> (Vec<SettingsError>, Option<std::ops::Range<usize>>) {
    let Some(item) = doc.as_table().get("disabled_sources") else { return (Vec::new(), None) };
    let Some(array) = item.as_array() else { return (Vec::new(), item.span()) };
    let names = SourceId::COLLECTED.map(SourceId::as_str);
    let errors = array
        .iter()
        .filter_map(|v| {
            let name = v.as_str()?;
            crate::config::collected_source(name).err()?;
            let hint = Hint(nearest(name, names.into_iter()).map(str::to_string));
            let e = SettingsError::UnknownSource {
                path: path.into(),
                name: name.into(),
                hint,
                known: crate::config::known_sources(),
            };
            Some(match v.span() {
                Some(span) => {
                    let (line, column) = position(text, span.start);
                    SettingsError::At { line, column, inner: Box::new(e) }
                }
                None => e,
            })
        })
        .collect();
    (errors, item.span())
}

/// The 1-based line and column of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The candidate nearest to `key` in edit distance, if it is within a third of the key's length (at least 2).
fn nearest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (key.chars().count() / 3).max(2);
    candidates.map(|c| (edit_distance(key, c), c)).filter(|(d, _)| *d <= limit).min().map(|(_, c)| c)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The key an error is about, dotted, if it has one.
fn error_key(e: &SettingsError) -> Option<String> {
    Some(match e {
        SettingsError::Range { key, .. } | SettingsError::Zero { key, .. } | SettingsError::TooLarge { key, .. } => {
            (*key).to_string()
        }
        SettingsError::Kubernetes { key, .. } => (*key).to_string(),
        SettingsError::Thresholds { .. } => "certificates.critical_days".into(),
        SettingsError::Cidr { .. } => "service_cidrs".into(),
        SettingsError::ApiServer { .. } => "journal.api_server".into(),
        SettingsError::Requirement { .. } => "gate.requirements".into(),
        SettingsError::Listen { .. } | SettingsError::Remote { .. } => "daemon.listen".into(),
        SettingsError::SameAddress { .. } => "metrics.listen".into(),
        SettingsError::MetricsListen { .. } | SettingsError::Plaintext { .. } => "metrics.listen".into(),
        SettingsError::WebConfig { .. } => "metrics.web_config".into(),
        SettingsError::InlineRule { .. } | SettingsError::Rules { .. } => "journal.rules".into(),
        _ => return None,
    })
}

/// A value error with the line and column of its key in the file, when the file sets that key.
fn at_line(e: SettingsError, doc: &toml_edit::ImDocument<&str>, text: &str) -> SettingsError {
    let Some(key) = error_key(&e) else { return e };
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return match table.key(part).and_then(|k| k.span()) {
                Some(span) => {
                    let (line, column) = position(text, span.start);
                    SettingsError::At { line, column, inner: Box::new(e) }
                }
                None => e,
            };
        }
        match table.get(part).and_then(|i| i.as_table_like()) {
            Some(t) => table = t,
            None => return e,
        }
    }
    e
}

/// The journal rules in force: the defaults, then `journal.rules_dir/*.toml` in name order, then inline rules.
/// Inline rules belong to the configuration file, so an invalid one fails the load (outer error); a broken rules
/// file is the inner error.
fn journal_rules(config: &Config, path: &Path) -> Result<Result<RuleSet, RulesError>, SettingsError> {
    let mut inline = Vec::new();
    for (index, table) in config.journal.rules.iter().enumerate() {
        let rule: Rule = toml::Value::Table(table.clone()).try_into().map_err(|source| SettingsError::InlineRule {
            path: path.into(),
            index,
            source: Box::new(source),
        })?;
        inline.push(rule);
    }
    let mut budget = RuleBudget::default();
    for rule in &inline {
        check_rule(rule).map_err(|source| SettingsError::Rules { path: path.into(), source })?;
        budget.take(rule, path).map_err(|source| SettingsError::Rules { path: path.into(), source })?;
    }
    let hard = |source| SettingsError::Rules { path: path.into(), source };
    // The whole set is compiled once; only when it fails is it told apart whose fault that was.
    let soft = match rules_dir(config) {
        Ok(files) => 'files: {
            // The files and the inline rules share one budget: over it together, the last file is named.
            let mut together = RuleBudget::default();
            for (f, rule) in &files {
                if let Err(e) = together.take(rule, f) {
                    break 'files e;
                }
            }
            if let Some(last) = files.last().map(|(f, _)| f) {
                if let Some(e) = inline.iter().find_map(|r| together.take(r, last).err()) {
                    break 'files e;
                }
            }
            let mut user: Vec<Rule> = files.iter().map(|(_, r)| r.clone()).collect();
            user.extend(inline.clone());
            match RuleSet::with_defaults(user) {
                Ok(rules) => return Ok(Ok(rules)),
                // Whose rule it was: the first file whose rules fail on their own (a bad regex) is named.
                Err(e) => files
                    .iter()
                    .find_map(|(f, _)| {
                        let own = files.iter().filter(|(g, _)| g == f).map(|(_, r)| r.clone()).collect();
                        RuleSet::with_defaults(own).err().map(|e| RulesError::Invalid {
                            id: format!("in {}", f.display()),
                            why: crate::model::error_chain(&e),
                        })
                    })
                    .unwrap_or(e),
            }
        }
        Err(e) => e,
    };
    RuleSet::with_defaults(inline).map_err(hard)?;
    Ok(Err(soft))
}

/// At most this many rules in `journal.rules_dir` and inline together, and this many patterns among them. Compiling
/// the rule set grows faster than the count (measured with the debug build: 1,000 rules 0.5 s, 4,000 rules 2.2 s;
/// issue 27 saw 300,000 take over 300 s), and the daemon compiles it at every start and reload.
pub const MAX_USER_RULES: usize = 1_000;
pub const MAX_USER_PATTERNS: usize = 4_000;

/// Counts user rules and their patterns against `MAX_USER_RULES` and `MAX_USER_PATTERNS`, naming `origin` (the
/// file, or the configuration file for inline rules) when it is the one that goes over.
#[derive(Default)]
struct RuleBudget {
    rules: usize,
    patterns: usize,
}

impl RuleBudget {
    fn take(&mut self, rule: &Rule, origin: &Path) -> Result<(), RulesError> {
        self.rules += 1;
        self.patterns += rule.all_patterns().count()
            + usize::from(rule.clear_pattern.is_some())
            + usize::from(rule.unless.is_some());
        if self.rules > MAX_USER_RULES || self.patterns > MAX_USER_PATTERNS {
            return Err(RulesError::Invalid {
                id: origin.display().to_string(),
                why: format!(
                    "too many journal rules: with this file there are more than {MAX_USER_RULES} rules or \
                     {MAX_USER_PATTERNS} patterns in rules_dir and inline together (compiling them would hold up \
                     every start and reload); merge rules with `patterns` lists or remove unused ones"
                ),
            });
        }
        Ok(())
    }
}

/// The rules of `journal.rules_dir/*.toml`, in name order, each with its file; a missing directory has none.
fn rules_dir(config: &Config) -> Result<Vec<(PathBuf, Rule)>, RulesError> {
    let mut user = Vec::new();
    let dir = config.host_path(&config.journal.rules_dir);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut files: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
        files.sort();
        let mut origin: std::collections::BTreeMap<String, PathBuf> = std::collections::BTreeMap::new();
        let mut budget = RuleBudget::default();
        for f in files {
            let text = read_regular(&f, MAX_CONFIG_BYTES).map_err(|e| RulesError::Invalid {
                id: f.display().to_string(),
                why: format!("reading the file: {}", crate::model::error_chain(&e)),
            })?;
            for rule in crate::journal::rules::parse(&text, &f.display().to_string())? {
                let named = |why: String| RulesError::Invalid { id: format!("{} in {}", rule.id, f.display()), why };
                check_rule(&rule).map_err(|e| named(e.to_string()))?;
                budget.take(&rule, &f)?;
                if let Some(first) = origin.insert(rule.id.clone(), f.clone()) {
                    return Err(named(format!("the id is already defined in {}", first.display())));
                }
                user.push((f.clone(), rule));
            }
        }
    }
    Ok(user)
}

/// What every configured rule needs before it is compiled: an id, and a pattern that is not empty.
fn check_rule(rule: &Rule) -> Result<(), RulesError> {
    if rule.id.trim().is_empty() {
        return Err(RulesError::Invalid { id: "\"\"".into(), why: "the id is empty".into() });
    }
    for (what, p) in [("pattern", &rule.pattern), ("clear_pattern", &rule.clear_pattern), ("unless", &rule.unless)] {
        if p.as_deref().is_some_and(|p| p.is_empty()) {
            return Err(RulesError::Invalid {
                id: rule.id.clone(),
                why: format!("{what} is empty (it would match every line)"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_node_journal_rules_name_the_kubelets_api_server() {
        use crate::model::journal::ApiServer;
        let dir = tempfile::tempdir().unwrap();
        let text = format!("host_root = \"{}\"\n", dir.path().display());
        let s = Settings::parse(&text, Path::new("c.toml")).unwrap();
        let (rules, unusable) = s.node_journal_rules(None).unwrap();
        assert_eq!((rules.api_server, unusable.len()), (ApiServer::Unknown, 0), "no kubeconfig: the known ports");
        std::fs::create_dir_all(dir.path().join("etc/kubernetes")).unwrap();
        std::fs::write(
            dir.path().join("etc/kubernetes/kubelet.conf"),
            "clusters:\n- name: k\n  cluster:\n    server: https://lb.example:6553\n",
        )
        .unwrap();
        let (rules, _) = s.node_journal_rules(None).unwrap();
        assert!(rules.api_server.describe().starts_with("https://lb.example:6553 (from /etc/kubernetes/kubelet.conf"));
        let (rules, _) = s.node_journal_rules(Some("https://10.0.0.9:5000")).unwrap();
        assert!(matches!(rules.api_server, ApiServer::Known { port: 5000, .. }), "--api-server wins");
        let e = s.node_journal_rules(Some("10.0.0.9:5000")).unwrap_err().to_string();
        assert!(e.contains("--api-server \"10.0.0.9:5000\""), "{e}");
        let e =
            Settings::parse(&format!("{text}[journal]\napi_server = \"lb:6443\"\n"), Path::new("c.toml")).unwrap_err();
        assert!(e.chain().contains("journal.api_server \"lb:6443\""), "{e}");
    }

    #[test]
    fn a_broken_rules_file_fails_only_the_journal_rules() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("10-bad.toml"), "[[rules]]\nid = \"b\"\n").unwrap();
        let text = format!("[journal]\nrules_dir = \"{}\"\n", dir.path().display());
        let s = Settings::parse(&text, Path::new("c.toml")).unwrap();
        // The text the daemon's STATUS= line, `config validate` and the journal source show: the typed error's
        // chain, each cause once.
        let e = s.node_journal_rules(None).unwrap_err();
        assert!(matches!(e, NodeRulesError::Rules(_)), "{e:?}");
        let chain = crate::model::error_chain(&e);
        let err = s.journal_rules.map_err(|e| crate::model::error_chain(&e)).unwrap_err();
        assert_eq!(chain, err);
        assert!(err.starts_with("journal rules: ") && err.matches("journal rules").count() == 1, "{err}");
        assert!(err.contains("10-bad.toml") && err.contains("severity"), "{err}");
    }

    fn rules(from: usize, n: usize) -> String {
        (from..from + n)
            .map(|i| {
                format!("[[rules]]\nid = \"u{i}\"\nseverity = \"warning\"\nsummary = \"s\"\npattern = \"x{i}y\"\n")
            })
            .collect()
    }

    #[test]
    fn rules_d_and_inline_rules_are_bounded_in_number_naming_the_file_that_goes_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("10-a.toml"), rules(0, 600)).unwrap();
        let text = format!("[journal]\nrules_dir = \"{}\"\n", dir.path().display());
        assert!(Settings::parse(&text, Path::new("c.toml")).unwrap().journal_rules.is_ok());
        // Over the bound through a second file: the journal fails, naming that file.
        std::fs::write(dir.path().join("20-b.toml"), rules(600, MAX_USER_RULES - 600 + 1)).unwrap();
        let err = Settings::parse(&text, Path::new("c.toml"))
            .unwrap()
            .journal_rules
            .map_err(|e| crate::model::error_chain(&e))
            .unwrap_err();
        assert!(err.contains("20-b.toml") && err.contains("too many journal rules"), "{err}");
        // Files and inline rules share the bound.
        std::fs::remove_file(dir.path().join("20-b.toml")).unwrap();
        let inline = rules(600, MAX_USER_RULES - 600 + 1).replace("[[rules]]", "[[journal.rules]]");
        let err = Settings::parse(&format!("{text}{inline}"), Path::new("c.toml"))
            .unwrap()
            .journal_rules
            .map_err(|e| crate::model::error_chain(&e))
            .unwrap_err();
        assert!(err.contains("too many journal rules"), "{err}");
        // Inline rules alone over it: the configuration itself is refused.
        let inline = rules(0, MAX_USER_RULES + 1).replace("[[rules]]", "[[journal.rules]]");
        let err = Settings::parse(&inline, Path::new("c.toml")).unwrap_err().chain();
        assert!(err.contains("c.toml") && err.contains("too many journal rules"), "{err}");
        // Patterns count too: one rule with a pattern list over the bound.
        let many: Vec<String> = (0..=MAX_USER_PATTERNS).map(|i| format!("\"p{i}q\"")).collect();
        let one = format!(
            "[[rules]]\nid = \"wide\"\nseverity = \"warning\"\nsummary = \"s\"\npatterns = [{}]\n",
            many.join(", ")
        );
        std::fs::write(dir.path().join("10-a.toml"), one).unwrap();
        let err = Settings::parse(&text, Path::new("c.toml"))
            .unwrap()
            .journal_rules
            .map_err(|e| crate::model::error_chain(&e))
            .unwrap_err();
        assert!(err.contains("10-a.toml") && err.contains("patterns"), "{err}");
    }

    #[test]
    fn the_defaults_validate() {
        let s = Settings::parse(&Config::defaults_toml(), Path::new("defaults.toml")).unwrap();
        assert_eq!(s.config, Config::default());
        assert!(s.gate.is_empty());
        assert!(!s.journal_rules.unwrap().rules.is_empty());
    }

    #[test]
    fn unknown_keys_are_refused_with_file_line_and_key() {
        let err = Settings::parse("host_root = \"/\"\nbpf_fs = \"/x\"\n", Path::new("/etc/rw.toml")).unwrap_err();
        let text = err.chain();
        assert!(text.contains("/etc/rw.toml") && text.contains("line 2") && text.contains("bpf_fs"), "{text}");
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_place_and_the_nearest_known_key() {
        let text = "bpf_fs = \"/x\"\n[daemon]\nlisten = \"127.0.0.1:9977\"\nresync_sec = 5\n[metrics]\n  web_cofig = \"/w\"\nzzz = 1\n";
        let err = Settings::parse(text, Path::new("/etc/rw.toml")).unwrap_err().chain();
        assert!(err.starts_with("4 mistakes:"), "{err}");
        assert!(
            err.contains("/etc/rw.toml, line 1, column 1: unknown key \"bpf_fs\" (did you mean \"bpffs\"?)"),
            "{err}"
        );
        assert!(
            err.contains("line 4, column 1: unknown key \"daemon.resync_sec\" (did you mean \"daemon.resync_secs\"?)"),
            "{err}"
        );
        assert!(
            err.contains("line 6, column 3: unknown key \"metrics.web_cofig\" (did you mean \"metrics.web_config\"?)"),
            "{err}"
        );
        assert!(
            err.contains("line 7, column 1: unknown key \"metrics.zzz\"\n")
                || err.ends_with("unknown key \"metrics.zzz\""),
            "{err}"
        );
        // Keys whose default is "none" are known too.
        assert!(Settings::parse(
            "[daemon]\nunix_socket = \"/run/rw.sock\"\n[journal]\ndirectory = \"/j\"\n",
            Path::new("c.toml")
        )
        .is_ok());
    }

    #[test]
    fn every_bad_value_is_reported_with_its_line() {
        let text = "command_timeout_secs = 0\nservice_cidrs = [\"10.0.0.0/99\"]\n[daemon]\nlisten = \"nonsense\"\n[metrics]\nlisten = \"also nonsense\"\n";
        let err = Settings::parse(text, Path::new("c.toml")).unwrap_err().chain();
        assert!(err.starts_with("4 mistakes:"), "{err}");
        assert!(err.contains("command_timeout_secs must be at least 1 (line 1, column 1)"), "{err}");
        assert!(err.contains("\"10.0.0.0/99\" is not a CIDR such as 10.96.0.0/12 (line 2, column 1)"), "{err}");
        assert!(
            err.contains(
                "daemon.listen \"nonsense\" is not an address such as 127.0.0.1:9977 or localhost:9977 (line 4, column 1)"
            ),
            "{err}"
        );
        assert!(
            err.contains(
                "metrics.listen \"also nonsense\" is not an address such as 10.0.0.5:9978 or 0.0.0.0 (line 6, column 1)"
            ),
            "{err}"
        );
    }

    #[test]
    fn config_defaults_shows_every_key_and_config_show_the_effective_values() {
        let defaults = Config::defaults_toml();
        for (section, value) in known_keys() {
            let keys: Vec<String> = match value {
                toml::Value::Table(t) => t.keys().cloned().collect(),
                _ => vec![section.clone()],
            };
            for key in keys {
                let written = defaults.lines().any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} = ")));
                assert!(written, "config defaults lacks {section}.{key}:\n{defaults}");
            }
        }
        let s = Settings::parse("[daemon]\nresync_secs = 7\n", Path::new("/etc/rw.toml")).unwrap();
        let shown = s.config.effective_toml(s.path.as_deref());
        assert!(shown.contains("/etc/rw.toml over the defaults") && shown.contains("resync_secs = 7"), "{shown}");
        let back: Config = toml::from_str(&shown).unwrap();
        assert_eq!(back, s.config);
    }

    /// Every error of this file whose cause is its source says only its own context; the chain prints the cause
    /// once (the texts are those the messages used to interpolate).
    #[test]
    fn each_cause_is_printed_once_by_the_chain_and_never_by_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let web = |yaml: &str| {
            let p = dir.path().join(format!("web-{}.yml", yaml.len()));
            std::fs::write(&p, yaml).unwrap();
            format!("[metrics]\nlisten = \"127.0.0.1:9978\"\nweb_config = \"{}\"\n", p.display())
        };
        let pem = dir.path().join("bad.crt");
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
        let cases = [
            ("command_timeout_secs = \"ten\"\n".to_string(), "invalid type"),
            ("[[journal.rules]]\nid = \"x\"\nseverity = \"warning\"\n".into(), "summary"),
            ("[gate]\nrequirements = [\"chain:nat\"]\n".into(), "chain:nat"),
            (web("basic_auth_users:\n  p: plaintext\n"), "basic_auth_users.p"),
            (web("basic_auth_users: [a]\n"), "basic_auth_users"),
            (web(&format!("tls_server_config:\n  cert_file: {0}\n  key_file: {0}\n", pem.display())), "PEM"),
        ];
        for (text, want) in cases {
            let err = Settings::parse(&text, Path::new("c.toml")).unwrap_err();
            let chain = err.chain();
            assert!(chain.starts_with("c.toml") && chain.contains(want), "{text}: {chain}");
            let mut cur: Option<&dyn std::error::Error> = Some(err.inner());
            let mut causes = 0;
            while let Some(e) = cur {
                if let Some(cause) = e.source().map(ToString::to_string).filter(|c| !c.is_empty()) {
                    causes += 1;
                    assert!(!e.to_string().contains(&cause), "{e} repeats its cause {cause}");
                    assert_eq!(chain.matches(&cause).count(), 1, "{cause} in {chain}");
                }
                cur = e.source();
            }
            assert!(causes > 0, "{text}: {chain}");
        }
    }

    #[test]
    fn edit_distance_and_nearest_key() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(nearest("lisen", ["listen", "unix_socket"].into_iter()), Some("listen"));
        assert_eq!(nearest("banana", ["listen", "unix_socket"].into_iter()), None);
    }

    #[test]
    fn wrong_types_and_unknown_sources_are_refused() {
        let err = Settings::parse("command_timeout_secs = \"ten\"", Path::new("c.toml")).unwrap_err();
        assert!(err.chain().contains("command_timeout_secs"), "{err}");
        let err = Settings::parse("disabled_sources = [\"ebpf\"]", Path::new("c.toml")).unwrap_err();
        assert!(err.chain().contains("\"ebpf\"") && err.chain().contains("bpf, processes"), "{err}");
        let err = Settings::parse("disabled_sources = [\"journal\"]", Path::new("c.toml")).unwrap_err();
        assert!(err.chain().contains("\"journal\""), "{err}");
    }

    /// The key, each bad name (with its place and the nearest name) and the valid names, once each; a valid
    /// configuration has the set of ids.
    #[test]
    fn unknown_disabled_sources_are_refused_naming_the_key_the_name_and_the_valid_names() {
        let text = "host_root = \"/\"\ndisabled_sources = [\"ipvs\",\n  \"ebpf\", \"journal\"]\n";
        let err = Settings::parse(text, Path::new("/etc/rw.toml")).unwrap_err().chain();
        let known = "iptables-legacy, nftables, links, ipvs, bpf, processes, certificates, mounts, cni, \
                     kube-proxy-api, cilium-agent, routes";
        assert_eq!(
            err,
            format!(
                "2 mistakes:\n  /etc/rw.toml: disabled_sources names unknown source \"ebpf\" (did you mean \"bpf\"?) \
                 (known: {known}) (line 3, column 3)\n  /etc/rw.toml: disabled_sources names unknown source \
                 \"journal\" (known: {known}) (line 3, column 11)"
            )
        );
        // With an unknown key, both are reported; a wrong type elsewhere too.
        let err = Settings::parse("disabled_sources = [\"ebpf\"]\nbpf_fs = 1\n", Path::new("c.toml")).unwrap_err();
        assert!(err.chain().starts_with("2 mistakes:") && err.chain().contains("bpf_fs"), "{err}");
        let err = Settings::parse("command_timeout_secs = \"x\"\ndisabled_sources = [\"ebpf\"]\n", Path::new("c.toml"))
            .unwrap_err()
            .chain();
        assert!(err.starts_with("2 mistakes:") && err.contains("command_timeout_secs"), "{err}");
        let err = Settings::parse("disabled_sources = \"ipvs\"\n", Path::new("c.toml")).unwrap_err().chain();
        assert!(err.contains("disabled_sources") && err.contains("sequence"), "{err}");
        // A wrong type there is said next to another mistake, not held back as an unknown name would be.
        let err =
            Settings::parse("disabled_sources = \"ipvs\"\nbpf_fs = 1\n", Path::new("c.toml")).unwrap_err().chain();
        assert!(err.starts_with("2 mistakes:") && err.contains("sequence") && err.contains("bpf_fs"), "{err}");
        let s = Settings::parse("disabled_sources = [\"routes\", \"kube-proxy-api\"]\n", Path::new("c.toml")).unwrap();
        assert_eq!(s.config.disabled_sources, [SourceId::KubeProxyApi, SourceId::Routes].into());
    }

    #[test]
    fn each_part_is_validated_by_its_owner() {
        let err = Settings::parse("service_cidrs = [\"10.96.0.0/33\"]", Path::new("c.toml")).unwrap_err();
        assert!(matches!(err.inner(), SettingsError::Cidr { .. }), "{err}");
        assert!(Settings::parse("service_cidrs = [\"10.96.0.0/12\", \"fd00::/108\"]", Path::new("c.toml")).is_ok());
        let err = Settings::parse("[gate]\nrequirements = [\"chain:nat\"]", Path::new("c.toml")).unwrap_err();
        assert!(err.chain().contains("gate.requirements"), "{err}");
        let err = Settings::parse("[[journal.rules]]\nid = \"x\"\nseverity = \"warning\"\n", Path::new("c.toml"))
            .unwrap_err();
        assert!(err.chain().contains("journal.rules[0]") && err.chain().contains("summary"), "{err}");
        let err = Settings::parse(
            "[[journal.rules]]\nid = \"x\"\nseverity = \"warning\"\nsummary = \"s\"\npattern = \"(\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(matches!(err.inner(), SettingsError::Rules { .. }), "{err}");
        let err = Settings::parse("[daemon]\nlisten = \"nonsense\"", Path::new("c.toml")).unwrap_err();
        assert!(matches!(err.inner(), SettingsError::Listen { .. }), "{err}");
    }

    #[test]
    fn the_kubernetes_section_is_off_by_default_and_validated_with_its_keys() {
        let parse = |t: &str| Settings::parse(t, Path::new("c.toml"));
        let k = parse("").unwrap().config.kubernetes;
        assert!(!k.enabled);
        assert_eq!(k.kubeconfig, Path::new("/etc/kubernetes/kubelet.conf"));
        assert_eq!((k.node_name.as_str(), k.heartbeat_secs), ("", 300));
        let ok =
            parse("[kubernetes]\nenabled = true\nnode_name = \"worker-1.example\"\nheartbeat_secs = 60\n").unwrap();
        assert!(ok.config.kubernetes.enabled);
        let err = parse("[kubernetes]\nnode_name = \"Worker_1\"\n").unwrap_err().chain();
        assert!(err.contains("kubernetes.node_name") && err.contains("Worker_1"), "{err}");
        for bad in ["0", "9", "86401", "9223372036854775807"] {
            let err = parse(&format!("[kubernetes]\nheartbeat_secs = {bad}\n")).unwrap_err().chain();
            assert!(err.contains("kubernetes.heartbeat_secs") && err.contains("10 to 86400"), "{bad}: {err}");
        }
        assert!(parse("[kubernetes]\nheartbeat_secs = 86400\n").is_ok());
        assert!(parse("[kubernetes]\nheartbeat_secs = 10\n").is_ok());
        let err = parse("[kubernetes]\nkubeconfig = \"\"\n").unwrap_err().chain();
        assert!(err.contains("kubernetes.kubeconfig"), "{err}");
        assert_eq!(k.taint_key, "routewarden.io/service-routing-not-ready");
        assert!(!k.taint);
        for bad in ["", "a/b/c", "Example.com/x", "x/-a", "-a", &"a".repeat(64)] {
            let err = parse(&format!("[kubernetes]\ntaint_key = \"{bad}\"\n")).unwrap_err().chain();
            assert!(err.contains("kubernetes.taint_key"), "{bad}: {err}");
        }
        assert!(parse("[kubernetes]\ntaint = true\ntaint_key = \"example.com/not-ready\"\n").is_ok());
        assert!(parse("[kubernetes]\ntaint_key = \"NotReady_1\"\n").is_ok());
        let err = parse("[kubernetes]\ntoken = \"x\"\n").unwrap_err().chain();
        assert!(err.contains("unknown key") && err.contains("kubernetes.token"), "{err}");
        // What the exporter reads: the kubeconfigs under host_root, the heartbeat as a duration, names checked.
        let e = parse(
            "host_root = \"/host\"\n[kubernetes]\nkubeconfig = \"/k.conf\"\nnode_name = \"w-1\"\nheartbeat_secs = 60\n\
             taint = true\n",
        )
        .unwrap()
        .kubernetes;
        assert_eq!(e.kubeconfigs, [PathBuf::from("/host/k.conf"), PathBuf::from("/host/var/lib/kubelet/kubeconfig")]);
        assert_eq!(e.host_root, Path::new("/host"));
        assert_eq!((e.node_name.as_ref().map(NodeName::as_str), e.heartbeat), (Some("w-1"), Duration::from_secs(60)));
        assert_eq!(e.managed_taint().map(TaintKey::as_str), Some("routewarden.io/service-routing-not-ready"));
        let e = parse("").unwrap().kubernetes;
        assert_eq!((e.node_name.as_ref(), e.managed_taint()), (None, None));
        let err = parse("disabled_sources = [\"kubernetes\"]\n").unwrap_err().chain();
        assert!(err.contains("unknown source"), "the exporter is switched by kubernetes.enabled: {err}");
    }

    #[test]
    fn the_two_listeners_never_share_a_port_and_daemon_listen_stays_local_unless_told() {
        let parse = |t: &str| Settings::parse(t, Path::new("c.toml"));
        // Issue 24: this collided with the default daemon.listen and `serve` exited 3.
        let err = parse("[metrics]\nlisten = \"0.0.0.0:9977\"\nallow_plaintext = true\n").unwrap_err().chain();
        assert!(err.contains("daemon.listen") && err.contains("metrics.listen") && err.contains("9977"), "{err}");
        let err = parse("[daemon]\nlisten = \"127.0.0.1:9000\"\n[metrics]\nlisten = \"127.0.0.1:9000\"\n")
            .unwrap_err()
            .chain();
        assert!(err.contains("same port"), "{err}");
        let err =
            parse("[daemon]\nlisten = \"[::1]:9000\"\n[metrics]\nlisten = \"[::]:9000\"\nallow_plaintext = true\n")
                .unwrap_err()
                .chain();
        assert!(err.contains("same port"), "{err}");
        // Without a port the metrics listener takes its own.
        let s = parse("[metrics]\nlisten = \"0.0.0.0\"\nallow_plaintext = true\n").unwrap();
        assert_eq!(s.metrics.unwrap().listen, "0.0.0.0:9978".parse().unwrap());
        assert_eq!(s.listen, "127.0.0.1:9977".parse().unwrap());
        let v6 = parse("[metrics]\nlisten = \"[::1]\"\n").unwrap().metrics.unwrap();
        assert_eq!(v6.listen, "[::1]:9978".parse().unwrap());
        assert!(parse("[daemon]\nlisten = \"127.0.0.1:9000\"\n[metrics]\nlisten = \"127.0.0.2:9000\"\n").is_ok());

        // daemon.listen: non-loopback refused with the reason, unless allow_remote; localhost:PORT accepted.
        let err = parse("[daemon]\nlisten = \"0.0.0.0:9977\"\n").unwrap_err().chain();
        assert!(err.contains("not loopback") && err.contains("without authentication"), "{err}");
        assert!(err.contains("daemon.allow_remote"), "{err}");
        let s = parse("[daemon]\nlisten = \"0.0.0.0:9977\"\nallow_remote = true\n").unwrap();
        assert_eq!(s.listen, "0.0.0.0:9977".parse().unwrap());
        assert_eq!(parse("[daemon]\nlisten = \"localhost:9000\"\n").unwrap().listen, "127.0.0.1:9000".parse().unwrap());
        for bad in ["localhost", "evil.example:9977"] {
            let e = parse(&format!("[daemon]\nlisten = \"{bad}\"\n")).unwrap_err();
            assert!(matches!(e.inner(), SettingsError::Listen { .. }), "{e}");
        }
    }

    #[test]
    fn a_network_metrics_listener_needs_tls_unless_plaintext_is_allowed() {
        let parse = |t: &str| Settings::parse(t, Path::new("c.toml"));
        assert!(parse("").unwrap().metrics.is_none(), "no network listener by default");
        let err = parse("[metrics]\nlisten = \"0.0.0.0:9977\"\n").unwrap_err().chain();
        assert!(err.contains("c.toml") && err.contains("not loopback") && err.contains("web_config"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let users_only = dir.path().join("web.yml");
        std::fs::write(&users_only, format!("basic_auth_users:\n  p: {}\n", bcrypt::hash("x", 4).unwrap())).unwrap();
        let t = format!("[metrics]\nlisten = \"10.0.0.5:9977\"\nweb_config = \"{}\"\n", users_only.display());
        assert!(parse(&t).unwrap_err().chain().contains("not loopback"), "basic auth without TLS is plaintext");
        let m = parse("[metrics]\nlisten = \"0.0.0.0:9979\"\nallow_plaintext = true\n").unwrap().metrics.unwrap();
        assert_eq!(m.listen.port(), 9979);
        assert!(parse("[metrics]\nlisten = \"127.0.0.1:9978\"\n").unwrap().metrics.unwrap().web.is_none());
        assert!(parse("[metrics]\nlisten = \"nonsense\"\n").unwrap_err().chain().contains("metrics.listen"));
        let missing = "[metrics]\nlisten = \"127.0.0.1:9978\"\nweb_config = \"/nonexistent/web.yml\"\n";
        let err = parse(missing).unwrap_err().chain();
        assert!(err.contains("metrics.web_config") && err.contains("/nonexistent/web.yml"), "{err}");
    }
}
