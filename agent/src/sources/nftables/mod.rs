//! nftables: every table and chain name over netlink, which covers both kube-proxy's nftables mode
//! (`table ip kube-proxy`) and the iptables-nft backend (tables `ip filter`, `ip nat`, ... holding KUBE-* chains).
//!
//! Names only, never rules: listing the whole ruleset with `nft` takes 100 s at 10k Services.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sources::iptables::parse::{Chain, Ruleset};
use crate::sys::nfnetlink::{self, NetlinkError, NftObject};

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

pub fn fetch() -> Result<NftablesState, NetlinkError> {
    Ok(group(nfnetlink::dump_tables_and_chains()?))
}

/// Groups the flat netlink dump into tables (pure).
pub fn group(objects: Vec<NftObject>) -> NftablesState {
    let mut tables: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for o in objects {
        let entry = tables.entry((family_name(o.family), o.table)).or_default();
        if !o.name.is_empty() {
            entry.push(o.name);
        }
    }
    NftablesState {
        tables: tables
            .into_iter()
            .map(|((family, name), mut chains)| {
                chains.sort();
                NftTable { family, name, chains }
            })
            .collect(),
    }
}

fn family_name(f: u8) -> String {
    match f {
        1 => "inet".into(),
        2 => "ip".into(),
        3 => "arp".into(),
        5 => "netdev".into(),
        7 => "bridge".into(),
        10 => "ip6".into(),
        other => format!("family{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(family: u8, table: &str, name: &str) -> NftObject {
        NftObject { family, table: table.into(), name: name.into(), base: false }
    }

    #[test]
    fn groups_chains_and_splits_iptables_nft_from_native_tables() {
        let state = group(vec![
            obj(2, "kube-proxy", ""),
            obj(2, "nat", ""),
            obj(2, "nat", "KUBE-SERVICES"),
            obj(10, "nat", "KUBE-SERVICES"),
            obj(2, "kube-proxy", "services"),
            obj(1, "filter", "input"),
        ]);
        assert_eq!(state.table("ip", "kube-proxy").map(|t| t.chains.clone()), Some(vec!["services".to_string()]));
        assert!(state.iptables_nft("ip").has_chain("nat", "KUBE-SERVICES"));
        assert!(state.iptables_nft("ip6").has_chain("nat", "KUBE-SERVICES"));
        // `inet filter` is a native table (Debian's default nftables.conf), not iptables-nft.
        assert!(!state.iptables_nft("ip").tables.contains_key("filter"));
    }
}
