//! Pure decoding of Cilium's service map entries (`struct lb4_key`/`lb6_key` -> `struct lb4_service`).
//!
//! Key: address, dport (2), backend_slot (2), proto, scope, pad. Slot 0 is the service frontend; other slots
//! are backends. Value: backend_id/count (4), count (2), rev_nat_index (2), flags (1), flags2 (1), qcount (2).

use crate::model::bpf::FrontendCounts;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbFamily {
    V4,
    V6,
}

pub const SVC_FLAG_EXTERNAL_IP: u8 = 1 << 0;
pub const SVC_FLAG_NODEPORT: u8 = 1 << 1;
pub const SVC_FLAG_HOSTPORT: u8 = 1 << 3;
pub const SVC_FLAG_LOADBALANCER: u8 = 1 << 5;

/// At most this many ClusterIP addresses are kept per map.
pub const MAX_ADDRESSES: usize = 65_536;

/// Counts (all entries, frontends by type, ClusterIP frontend addresses) over raw (key, value) pairs. Entries too
/// short to decode are counted but not classified.
pub fn count_frontends<'a>(
    family: LbFamily,
    entries: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> (u32, FrontendCounts, Vec<String>) {
    let slot_at = match family {
        LbFamily::V4 => 6,
        LbFamily::V6 => 18,
    };
    let mut total = 0u32;
    let mut c = FrontendCounts::default();
    let mut addrs = std::collections::BTreeSet::new();
    for (key, value) in entries {
        total += 1;
        let (Some(slot), Some(&flags)) = (key.get(slot_at..slot_at + 2), value.get(8)) else { continue };
        if slot != [0, 0] {
            continue;
        }
        if flags & SVC_FLAG_NODEPORT != 0 {
            c.node_port += 1;
        } else if flags & SVC_FLAG_LOADBALANCER != 0 {
            c.load_balancer += 1;
        } else if flags & SVC_FLAG_EXTERNAL_IP != 0 {
            c.external_ip += 1;
        } else if flags & SVC_FLAG_HOSTPORT != 0 {
            c.host_port += 1;
        } else {
            c.cluster_ip += 1;
            if addrs.len() < MAX_ADDRESSES {
                let addr = match family {
                    LbFamily::V4 => key
                        .get(..4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(|a| std::net::Ipv4Addr::from(a).to_string()),
                    LbFamily::V6 => key
                        .get(..16)
                        .and_then(|b| <[u8; 16]>::try_from(b).ok())
                        .map(|a| std::net::Ipv6Addr::from(a).to_string()),
                };
                addrs.extend(addr);
            }
        }
    }
    (total, c, addrs.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key4(addr: [u8; 4], port: u16, slot: u16) -> [u8; 12] {
        let mut k = [0u8; 12];
        k[..4].copy_from_slice(&addr);
        k[4..6].copy_from_slice(&port.to_be_bytes());
        k[6..8].copy_from_slice(&slot.to_ne_bytes());
        k[8] = 6;
        k
    }

    fn val(flags: u8) -> [u8; 12] {
        let mut v = [0u8; 12];
        v[8] = flags;
        v
    }

    #[test]
    fn counts_only_slot_zero_frontends_by_type() {
        let entries = [
            (key4([10, 96, 0, 1], 443, 0), val(0)),
            (key4([10, 96, 0, 1], 443, 1), val(0)),
            (key4([0, 0, 0, 0], 30080, 0), val(SVC_FLAG_NODEPORT | SVC_FLAG_EXTERNAL_IP)),
            (key4([192, 0, 2, 7], 80, 0), val(SVC_FLAG_LOADBALANCER | SVC_FLAG_EXTERNAL_IP)),
            (key4([192, 0, 2, 8], 80, 0), val(SVC_FLAG_EXTERNAL_IP)),
        ];
        let (total, c, ips) = count_frontends(LbFamily::V4, entries.iter().map(|(k, v)| (&k[..], &v[..])));
        assert_eq!(ips, vec!["10.96.0.1".to_string()]);
        assert_eq!(total, 5);
        assert_eq!(c, FrontendCounts { cluster_ip: 1, node_port: 1, external_ip: 1, load_balancer: 1, host_port: 0 });
        assert_eq!((c.total(), c.external()), (4, 3));
    }
}
