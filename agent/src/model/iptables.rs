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
    /// Which backend the node's `iptables` command writes (`iptables_command`'s symlink chain); absent when the
    /// command is not there or its chain does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<IptablesCommand>,
}

/// The node's `iptables` command as update-alternatives links it: `/usr/sbin/iptables -> /etc/alternatives/iptables
/// -> /usr/sbin/iptables-nft -> xtables-nft-multi` is the nft backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IptablesCommand {
    /// The configured path, then every link target followed (at most 8 links).
    pub chain: Vec<String>,
    pub backend: CommandBackend,
}

/// The backend an iptables command writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandBackend {
    Legacy,
    Nft,
}

impl CommandBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandBackend::Legacy => "legacy",
            CommandBackend::Nft => "nft",
        }
    }

    /// The backend a command's file names say, the last name that says one winning: `xtables-nft-multi` and
    /// `iptables-nft` are nft, `xtables-legacy-multi` and `iptables-legacy` legacy; a plain `iptables` says nothing.
    pub fn of_names<'a>(names: impl DoubleEndedIterator<Item = &'a str>) -> Option<CommandBackend> {
        names.rev().find_map(|n| {
            if n.contains("-nft") {
                Some(CommandBackend::Nft)
            } else if n.contains("-legacy") {
                Some(CommandBackend::Legacy)
            } else {
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_name_that_says_a_backend_wins() {
        let of = |names: &[&str]| CommandBackend::of_names(names.iter().copied());
        assert_eq!(of(&["iptables", "iptables", "iptables-nft", "xtables-nft-multi"]), Some(CommandBackend::Nft));
        assert_eq!(of(&["iptables", "iptables-legacy", "xtables-legacy-multi"]), Some(CommandBackend::Legacy));
        assert_eq!(of(&["iptables", "iptables-nft", "xtables-legacy-multi"]), Some(CommandBackend::Legacy));
        assert_eq!(of(&["iptables"]), None);
    }
}
