//! Validated settings: the configuration file (`config::Config`, plain data) read, then each subsystem checking
//! its own part (zincati-style: fragments -> validated settings). What `Settings` holds is ready to use: the gate's
//! requirements parsed, the journal rules compiled (defaults, `rules.d`, inline), the Service CIDRs parsed.

use std::path::{Path, PathBuf};

use crate::config::{Config, DEFAULT_PATH};
use crate::journal::{RuleSet, RulesError};
use crate::model::journal::Rule;
use crate::model::SourceId;
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
        let journal_rules = journal_rules(&config, path)?.map_err(|e| crate::model::error_chain(&e));
        Ok(Settings { config, gate, journal_rules, path: origin })
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
}
