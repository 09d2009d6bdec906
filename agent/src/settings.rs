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
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
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
    #[error("{path}: daemon.listen {value:?} is not an address such as 127.0.0.1:9977")]
    Listen { path: PathBuf, value: String },
    #[error("{path}: metrics.listen {value:?} is not an address such as 10.0.0.5:9977")]
    MetricsListen { path: PathBuf, value: String },
    #[error("{path}: metrics.listen {value} is not loopback: set metrics.web_config to a web configuration with tls_server_config (or allow_plaintext = true to serve it without TLS)")]
    Plaintext { path: PathBuf, value: String },
    #[error("{path}: metrics.web_config: {source}")]
    WebConfig { path: PathBuf, source: WebConfigError },
}

/// `[metrics]`: no listener when `listen` is empty; a non-loopback address needs TLS unless `allow_plaintext`.
fn metrics_listener(config: &Config, path: &Path) -> Result<Option<MetricsListener>, SettingsError> {
    let m = &config.metrics;
    if m.listen.is_empty() {
        return Ok(None);
    }
    let p = || path.to_path_buf();
    let listen: std::net::SocketAddr =
        m.listen.parse().map_err(|_| SettingsError::MetricsListen { path: p(), value: m.listen.clone() })?;
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
            std::fs::read_to_string(&path).map_err(|source| SettingsError::Read { path: path.clone(), source })?;
        Settings::parse(&text, &path)
    }

    /// Parses and validates TOML text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Settings, SettingsError> {
        let config: Config = toml::from_str(text)
            .map_err(|source| SettingsError::Parse { path: path.into(), source: Box::new(source) })?;
        Settings::validate(config, path, Some(path.to_path_buf()))
    }

    fn validate(config: Config, path: &Path, origin: Option<PathBuf>) -> Result<Settings, SettingsError> {
        let p = || path.to_path_buf();
        for name in &config.disabled_sources {
            if SourceId::from_name(name).is_none_or(|id| id == SourceId::Journal) {
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
        if d.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(SettingsError::Listen { path: p(), value: d.listen.clone() });
        }
        let metrics = metrics_listener(&config, path)?;
        let journal_rules = journal_rules(&config, path)?.map_err(|e| crate::model::error_chain(&e));
        Ok(Settings { config, gate, journal_rules, path: origin, metrics })
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
    let hard = |source| SettingsError::Rules { path: path.into(), source };
    // The whole set is compiled once; only when it fails is it told apart whose fault that was.
    let soft = match rules_dir(config) {
        Ok(mut user) => {
            user.extend(inline.clone());
            match RuleSet::with_defaults(user) {
                Ok(rules) => return Ok(Ok(rules)),
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    RuleSet::with_defaults(inline).map_err(hard)?;
    Ok(Err(soft))
}

/// The rules of `journal.rules_dir/*.toml`, in name order; a missing directory has none.
fn rules_dir(config: &Config) -> Result<Vec<Rule>, RulesError> {
    let mut user = Vec::new();
    let dir = config.host_path(&config.journal.rules_dir);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut files: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| RulesError::Invalid {
                id: f.display().to_string(),
                why: format!("reading the file: {e}"),
            })?;
            user.extend(crate::journal::rules::parse(&text, &f.display().to_string())?);
        }
    }
    Ok(user)
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
        let m = parse("[metrics]\nlisten = \"0.0.0.0:9977\"\nallow_plaintext = true\n").unwrap().metrics.unwrap();
        assert_eq!(m.listen.port(), 9977);
        assert!(parse("[metrics]\nlisten = \"127.0.0.1:9978\"\n").unwrap().metrics.unwrap().web.is_none());
        assert!(parse("[metrics]\nlisten = \"nonsense\"\n").unwrap_err().to_string().contains("metrics.listen"));
        let missing = "[metrics]\nlisten = \"127.0.0.1:9978\"\nweb_config = \"/nonexistent/web.yml\"\n";
        let err = parse(missing).unwrap_err().to_string();
        assert!(err.contains("metrics.web_config") && err.contains("/nonexistent/web.yml"), "{err}");
    }
}
