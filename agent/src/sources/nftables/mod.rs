//! nftables: every table and chain name over netlink, which covers both kube-proxy's nftables mode
//! (`table ip kube-proxy`) and the iptables-nft backend (tables `ip filter`, `ip nat`, ... holding KUBE-* chains).
//!
//! Names only, never rules: listing the whole ruleset with `nft` takes 100 s at 10k Services.

use std::collections::BTreeMap;

use crate::model::nftables::{NftTable, NftablesState};
use crate::sys::nfnetlink::{self, NetlinkError, NftObject};

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
