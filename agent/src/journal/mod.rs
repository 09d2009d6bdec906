//! The kubelet journal: entries from `journalctl --output=json`, rules (TOML, defaults shipped), the engine that
//! turns matches into findings, and the reader that follows or scans a journal.

pub mod assemble;
pub mod engine;
pub mod entry;
pub mod reader;
pub mod rules;
pub mod state;

pub use engine::Engine;
pub use entry::{parse_entry, Entry};
pub use rules::{RuleSet, RulesError};
