//! IPVS virtual servers from `/proc/net/ip_vs` (under the host root; configurable for tests and containers).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::Config;
use crate::model::ipvs::{IpvsState, MAX_VIPS};

#[derive(Debug, thiserror::Error)]
#[error("reading {path}")]
pub struct IpvsError {
    path: std::path::PathBuf,
    source: std::io::Error,
}

pub fn fetch(config: &Config) -> Result<IpvsState, IpvsError> {
    let path = config.host_path(&config.ipvs_file);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse(&text)),
        // No file: IPVS is not loaded, so there are no virtual servers.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(IpvsState::default()),
        Err(source) => Err(IpvsError { path, source }),
    }
}

/// Counts virtual server lines (`TCP  0A600001:01BB rr`, IPv6 `TCP  [FD00:0000:...:0001]:01BB rr`) and keeps
/// their addresses, one per virtual server, in numeric order; real servers are indented `->` lines. Above
/// `MAX_VIPS` distinct VIPs the smallest (IPv4 before IPv6) are kept, whatever the file's order, so that the same
/// table gives the same VIPs in every scan.
pub fn parse(text: &str) -> IpvsState {
    let mut virtual_servers = 0usize;
    // VIP -> its virtual servers, at most MAX_VIPS distinct VIPs.
    let mut kept: std::collections::BTreeMap<IpAddr, usize> = std::collections::BTreeMap::new();
    for line in text.lines() {
        if !["TCP ", "UDP ", "SCTP ", "FWM "].iter().any(|p| line.starts_with(p)) {
            continue;
        }
        virtual_servers += 1;
        if let Some(vip) = line.split_whitespace().nth(1).and_then(vip) {
            *kept.entry(vip).or_default() += 1;
            if kept.len() > MAX_VIPS {
                kept.pop_last();
            }
        }
    }
    let vips = kept.into_iter().flat_map(|(vip, n)| std::iter::repeat_n(vip, n)).collect();
    IpvsState { loaded: true, virtual_servers: u32::try_from(virtual_servers).unwrap_or(u32::MAX), vips }
}

/// The address of `0A600001:01BB` (IPv4, hex in network order) or `[FD00:...:0001]:01BB` (IPv6).
fn vip(field: &str) -> Option<IpAddr> {
    let (addr, _port) = field.rsplit_once(':')?;
    if let Some(v6) = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let n = u32::from_str_radix(addr, 16).ok().filter(|_| addr.len() == 8)?;
    Some(IpAddr::V4(Ipv4Addr::from(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_names_the_file_and_the_cause_once() {
        let e = IpvsError { path: "/proc/net/ip_vs".into(), source: std::io::Error::from_raw_os_error(libc::EACCES) };
        assert_eq!(crate::model::strict_chain(&e), "reading /proc/net/ip_vs: Permission denied (os error 13)");
    }

    #[test]
    fn counts_virtual_servers_not_real_servers() {
        let text = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n\
TCP  0A600001:01BB rr\n  -> AC120002:192B      Masq    1      0          0\n\
UDP  0A60000A:0035 rr\n  -> 0AF40001:0035      Masq    1      0          0\n  -> 0AF40002:0035      Masq    1      0          0\n";
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        let want = vec![ip("10.96.0.1"), ip("10.96.0.10")];
        assert_eq!(parse(text), IpvsState { loaded: true, virtual_servers: 2, vips: want });
        let v6 = "TCP  [FD00:0000:0000:0000:0000:0000:0000:0001]:01BB rr\nFWM  00000001 wlc\nTCP  nonsense rr\n";
        let s = parse(v6);
        assert_eq!((s.virtual_servers, s.vips), (3, vec![ip("fd00::1")]), "bad lines count, keep no VIP");
        // Numeric order, IPv4 first (the JSON holds the same strings as ever).
        let mixed =
            "TCP  [FD00:0000:0000:0000:0000:0000:0000:0001]:01BB rr\nTCP  0A60000A:0035 rr\nTCP  0A600002:0035 rr\n";
        assert_eq!(parse(mixed).vips, vec![ip("10.96.0.2"), ip("10.96.0.10"), ip("fd00::1")]);
        assert_eq!(serde_json::to_string(&parse(mixed).vips).unwrap(), r#"["10.96.0.2","10.96.0.10","fd00::1"]"#);
        assert_eq!(parse("IP Virtual Server version 1.2.1 (size=4096)\n").virtual_servers, 0);
    }

    /// The cap counts distinct VIPs, not lines, and keeps the same VIPs whatever the order of the table.
    #[test]
    fn the_vip_cap_counts_distinct_vips_whatever_the_order() {
        // MAX_VIPS + 1 distinct VIPs, the first one with two ports.
        let vs = |i: usize, port: &str| format!("TCP  {:08X}:{port} rr\n", 0x0a00_0000 + i);
        let mut lines: Vec<String> = (0..=MAX_VIPS).map(|i| vs(i, "01BB")).collect();
        lines.push(vs(0, "0050"));
        let forward = parse(&lines.concat());
        lines.reverse();
        let backward = parse(&lines.concat());
        assert_eq!(forward, backward, "the kept VIPs depend on the file's order");
        assert_eq!(forward.virtual_servers as usize, MAX_VIPS + 2);
        // Both virtual servers of 10.0.0.0 are kept, the largest VIP is the one dropped.
        assert_eq!(forward.vips.len(), MAX_VIPS + 1);
        assert_eq!(forward.vips.iter().filter(|v| **v == IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0))).count(), 2);
        assert!(!forward.vips.contains(&IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 + MAX_VIPS as u32))));
    }
}
