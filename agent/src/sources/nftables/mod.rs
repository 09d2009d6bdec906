//! nftables: every table and chain name over netlink, which covers both kube-proxy's nftables mode
//! (`table ip kube-proxy`) and the iptables-nft backend (tables `ip filter`, `ip nat`, ... holding KUBE-* chains).
//!
//! Names only, never rules: listing the whole ruleset with `nft` takes 100 s at 10k Services.
//!
//! [`Reuse`] lets the daemon and `wait` skip a read the kernel says would find nothing new: the ruleset's
//! generation (`NFT_MSG_GETGEN`) is bumped by every committed nftables transaction, so while it and the list of
//! tables stay the same the last complete read is still true. `check` always reads ([`fetch`]).

use crate::model::nftables::{NftTable, NftablesState};
use crate::sys::nfnetlink::{self, NetlinkError, NftSink};

/// Reads every table and chain name.
pub fn fetch() -> Result<NftablesState, NetlinkError> {
    let mut g = Grouper::default();
    nfnetlink::dump_tables_and_chains_into(&mut g)?;
    Ok(g.finish())
}

/// The last complete read and the generation it was taken at, kept across collections by the daemon and `wait`.
#[derive(Debug, Default)]
pub struct Reuse {
    last: Option<(u32, Packed)>,
    /// Reads that dumped the chains.
    pub reads: u64,
    /// Collections answered from the last read because the generation had not moved.
    pub reused: u64,
}

impl Reuse {
    /// The nftables state now: the last read when the generation and the tables are those it was taken at,
    /// else a fresh read, kept for next time only when the generation was the same before and after it (a
    /// transaction committed during the dump may or may not show in it).
    ///
    /// The table list is checked too (one small dump): a table owned by a process (`NFT_TABLE_F_OWNER`) is
    /// released when that process closes its socket, in `nft_rcv_nl_event`, without a new generation.
    pub fn fetch(&mut self) -> Result<NftablesState, NetlinkError> {
        let before = match nfnetlink::generation() {
            Ok(g) => g,
            Err(e) => {
                self.last = None;
                return Err(e);
            }
        };
        if let Some((generation, state)) = &self.last {
            if *generation == before && same_tables(state)? {
                self.reused += 1;
                return Ok(state.unpack());
            }
        }
        self.last = None;
        let state = fetch()?;
        self.reads += 1;
        if matches!(nfnetlink::generation(), Ok(after) if after == before) {
            self.last = Some((before, Packed::pack(&state)));
        }
        Ok(state)
    }

    /// The generation of the read kept for reuse, if one is kept.
    pub fn generation(&self) -> Option<u32> {
        self.last.as_ref().map(|(g, _)| *g)
    }
}

/// Whether the kernel's tables are exactly those of `state` (family and name).
fn same_tables(state: &Packed) -> Result<bool, NetlinkError> {
    let mut g = Grouper::default();
    nfnetlink::dump_tables_into(&mut g)?;
    let now = g.finish();
    Ok(now.tables.len() == state.tables.len()
        && now.tables.iter().zip(&state.tables).all(|(a, b)| a.family == b.family && a.name == b.name))
}

/// An nftables state kept for the daemon's whole life in a few large allocations (per table: every chain name in
/// one string and where each ends) rather than one small allocation per chain, which would hold the heap's pages
/// after each collection's own copies are freed (60,000 chains at 10k Services).
#[derive(Debug, Clone, Default, PartialEq)]
struct Packed {
    tables: Vec<PackedTable>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct PackedTable {
    family: String,
    name: String,
    names: String,
    ends: Vec<usize>,
}

impl Packed {
    fn pack(state: &NftablesState) -> Packed {
        let tables = state
            .tables
            .iter()
            .map(|t| {
                let mut names = String::with_capacity(t.chains.iter().map(String::len).sum());
                let mut ends = Vec::with_capacity(t.chains.len());
                for c in &t.chains {
                    names.push_str(c);
                    ends.push(names.len());
                }
                PackedTable { family: t.family.clone(), name: t.name.clone(), names, ends }
            })
            .collect();
        Packed { tables }
    }

    fn unpack(&self) -> NftablesState {
        let tables = self
            .tables
            .iter()
            .map(|t| {
                let mut start = 0;
                let chains = t
                    .ends
                    .iter()
                    .map(|&end| {
                        let c = t.names.get(start..end).unwrap_or_default().to_string();
                        start = end;
                        c
                    })
                    .collect();
                NftTable { family: t.family.clone(), name: t.name.clone(), chains }
            })
            .collect();
        NftablesState { tables }
    }
}

/// Groups the dump into tables as it streams in (pure): each chain name is copied once, into its table, and
/// the table's own name is not repeated per chain.
#[derive(Debug, Default)]
pub struct Grouper {
    tables: Vec<(u8, String, Vec<String>)>,
    /// The table the previous object belonged to: dumps list a table's chains together.
    last: usize,
}

impl NftSink for Grouper {
    fn object(&mut self, family: u8, table: &str, name: &str, _base: bool) {
        let same = |t: &(u8, String, Vec<String>)| t.0 == family && t.1 == table;
        let i = match self.tables.get(self.last) {
            Some(t) if same(t) => self.last,
            _ => match self.tables.iter().position(same) {
                Some(i) => i,
                None => {
                    self.tables.push((family, table.to_string(), Vec::new()));
                    self.tables.len() - 1
                }
            },
        };
        self.last = i;
        if !name.is_empty() {
            self.tables[i].2.push(name.to_string());
        }
    }

    fn clear(&mut self) {
        *self = Grouper::default();
    }
}

impl Grouper {
    /// Tables ordered by family name, then table name; chains sorted.
    pub fn finish(self) -> NftablesState {
        let mut tables: Vec<NftTable> = self
            .tables
            .into_iter()
            .map(|(family, name, mut chains)| {
                chains.sort_unstable();
                chains.shrink_to_fit();
                NftTable { family: family_name(family), name, chains }
            })
            .collect();
        tables.sort_by(|a, b| (&a.family, &a.name).cmp(&(&b.family, &b.name)));
        NftablesState { tables }
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

    fn group(objects: &[(u8, &str, &str)]) -> NftablesState {
        let mut g = Grouper::default();
        for (family, table, name) in objects {
            g.object(*family, table, name, false);
        }
        g.finish()
    }

    #[test]
    fn groups_chains_and_splits_iptables_nft_from_native_tables() {
        let state = group(&[
            (2, "kube-proxy", ""),
            (2, "nat", ""),
            (2, "nat", "KUBE-SERVICES"),
            (10, "nat", "KUBE-SERVICES"),
            (2, "kube-proxy", "services"),
            (1, "filter", "input"),
        ]);
        assert_eq!(state.table("ip", "kube-proxy").map(|t| t.chains.clone()), Some(vec!["services".to_string()]));
        assert!(state.iptables_nft("ip").has_chain("nat", "KUBE-SERVICES"));
        assert!(state.iptables_nft("ip6").has_chain("nat", "KUBE-SERVICES"));
        // `inet filter` is a native table (Debian's default nftables.conf), not iptables-nft.
        assert!(!state.iptables_nft("ip").tables.contains_key("filter"));
    }

    #[test]
    fn a_packed_state_unpacks_to_the_same_state() {
        let state = group(&[
            (2, "nat", ""),
            (2, "nat", "KUBE-SVC-NPX46M4PTMTKRN6Y"),
            (2, "nat", "KUBE-SERVICES"),
            (2, "empty", ""),
            (10, "kube-proxy", "services"),
            (10, "kube-proxy", "é-not-ascii"),
            (10, "kube-proxy", ""),
        ]);
        let again = Packed::pack(&state).unpack();
        assert_eq!(serde_json::to_string(&again).unwrap(), serde_json::to_string(&state).unwrap());
        assert_eq!(again.table("ip", "empty").map(|t| t.chains.len()), Some(0));
    }

    #[test]
    fn tables_sort_by_family_name_and_a_restarted_dump_starts_empty() {
        let mut g = Grouper::default();
        g.object(2, "stale", "X", false);
        g.clear();
        for (f, t, n) in
            [(10, "nat", ""), (2, "nat", "B"), (1, "filter", ""), (2, "nat", "A"), (2, "filter", "F"), (2, "nat", "C")]
        {
            g.object(f, t, n, false);
        }
        let s = g.finish();
        let names: Vec<_> = s.tables.iter().map(|t| format!("{} {}", t.family, t.name)).collect();
        assert_eq!(names, ["inet filter", "ip filter", "ip nat", "ip6 nat"]);
        assert_eq!(s.table("ip", "nat").unwrap().chains, ["A", "B", "C"]);
    }
}
