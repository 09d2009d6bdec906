//! iptables-legacy: every table the kernel lists, read from the kernel with getsockopt and decoded in memory.
//!
//! The nft backend is read by the nftables source over netlink. Legacy has no netlink API; its tables are read the
//! way libiptc (`iptables-legacy-save`) reads them, `IPT_SO_GET_INFO` then `IPT_SO_GET_ENTRIES` per table
//! (`sys::xtables`), for the tables listed in `/proc/net/ip_tables_names` (`ip6_tables_names` for IPv6), so
//! nothing is loaded or created. When that file is missing or empty the family has no legacy rules and nothing is
//! asked. `entries.rs` decodes each blob into chains and rule counts without building any text; `parse.rs` parses
//! save text (fixtures, `snapshot --full`'s dumps, tests). One table is in memory at a time.

pub mod entries;
pub mod parse;

use crate::config::Config;
use crate::model::iptables::{Chain, CommandBackend, IptablesCommand, IptablesState, Ruleset};
use crate::sys::xtables::{self, Family, XtablesError};
pub use parse::{parse_save, ParseError};

/// Why the legacy backend could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("reading {path}")]
    TableNames { path: std::path::PathBuf, source: std::io::Error },
    /// The kernel reader's error says it all; `failure::classify` looks inside for its type.
    #[error(transparent)]
    Read(#[from] XtablesError),
    #[error("decoding the {family} table {table:?} from the kernel")]
    Decode { family: Family, table: String, source: entries::DecodeError },
}

pub fn fetch(config: &Config) -> Result<IptablesState, IptablesError> {
    let net = config.host_path(&config.proc_dir).join("net");
    let max = usize::try_from(config.iptables_legacy_max_bytes).unwrap_or(usize::MAX);
    Ok(IptablesState {
        ipv4: read_family(&net.join("ip_tables_names"), Family::Ipv4, max)?,
        ipv6: read_family(&net.join("ip6_tables_names"), Family::Ipv6, max)?,
        command: command(config),
    })
}

/// The node's `iptables` command and the backend its symlink chain names (read as links, never run).
pub fn command(config: &Config) -> Option<IptablesCommand> {
    let mut cur = config.iptables_command.clone();
    if std::fs::symlink_metadata(config.host_path(&cur)).is_err() {
        return None;
    }
    let mut chain = vec![cur.display().to_string()];
    for _ in 0..8 {
        let Ok(target) = std::fs::read_link(config.host_path(&cur)) else { break };
        cur = match cur.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
        chain.push(cur.display().to_string());
    }
    let backend = CommandBackend::of_names(chain.iter().map(|p| p.rsplit('/').next().unwrap_or(p)))?;
    Some(IptablesCommand { chain, backend })
}

/// Reads every table `names` lists for `family`, in the calling thread's network namespace; `max` bounds each
/// table's bytes.
pub fn read_family(names: &std::path::Path, family: Family, max: usize) -> Result<Ruleset, IptablesError> {
    let tables = match std::fs::read_to_string(names) {
        Ok(t) => t,
        // No file: the legacy module for this family is not loaded, so there are no legacy rules.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ruleset::default()),
        Err(source) => return Err(IptablesError::TableNames { path: names.into(), source }),
    };
    let mut rs = Ruleset::default();
    for table in tables.split_ascii_whitespace() {
        let raw = xtables::read_table(family, table, max)?;
        let decoded = entries::parse_info(&raw.info)
            .and_then(|info| entries::decode(family, &info, raw.entries()))
            .map_err(|source| IptablesError::Decode { family, table: table.to_string(), source })?;
        insert(&mut rs, table, &decoded);
    }
    Ok(rs)
}

/// Adds a decoded table to `rs` the way `parse_save` records save output: a chain without rules has an unknown
/// count (`:CHAIN` lines carry none), so the snapshot is the same whichever reader made it.
pub fn insert(rs: &mut Ruleset, table: &str, decoded: &entries::Table<'_>) {
    let chains = rs.tables.entry(table.to_string()).or_default();
    for c in &decoded.chains {
        chains.insert(c.name.to_string(), Chain { rules: (c.rules > 0).then_some(c.rules) });
    }
}
