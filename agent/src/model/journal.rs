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
    pub summary: String,
    #[serde(default)]
    pub remedy: String,
}

fn default_window() -> u64 {
    300
}

fn one() -> u32 {
    1
}
