//! iptables-legacy: `iptables-legacy-save` / `ip6tables-legacy-save`, run only for tables the kernel already has.
//!
//! The nft backend is read by the nftables source over netlink. Legacy has no netlink API, so this runs the save
//! binaries, which take no lock and create nothing when given no `-t` (they dump the tables listed in
//! `/proc/net/ip_tables_names`). When that file is missing or empty the family has no legacy rules and nothing runs.

pub mod parse;

use crate::config::Config;
use crate::model::iptables::{IptablesState, Ruleset};
use crate::sys::exec::{self, ExecError};
pub use parse::{parse_save, ParseError};

/// Why the legacy backend could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("reading {path}: {source}")]
    TableNames { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("parsing the output of {program}: {source}")]
    Parse { program: std::path::PathBuf, source: ParseError },
}

pub fn fetch(config: &Config) -> Result<IptablesState, IptablesError> {
    let net = config.host_path(&config.proc_dir).join("net");
    let one = |names: &str, program: &std::path::Path| -> Result<Ruleset, IptablesError> {
        let path = net.join(names);
        let tables = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // No file: the legacy module for this family is not loaded, so there are no legacy rules.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ruleset::default()),
            Err(source) => return Err(IptablesError::TableNames { path, source }),
        };
        if tables.trim().is_empty() {
            return Ok(Ruleset::default());
        }
        let out = exec::run(program, &[] as &[&str], config.command_timeout())?;
        parse_save(&String::from_utf8_lossy(&out), "filter")
            .map_err(|source| IptablesError::Parse { program: program.into(), source })
    };
    Ok(IptablesState {
        ipv4: one("ip_tables_names", &config.binaries.iptables_legacy_save)?,
        ipv6: one("ip6_tables_names", &config.binaries.ip6tables_legacy_save)?,
    })
}
