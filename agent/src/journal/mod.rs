//! The kubelet journal: `entry` parses `journalctl --output=json` lines, `assemble` joins a writer's continuation
//! lines into one record, `rules` loads the rules (TOML: `default_rules.toml` shipped, `rules.d`, inline),
//! `engine` turns matches into findings and episodes, `reader` follows (the daemon) or scans (`scan-journal`) a
//! journal through journalctl, and `state` keeps the follower's cursor in the state directory.

pub mod assemble;
pub mod engine;
pub mod entry;
pub mod reader;
pub mod rules;
pub mod state;

pub use engine::Engine;
pub use entry::{parse_entry, Entry};
pub use rules::{RuleSet, RulesError};
