//! Journal rules in their configured form (TOML `[[rules]]`); `journal::rules` compiles them.

use serde::{Deserialize, Serialize};

use super::Severity;

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
