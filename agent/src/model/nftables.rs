//! nftables tables with their chain names, and the iptables-nft view of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::iptables::{Chain, Ruleset};

/// The chains of one iptables backend and family, borrowed from the snapshot: a legacy ruleset, or the iptables-nft
/// tables of the nftables state of family `ip` or `ip6` (without copying 300,000 names at 50k Services).
#[derive(Debug, Clone, Copy)]
pub enum Chains<'a> {
    Ruleset(&'a Ruleset),
    Nft(&'a NftablesState, &'static str),
}

impl<'a> Chains<'a> {
    /// Every (table, chain) pair, tables by name and chains by name as the nftables source sorts them (the
    /// order of [`NftablesState::iptables_nft`]'s maps).
    pub fn all(self) -> Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a> {
        match self {
            Chains::Ruleset(rs) => Box::new(rs.all_chains()),
            Chains::Nft(state, family) => Box::new(
                state
                    .iptables_nft_tables(family)
                    .flat_map(|t| t.chains.iter().map(move |c| (t.name.as_str(), c.as_str()))),
            ),
        }
    }

    pub fn has_chain(self, table: &str, chain: &str) -> bool {
        match self {
            Chains::Ruleset(rs) => rs.has_chain(table, chain),
            Chains::Nft(state, family) => {
                state.iptables_nft_tables(family).any(|t| t.name == table && t.chains.iter().any(|c| c == chain))
            }
        }
    }

    /// Whether the backend has no chain at all.
    pub fn is_empty(self) -> bool {
        self.all().next().is_none()
    }
}

/// Tables iptables-nft creates; any other table is native nftables.
pub const IPTABLES_NFT_TABLES: &[&str] = &["filter", "nat", "mangle", "raw", "security"];

/// All nftables tables with their chain names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NftablesState {
    pub tables: Vec<NftTable>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NftTable {
    /// `ip`, `ip6`, `inet`, `arp`, `bridge`, `netdev`.
    pub family: String,
    pub name: String,
    pub chains: Vec<String>,
}

impl NftablesState {
    pub fn table(&self, family: &str, name: &str) -> Option<&NftTable> {
        self.tables.iter().find(|t| t.family == family && t.name == name)
    }

    /// The iptables-nft tables of one family (`ip` or `ip6`), borrowed.
    pub fn iptables_nft_tables<'a>(&'a self, family: &'a str) -> impl Iterator<Item = &'a NftTable> + 'a {
        self.tables.iter().filter(move |t| t.family == family && IPTABLES_NFT_TABLES.contains(&t.name.as_str()))
    }

    /// The iptables-nft view of one family (`ip` or `ip6`) as an iptables ruleset: a copy of every chain name (the
    /// rules read [`Chains::Nft`], which borrows them).
    pub fn iptables_nft(&self, family: &str) -> Ruleset {
        let mut rs = Ruleset::default();
        for t in self.tables.iter().filter(|t| t.family == family && IPTABLES_NFT_TABLES.contains(&t.name.as_str())) {
            let chains: BTreeMap<String, Chain> = t.chains.iter().map(|c| (c.clone(), Chain::default())).collect();
            if !chains.is_empty() {
                rs.tables.insert(t.name.clone(), chains);
            }
        }
        rs
    }
}
