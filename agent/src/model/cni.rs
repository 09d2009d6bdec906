//! The CNI configuration directory and the active configuration's owner.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CniState {
    pub dir: PathBuf,
    /// Whether the directory exists at all.
    pub present: bool,
    /// Config files in name order.
    pub files: Vec<String>,
    /// The first file that parses, with its plugin types and owner.
    pub active: Option<CniConfig>,
    /// Files that did not parse: (file, error).
    pub errors: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniConfig {
    pub file: String,
    pub name: String,
    pub types: Vec<String>,
    pub owner: String,
}
