//! nftables tables with their chain names, and the iptables-nft view of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::iptables::{Chain, Ruleset};

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

    /// The iptables-nft view of one family (`ip` or `ip6`) as an iptables ruleset.
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
