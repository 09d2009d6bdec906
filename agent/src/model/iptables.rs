//! iptables chain inventories: one ruleset per backend and family, table -> chain -> rule count.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Tables of one backend and family: table name -> chain name -> chain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ruleset {
    pub tables: BTreeMap<String, BTreeMap<String, Chain>>,
}

/// One chain. `rules` is unknown when the chain came from a names-only listing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<u32>,
}

impl Ruleset {
    pub fn is_empty(&self) -> bool {
        self.tables.values().all(|t| t.is_empty())
    }

    /// Chain names of `table`, empty when the table is absent.
    pub fn chains(&self, table: &str) -> impl Iterator<Item = &str> {
        self.tables.get(table).into_iter().flat_map(|t| t.keys().map(String::as_str))
    }

    pub fn has_chain(&self, table: &str, chain: &str) -> bool {
        self.tables.get(table).is_some_and(|t| t.contains_key(chain))
    }

    /// Every (table, chain) pair.
    pub fn all_chains(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tables.iter().flat_map(|(t, cs)| cs.keys().map(move |c| (t.as_str(), c.as_str())))
    }
}

/// Legacy iptables rules per family.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IptablesState {
    pub ipv4: Ruleset,
    pub ipv6: Ruleset,
}
