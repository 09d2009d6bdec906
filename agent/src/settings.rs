//! Validated settings: the configuration file (`config::Config`, plain data) read, then each subsystem checking
//! its own part (zincati-style: fragments -> validated settings). What `Settings` holds is ready to use: the gate's
//! requirements parsed, the journal rules compiled (defaults, `rules.d`, inline), the Service CIDRs parsed.

use std::path::{Path, PathBuf};

use crate::config::{Config, DEFAULT_PATH};
use crate::journal::{RuleSet, RulesError};
use crate::model::journal::Rule;
use crate::model::SourceId;
use crate::outputs::web_config::{WebConfig, WebConfigError};
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
    pub journal_rules: Result<RuleSet, String>,
    /// Where the file came from (`None`: built-in defaults).
    pub path: Option<PathBuf>,
    /// `[metrics]`: the network listener's address and its web configuration, loaded (`None`: no listener).
    pub metrics: Option<MetricsListener>,
    /// `daemon.listen`, parsed.
    pub listen: std::net::SocketAddr,
}

/// The network metrics listener, validated.
#[derive(Debug, Clone)]
pub struct MetricsListener {
    pub listen: std::net::SocketAddr,
    pub web: Option<WebConfig>,
}

/// A configuration that could not be loaded, naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("{path}: disabled_sources names unknown source {name:?} (known: {known})")]
    UnknownSource { path: PathBuf, name: String, known: String },
    #[error("{path}: {key} = {value} is too large (at most 86400)")]
    TooLarge { path: PathBuf, key: &'static str, value: u64 },
    #[error("{path}: {key} must be at least 1")]
    Zero { path: PathBuf, key: &'static str },
    #[error("{path}: service_cidrs entry {value:?} is not a CIDR such as 10.96.0.0/12")]
    Cidr { path: PathBuf, value: String },
    #[error("{path}: journal rules: {source}")]
    Rules { path: PathBuf, source: RulesError },
    #[error("{path}: journal.rules[{index}]: {source}")]
    InlineRule { path: PathBuf, index: usize, source: Box<toml::de::Error> },
    #[error("{path}: gate.requirements: {source}")]
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
    #[error("{inner} (line {line})")]
    At { line: usize, inner: Box<SettingsError> },
    #[error("{path}: metrics.listen {value:?} is not an address such as 10.0.0.5:9978 or 0.0.0.0")]
    MetricsListen { path: PathBuf, value: String },
    #[error("{path}: metrics.listen {value} is not loopback: set metrics.web_config to a web configuration with tls_server_config (or allow_plaintext = true to serve it without TLS)")]
    Plaintext { path: PathBuf, value: String },
    #[error("{path}: metrics.web_config: {source}")]
    WebConfig { path: PathBuf, source: WebConfigError },
    #[error("{path}: {key} {value:?}: {why}")]
    Kubernetes { path: PathBuf, key: &'static str, value: String, why: &'static str },
}

/// The largest configuration file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

pub use crate::sys::host::read_regular;

/// `[kubernetes]`: a node name the API server would accept (a DNS subdomain), a kubeconfig path.
fn kubernetes(k: &crate::config::Kubernetes, path: &Path) -> Result<(), SettingsError> {
    let err = |key, value: String, why| SettingsError::Kubernetes { path: path.into(), key, value, why };
    let n = &k.node_name;
    let dns = n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !n.is_empty() && !dns {
        return Err(err(
            "kubernetes.node_name",
            n.clone(),
            "not a Node name (lower-case letters, digits, '-' and '.')",
        ));
    }
    if k.kubeconfig.as_os_str().is_empty() {
        return Err(err("kubernetes.kubeconfig", String::new(), "empty: name the kubeconfig file"));
    }
    Ok(())
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
        Some(w) => Some(WebConfig::load(w).map_err(|source| SettingsError::WebConfig { path: p(), source })?),
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
        let text =
            read_regular(&path, MAX_CONFIG_BYTES).map_err(|what| SettingsError::Read { path: path.clone(), what })?;
        Settings::parse(&text, &path)
    }

    /// Parses and validates TOML text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Settings, SettingsError> {
        let config: Config = toml::from_str(text)
            .map_err(|source| SettingsError::Parse { path: path.into(), source: Box::new(source) })?;
        Settings::validate(config, path, Some(path.to_path_buf())).map_err(|e| at_line(e, text))
    }

    fn validate(config: Config, path: &Path, origin: Option<PathBuf>) -> Result<Settings, SettingsError> {
        let p = || path.to_path_buf();
        for name in &config.disabled_sources {
            if SourceId::from_name(name).is_none_or(|id| matches!(id, SourceId::Journal | SourceId::Kubernetes)) {
                let known = SourceId::COLLECTED.map(SourceId::as_str).join(", ");
                return Err(SettingsError::UnknownSource { path: p(), name: name.clone(), known });
            }
        }
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
                return Err(SettingsError::Zero { path: p(), key });
            }
            if value > 86_400 {
                return Err(SettingsError::TooLarge { path: p(), key, value });
            }
        }
        for (key, value, min, max, range) in [
            ("daemon.debounce_ms", d.debounce_ms, 0, 60_000, "0 to 60000"),
            ("kube_proxy.timeout_ms", config.kube_proxy.timeout_ms, 1, 60_000, "1 to 60000; 0 would never ask"),
            ("kubernetes.heartbeat_secs", config.kubernetes.heartbeat_secs, 10, 86_400, "10 to 86400"),
        ] {
            if !(min..=max).contains(&value) {
                return Err(SettingsError::Range { path: p(), key, value, range });
            }
        }
        let certs = &config.certificates;
        if certs.critical_days > certs.warning_days {
            return Err(SettingsError::Thresholds {
                path: p(),
                critical: certs.critical_days,
                warning: certs.warning_days,
            });
        }
        let gate = config
            .gate
            .requirements
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<Requirement>, _>>()
            .map_err(|source| SettingsError::Requirement { path: p(), source })?;
        for cidr in &config.service_cidrs {
            if crate::rules::neighbours::parse_cidr(cidr).is_none() {
                return Err(SettingsError::Cidr { path: p(), value: cidr.clone() });
            }
        }
        let metrics = metrics_listener(&config, path)?;
        let listen = daemon_listener(&config, path, metrics.as_ref())?;
        kubernetes(&config.kubernetes, path)?;
        let journal_rules = journal_rules(&config, path)?.map_err(|e| crate::model::error_chain(&e));
        Ok(Settings { config, gate, journal_rules, path: origin, metrics, listen })
    }

    /// The directory for state: `$STATE_DIRECTORY` when systemd set it, else `daemon.state_dir`.
    pub fn state_dir(&self) -> PathBuf {
        match std::env::var_os("STATE_DIRECTORY") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => self.config.daemon.state_dir.clone(),
        }
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

/// A value error with the line of its key in `text`, when the key is written there once.
fn at_line(e: SettingsError, text: &str) -> SettingsError {
    let key = match &e {
        SettingsError::Range { key, .. } | SettingsError::Zero { key, .. } | SettingsError::TooLarge { key, .. } => {
            *key
        }
        SettingsError::Thresholds { .. } => "certificates.critical_days",
        _ => return e,
    };
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().strip_prefix(leaf).is_some_and(|r| r.trim_start().starts_with('=')))
        .map(|(i, _)| i + 1)
        .collect();
    match lines.as_slice() {
        [line] => SettingsError::At { line: *line, inner: Box::new(e) },
        _ => e,
    }
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
    for rule in &inline {
        check_rule(rule).map_err(|source| SettingsError::Rules { path: path.into(), source })?;
    }
    let hard = |source| SettingsError::Rules { path: path.into(), source };
    // The whole set is compiled once; only when it fails is it told apart whose fault that was.
    let soft = match rules_dir(config) {
        Ok(files) => {
            let mut user: Vec<Rule> = files.iter().map(|(_, r)| r.clone()).collect();
            user.extend(inline.clone());
            match RuleSet::with_defaults(user) {
                Ok(rules) => return Ok(Ok(rules)),
                // Whose rule it was: the first file whose rules fail on their own (a bad regex) is named.
                Err(e) => files
                    .iter()
                    .find_map(|(f, _)| {
                        let own = files.iter().filter(|(g, _)| g == f).map(|(_, r)| r.clone()).collect();
                        RuleSet::with_defaults(own)
                            .err()
                            .map(|e| RulesError::Invalid { id: format!("in {}", f.display()), why: e.to_string() })
                    })
                    .unwrap_or(e),
            }
        }
        Err(e) => e,
    };
    RuleSet::with_defaults(inline).map_err(hard)?;
    Ok(Err(soft))
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
        for f in files {
            let text = read_regular(&f, MAX_CONFIG_BYTES).map_err(|e| RulesError::Invalid {
                id: f.display().to_string(),
                why: format!("reading the file: {e}"),
            })?;
            for rule in crate::journal::rules::parse(&text, &f.display().to_string())? {
                let named = |why: String| RulesError::Invalid { id: format!("{} in {}", rule.id, f.display()), why };
                check_rule(&rule).map_err(|e| named(e.to_string()))?;
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
    for (what, p) in [("pattern", &rule.pattern), ("clear_pattern", &rule.clear_pattern)] {
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

    #[test]
    fn a_broken_rules_file_fails_only_the_journal_rules() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("10-bad.toml"), "[[rules]]\nid = \"b\"\n").unwrap();
        let text = format!("[journal]\nrules_dir = \"{}\"\n", dir.path().display());
        let s = Settings::parse(&text, Path::new("c.toml")).unwrap();
        let err = s.journal_rules.unwrap_err();
        assert!(err.contains("10-bad.toml") && err.contains("severity"), "{err}");
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
        let text = err.to_string();
        assert!(text.contains("/etc/rw.toml") && text.contains("line 2") && text.contains("bpf_fs"), "{text}");
    }

    #[test]
    fn wrong_types_and_unknown_sources_are_refused() {
        let err = Settings::parse("command_timeout_secs = \"ten\"", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("command_timeout_secs"), "{err}");
        let err = Settings::parse("disabled_sources = [\"ebpf\"]", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("\"ebpf\"") && err.to_string().contains("bpf, processes"), "{err}");
        let err = Settings::parse("disabled_sources = [\"journal\"]", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("\"journal\""), "{err}");
    }

    #[test]
    fn each_part_is_validated_by_its_owner() {
        let err = Settings::parse("service_cidrs = [\"10.96.0.0/33\"]", Path::new("c.toml")).unwrap_err();
        assert!(matches!(err, SettingsError::Cidr { .. }), "{err}");
        assert!(Settings::parse("service_cidrs = [\"10.96.0.0/12\", \"fd00::/108\"]", Path::new("c.toml")).is_ok());
        let err = Settings::parse("[gate]\nrequirements = [\"chain:nat\"]", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("gate.requirements"), "{err}");
        let err = Settings::parse("[[journal.rules]]\nid = \"x\"\nseverity = \"warning\"\n", Path::new("c.toml"))
            .unwrap_err();
        assert!(err.to_string().contains("journal.rules[0]") && err.to_string().contains("summary"), "{err}");
        let err = Settings::parse(
            "[[journal.rules]]\nid = \"x\"\nseverity = \"warning\"\nsummary = \"s\"\npattern = \"(\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(matches!(err, SettingsError::Rules { .. }), "{err}");
        let err = Settings::parse("[daemon]\nlisten = \"nonsense\"", Path::new("c.toml")).unwrap_err();
        assert!(matches!(err, SettingsError::Listen { .. }), "{err}");
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
        let err = parse("[kubernetes]\nnode_name = \"Worker_1\"\n").unwrap_err().to_string();
        assert!(err.contains("kubernetes.node_name") && err.contains("Worker_1"), "{err}");
        for bad in ["0", "9", "86401", "9223372036854775807"] {
            let err = parse(&format!("[kubernetes]\nheartbeat_secs = {bad}\n")).unwrap_err().to_string();
            assert!(err.contains("kubernetes.heartbeat_secs") && err.contains("10 to 86400"), "{bad}: {err}");
        }
        assert!(parse("[kubernetes]\nheartbeat_secs = 86400\n").is_ok());
        assert!(parse("[kubernetes]\nheartbeat_secs = 10\n").is_ok());
        let err = parse("[kubernetes]\nkubeconfig = \"\"\n").unwrap_err().to_string();
        assert!(err.contains("kubernetes.kubeconfig"), "{err}");
        let err = parse("[kubernetes]\ntoken = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("unknown field") && err.contains("token"), "{err}");
        let err = parse("disabled_sources = [\"kubernetes\"]\n").unwrap_err().to_string();
        assert!(err.contains("unknown source"), "the exporter is switched by kubernetes.enabled: {err}");
    }

    #[test]
    fn the_two_listeners_never_share_a_port_and_daemon_listen_stays_local_unless_told() {
        let parse = |t: &str| Settings::parse(t, Path::new("c.toml"));
        // Issue 24: this collided with the default daemon.listen and `serve` exited 3.
        let err = parse("[metrics]\nlisten = \"0.0.0.0:9977\"\nallow_plaintext = true\n").unwrap_err().to_string();
        assert!(err.contains("daemon.listen") && err.contains("metrics.listen") && err.contains("9977"), "{err}");
        let err = parse("[daemon]\nlisten = \"127.0.0.1:9000\"\n[metrics]\nlisten = \"127.0.0.1:9000\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("same port"), "{err}");
        let err =
            parse("[daemon]\nlisten = \"[::1]:9000\"\n[metrics]\nlisten = \"[::]:9000\"\nallow_plaintext = true\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("same port"), "{err}");
        // Without a port the metrics listener takes its own.
        let s = parse("[metrics]\nlisten = \"0.0.0.0\"\nallow_plaintext = true\n").unwrap();
        assert_eq!(s.metrics.unwrap().listen, "0.0.0.0:9978".parse().unwrap());
        assert_eq!(s.listen, "127.0.0.1:9977".parse().unwrap());
        let v6 = parse("[metrics]\nlisten = \"[::1]\"\n").unwrap().metrics.unwrap();
        assert_eq!(v6.listen, "[::1]:9978".parse().unwrap());
        assert!(parse("[daemon]\nlisten = \"127.0.0.1:9000\"\n[metrics]\nlisten = \"127.0.0.2:9000\"\n").is_ok());

        // daemon.listen: non-loopback refused with the reason, unless allow_remote; localhost:PORT accepted.
        let err = parse("[daemon]\nlisten = \"0.0.0.0:9977\"\n").unwrap_err().to_string();
        assert!(err.contains("not loopback") && err.contains("without authentication"), "{err}");
        assert!(err.contains("daemon.allow_remote"), "{err}");
        let s = parse("[daemon]\nlisten = \"0.0.0.0:9977\"\nallow_remote = true\n").unwrap();
        assert_eq!(s.listen, "0.0.0.0:9977".parse().unwrap());
        assert_eq!(parse("[daemon]\nlisten = \"localhost:9000\"\n").unwrap().listen, "127.0.0.1:9000".parse().unwrap());
        assert!(matches!(parse("[daemon]\nlisten = \"localhost\"\n"), Err(SettingsError::Listen { .. })));
        assert!(matches!(parse("[daemon]\nlisten = \"evil.example:9977\"\n"), Err(SettingsError::Listen { .. })));
    }

    #[test]
    fn a_network_metrics_listener_needs_tls_unless_plaintext_is_allowed() {
        let parse = |t: &str| Settings::parse(t, Path::new("c.toml"));
        assert!(parse("").unwrap().metrics.is_none(), "no network listener by default");
        let err = parse("[metrics]\nlisten = \"0.0.0.0:9977\"\n").unwrap_err().to_string();
        assert!(err.contains("c.toml") && err.contains("not loopback") && err.contains("web_config"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let users_only = dir.path().join("web.yml");
        std::fs::write(&users_only, format!("basic_auth_users:\n  p: {}\n", bcrypt::hash("x", 4).unwrap())).unwrap();
        let t = format!("[metrics]\nlisten = \"10.0.0.5:9977\"\nweb_config = \"{}\"\n", users_only.display());
        assert!(parse(&t).unwrap_err().to_string().contains("not loopback"), "basic auth without TLS is plaintext");
        let m = parse("[metrics]\nlisten = \"0.0.0.0:9979\"\nallow_plaintext = true\n").unwrap().metrics.unwrap();
        assert_eq!(m.listen.port(), 9979);
        assert!(parse("[metrics]\nlisten = \"127.0.0.1:9978\"\n").unwrap().metrics.unwrap().web.is_none());
        assert!(parse("[metrics]\nlisten = \"nonsense\"\n").unwrap_err().to_string().contains("metrics.listen"));
        let missing = "[metrics]\nlisten = \"127.0.0.1:9978\"\nweb_config = \"/nonexistent/web.yml\"\n";
        let err = parse(missing).unwrap_err().to_string();
        assert!(err.contains("metrics.web_config") && err.contains("/nonexistent/web.yml"), "{err}");
    }
}
