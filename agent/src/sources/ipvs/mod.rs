//! IPVS virtual servers from `/proc/net/ip_vs` (under the host root; configurable for tests and containers).

use crate::config::Config;
use crate::model::ipvs::IpvsState;

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

/// Counts virtual server lines (`TCP  0A600001:01BB rr`); real servers are indented `->` lines.
pub fn parse(text: &str) -> IpvsState {
    let virtual_servers =
        text.lines().filter(|l| ["TCP ", "UDP ", "SCTP ", "FWM "].iter().any(|p| l.starts_with(p))).count();
    IpvsState { loaded: true, virtual_servers: u32::try_from(virtual_servers).unwrap_or(u32::MAX) }
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
        assert_eq!(parse(text), IpvsState { loaded: true, virtual_servers: 2 });
        assert_eq!(parse("IP Virtual Server version 1.2.1 (size=4096)\n").virtual_servers, 0);
    }
}
