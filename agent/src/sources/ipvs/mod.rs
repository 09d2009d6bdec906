//! IPVS virtual servers from `/proc/net/ip_vs` (under the host root; configurable for tests and containers).

use crate::config::Config;
use crate::model::ipvs::{IpvsState, MAX_VIPS};

#[derive(Debug, thiserror::Error)]
#[error("reading {path}: {source}")]
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
/// their addresses; real servers are indented `->` lines.
pub fn parse(text: &str) -> IpvsState {
    let mut virtual_servers = 0usize;
    let mut vips = Vec::new();
    for line in text.lines() {
        if !["TCP ", "UDP ", "SCTP ", "FWM "].iter().any(|p| line.starts_with(p)) {
            continue;
        }
        virtual_servers += 1;
        if vips.len() < MAX_VIPS {
            if let Some(vip) = line.split_whitespace().nth(1).and_then(vip) {
                vips.push(vip);
            }
        }
    }
    IpvsState { loaded: true, virtual_servers: u32::try_from(virtual_servers).unwrap_or(u32::MAX), vips }
}

/// The address of `0A600001:01BB` (IPv4, hex in network order) or `[FD00:...:0001]:01BB` (IPv6).
fn vip(field: &str) -> Option<String> {
    let (addr, _port) = field.rsplit_once(':')?;
    if let Some(v6) = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().ok().map(|a| a.to_string());
    }
    let n = u32::from_str_radix(addr, 16).ok().filter(|_| addr.len() == 8)?;
    Some(std::net::Ipv4Addr::from(n).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_virtual_servers_not_real_servers() {
        let text = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n\
TCP  0A600001:01BB rr\n  -> AC120002:192B      Masq    1      0          0\n\
UDP  0A60000A:0035 rr\n  -> 0AF40001:0035      Masq    1      0          0\n  -> 0AF40002:0035      Masq    1      0          0\n";
        let want = vec!["10.96.0.1".to_string(), "10.96.0.10".to_string()];
        assert_eq!(parse(text), IpvsState { loaded: true, virtual_servers: 2, vips: want });
        let v6 = "TCP  [FD00:0000:0000:0000:0000:0000:0000:0001]:01BB rr\nFWM  00000001 wlc\nTCP  nonsense rr\n";
        let s = parse(v6);
        assert_eq!((s.virtual_servers, s.vips), (3, vec!["fd00::1".to_string()]), "bad lines count, keep no VIP");
        assert_eq!(parse("IP Virtual Server version 1.2.1 (size=4096)\n").virtual_servers, 0);
    }
}
