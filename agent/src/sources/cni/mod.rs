//! CNI configuration (`/etc/cni/net.d` under the host root): which files exist, and who owns the one the runtime
//! uses (the first in name order, as containerd and CRI-O pick it).

use std::path::PathBuf;

use crate::config::Config;
use crate::model::cni::{CniConfig, CniState};

#[derive(Debug, thiserror::Error)]
#[error("reading {path}")]
pub struct CniError {
    path: PathBuf,
    source: std::io::Error,
}

/// Why one configuration file was not used (kept in the state as text, per file).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading it failed: the OS error says why.
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error("not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("no plugin type (neither `plugins[].type` nor `type`)")]
    NoType,
}

pub fn fetch(config: &Config) -> Result<CniState, CniError> {
    let dir = config.host_path(&config.cni_dir);
    let mut state = CniState { dir: dir.clone(), ..CniState::default() };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(state),
        Err(source) => return Err(CniError { path: dir, source }),
    };
    state.present = true;
    let mut files: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| [".conf", ".conflist", ".json"].iter().any(|x| n.ends_with(x)))
        .collect();
    files.sort();
    for f in &files {
        let parsed = std::fs::read(dir.join(f)).map_err(ConfigError::Read).and_then(|b| parse(f, &b));
        match parsed {
            Ok(c) if state.active.is_none() => state.active = Some(c),
            Ok(_) => {}
            Err(e) => state.errors.push((f.clone(), crate::model::error_chain(&e))),
        }
    }
    state.files = files;
    Ok(state)
}

/// Parses one config (`.conf` with a `type`, or `.conflist` with `plugins`) and names its owner.
pub fn parse(file: &str, bytes: &[u8]) -> Result<CniConfig, ConfigError> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(ConfigError::NotJson)?;
    let name = v["name"].as_str().unwrap_or("").to_string();
    let types: Vec<String> = match v["plugins"].as_array() {
        Some(plugins) => plugins.iter().filter_map(|p| p["type"].as_str().map(str::to_string)).collect(),
        None => v["type"].as_str().map(|t| vec![t.to_string()]).unwrap_or_default(),
    };
    if types.is_empty() {
        return Err(ConfigError::NoType);
    }
    Ok(CniConfig { file: file.to_string(), owner: owner(&name, &types), name, types })
}

fn owner(name: &str, types: &[String]) -> String {
    let has = |t: &str| types.iter().any(|x| x == t);
    let known = [
        ("cilium-cni", "cilium"),
        ("calico", "calico"),
        ("flannel", "flannel"),
        ("weave-net", "weave"),
        ("aws-cni", "aws-vpc-cni"),
        ("antrea", "antrea"),
        ("azure-vnet", "azure-cni"),
        ("ovn-k8s-cni-overlay", "ovn-kubernetes"),
    ];
    if has("calico") && has("flannel") {
        return "canal".into();
    }
    for (t, o) in known {
        if has(t) {
            return o.into();
        }
    }
    match name {
        "kindnet" => "kindnet".into(),
        "kubernetes" if has("bridge") => "kube-router".into(),
        "" => types.first().cloned().unwrap_or_default(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_listing_names_the_directory_and_the_cause_once() {
        let e = CniError { path: "/etc/cni/net.d".into(), source: std::io::Error::from_raw_os_error(libc::EACCES) };
        assert_eq!(crate::model::strict_chain(&e), "reading /etc/cni/net.d: Permission denied (os error 13)");
    }

    #[test]
    fn names_the_owner_of_common_configs() {
        let cilium = br#"{"cniVersion":"0.3.1","name":"cilium","plugins":[{"type":"cilium-cni","enable-debug":false},{"type":"portmap","capabilities":{"portMappings":true}}]}"#;
        assert_eq!(parse("05-cilium.conflist", cilium).unwrap().owner, "cilium");
        let canal =
            br#"{"name":"k8s-pod-network","cniVersion":"0.3.1","plugins":[{"type":"calico"},{"type":"flannel"}]}"#;
        assert_eq!(parse("10-canal.conflist", canal).unwrap().owner, "canal");
        let flannel = br#"{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{"hairpinMode":true}},{"type":"portmap"}]}"#;
        assert_eq!(parse("10-flannel.conflist", flannel).unwrap().owner, "flannel");
        let chain = |e: ConfigError| crate::model::strict_chain(&e);
        assert_eq!(
            chain(parse("x.conf", b"{\"name\":\"x\"}").unwrap_err()),
            "no plugin type (neither `plugins[].type` nor `type`)"
        );
        assert_eq!(
            chain(parse("x.conf", b"{").unwrap_err()),
            "not JSON: EOF while parsing an object at line 1 column 1"
        );
        let gone = std::fs::read("/nonexistent/10-x.conf").map_err(ConfigError::Read).unwrap_err();
        assert_eq!(chain(gone), "No such file or directory (os error 2)");
    }
}
