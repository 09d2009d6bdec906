//! Pure decoding of Cilium's service map entries (`struct lb4_key`/`lb6_key` -> `struct lb4_service`) and of
//! Calico's NAT frontends (`calico_nat_v4_key` -> `calico_nat_v4_value`).
//!
//! Key: address, dport (2), backend_slot (2), proto, scope, pad. Slot 0 is the service frontend; other slots
//! are backends. Value: backend_id/count (4), count (2), rev_nat_index (2), flags (1), flags2 (1), qcount (2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// Counts (all entries, frontends by type, ClusterIP frontend addresses sorted and each once) over raw (key, value)
/// pairs. Entries too short to decode are counted but not classified.
pub fn count_frontends<'a>(
    family: LbFamily,
    entries: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> (u32, FrontendCounts, Vec<IpAddr>) {
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
                    LbFamily::V4 => {
                        key.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(|a| IpAddr::from(Ipv4Addr::from(a)))
                    }
                    LbFamily::V6 => key
                        .get(..16)
                        .and_then(|b| <[u8; 16]>::try_from(b).ok())
                        .map(|a| IpAddr::from(Ipv6Addr::from(a))),
                };
                addrs.extend(addr);
            }
        }
    }
    (total, c, addrs.into_iter().collect())
}

/// Calico's NAT frontend key after its `u32` prefix length (`felix/bpf/nat/maps.go`, packed): v4 is address (4,
/// network order), port (2, little-endian), protocol, source address (4), pad: 12 bytes; v6 the same with 16-byte
/// addresses: 36 bytes. The value is `id, count, local, affinity_timeo, flags` (5 x u32 little-endian, 20 bytes).
pub const CALICO_V4_KEY_DATA: usize = 12;
pub const CALICO_V6_KEY_DATA: usize = 36;
pub const CALICO_VALUE: usize = 20;

/// Counts Calico NAT frontends: (all, on the NodePort address 255.255.255.255 (v6: all ones), with a backend).
pub fn count_calico_frontends<'a>(
    family: LbFamily,
    entries: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> (u32, u32, u32) {
    let addr_len = match family {
        LbFamily::V4 => 4,
        LbFamily::V6 => 16,
    };
    let (mut all, mut node_ports, mut with_backends) = (0u32, 0u32, 0u32);
    for (key, value) in entries {
        all += 1;
        if key.get(..addr_len).is_some_and(|a| a.iter().all(|b| *b == 0xff)) {
            node_ports += 1;
        }
        let count = value.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_le_bytes).unwrap_or(0);
        // 0xffffffff is Calico's black-hole count (a frontend that drops), not backends.
        if count > 0 && count != u32::MAX {
            with_backends += 1;
        }
    }
    (all, node_ports, with_backends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calico_frontends_are_counted_with_nodeports_and_backends() {
        // Keys as felix's NewNATKeySrc writes them (after the prefix length): 10.96.0.1:443/TCP with 2 backends,
        // the NodePort 255.255.255.255:30080/TCP with 1, 10.96.0.10:53/UDP without endpoints, and a black hole.
        let key = |a: [u8; 4], port: u16, proto: u8| {
            let mut k = [0u8; CALICO_V4_KEY_DATA];
            k[..4].copy_from_slice(&a);
            k[4..6].copy_from_slice(&port.to_le_bytes());
            k[6] = proto;
            k
        };
        let value = |count: u32| {
            let mut v = [0u8; CALICO_VALUE];
            v[4..8].copy_from_slice(&count.to_le_bytes());
            v
        };
        let entries = [
            (key([10, 96, 0, 1], 443, 6), value(2)),
            (key([255, 255, 255, 255], 30080, 6), value(1)),
            (key([10, 96, 0, 10], 53, 17), value(0)),
            (key([10, 96, 0, 11], 80, 6), value(u32::MAX)),
        ];
        let got = count_calico_frontends(LbFamily::V4, entries.iter().map(|(k, v)| (&k[..], &v[..])));
        assert_eq!(got, (4, 1, 2));
        // Truncated entries are counted, never decoded past their end.
        assert_eq!(count_calico_frontends(LbFamily::V6, [(&[0xffu8][..], &[][..])].into_iter()), (1, 0, 0));
    }

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
        assert_eq!(ips, vec![IpAddr::from([10, 96, 0, 1])]);
        assert_eq!(total, 5);
        assert_eq!(c, FrontendCounts { cluster_ip: 1, node_port: 1, external_ip: 1, load_balancer: 1, host_port: 0 });
        assert_eq!((c.total(), c.external()), (4, 3));
    }
}
