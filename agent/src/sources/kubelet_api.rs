//! The API server the kubelet talks to: the `server:` of its kubeconfig (`journal.kubelet_kubeconfigs`, under
//! host_root, first with one wins), for the journal rules' `{apiserver}`. A tiny `fetch` plus a pure `parse`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::Config;
use crate::model::journal::ApiServer;

/// A kubeconfig is a few KiB (certificates embedded as base64 make it larger); more is not one.
pub const MAX_KUBECONFIG: u64 = 1 << 20;

/// Why a kubeconfig gave no API server.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("reading {path}")]
    Read { path: String, source: crate::sys::host::FileError },
    #[error("{path}: not a kubeconfig: {why}")]
    Yaml { path: String, why: String },
    #[error("{path}: no cluster with a server")]
    NoServer { path: String },
    #[error("{path}: server {server:?} is not an http(s)://host[:port] URL")]
    BadServer { path: String, server: String },
}

/// What was found: the endpoint (or [`ApiServer::Unknown`]) and the kubeconfigs that exist but could not be
/// used, for the daemon's log and `scan-journal`'s note.
#[derive(Debug, Default)]
pub struct Lookup {
    pub api_server: ApiServer,
    pub errors: Vec<KubeconfigError>,
}

/// `journal.api_server` when set, else the first of `journal.kubelet_kubeconfigs` that exists and names a server.
pub fn fetch(config: &Config) -> Lookup {
    let mut out = Lookup::default();
    let configured = config.journal.api_server.trim();
    if !configured.is_empty() {
        match ApiServer::from_url(configured, "") {
            Some(a) => out.api_server = a,
            None => out
                .errors
                .push(KubeconfigError::BadServer { path: "journal.api_server".into(), server: configured.into() }),
        }
        return out;
    }
    for file in &config.journal.kubelet_kubeconfigs {
        let path = config.host_path(file);
        if !path.exists() {
            continue;
        }
        let shown = file.display().to_string();
        match read(&path, &shown) {
            Ok(a) => {
                out.api_server = a;
                return out;
            }
            Err(e) => out.errors.push(e),
        }
    }
    out
}

fn read(path: &Path, shown: &str) -> Result<ApiServer, KubeconfigError> {
    let text = crate::sys::host::read_regular(path, MAX_KUBECONFIG)
        .map_err(|source| KubeconfigError::Read { path: shown.into(), source })?;
    parse(&text, shown)
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct Kubeconfig {
    clusters: Vec<Named<Cluster>>,
    contexts: Vec<Named<Context>>,
    current_context: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Named<T: Default> {
    name: String,
    /// `cluster:` of a cluster entry, `context:` of a context entry.
    #[serde(rename = "cluster", alias = "context")]
    inner: T,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Cluster {
    server: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Context {
    cluster: String,
}

/// The server of the current context's cluster (as the kubelet picks it), else of the only cluster; `path` names
/// the file in errors.
pub fn parse(text: &str, path: &str) -> Result<ApiServer, KubeconfigError> {
    let k: Kubeconfig = serde_saphyr::from_str(text).map_err(|e| KubeconfigError::Yaml {
        path: path.into(),
        why: e.to_string().lines().next().unwrap_or("").into(),
    })?;
    let clusters: BTreeMap<&str, &str> = k
        .clusters
        .iter()
        .filter(|c| !c.inner.server.is_empty())
        .map(|c| (c.name.as_str(), c.inner.server.as_str()))
        .collect();
    let current = k.contexts.iter().find(|c| c.name == k.current_context).map(|c| c.inner.cluster.as_str());
    let server = match current.and_then(|c| clusters.get(c)) {
        Some(s) => *s,
        None if clusters.len() == 1 => clusters.values().next().copied().unwrap_or_default(),
        None => return Err(KubeconfigError::NoServer { path: path.into() }),
    };
    ApiServer::from_url(server, path)
        .ok_or_else(|| KubeconfigError::BadServer { path: path.into(), server: server.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBEADM: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: LS0t\n    server: https://10.0.0.1:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: system:node:n1\n  name: system:node:n1@kubernetes\ncurrent-context: system:node:n1@kubernetes\nkind: Config\nusers:\n- name: system:node:n1\n  user:\n    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n";

    fn known(a: &ApiServer) -> (String, u16, bool) {
        match a {
            ApiServer::Known { host, port, default_port, .. } => (host.clone(), *port, *default_port),
            ApiServer::Unknown => panic!("unknown"),
        }
    }

    #[test]
    fn the_current_contexts_server_is_the_endpoint() {
        assert_eq!(known(&parse(KUBEADM, "k").unwrap()), ("10.0.0.1".into(), 6443, false));
        let two = "clusters:\n- name: a\n  cluster: {server: 'https://a.example:443'}\n- name: b\n  cluster:\n    server: https://lb.example\ncontexts:\n- name: c\n  context: {cluster: b}\ncurrent-context: c\n";
        assert_eq!(known(&parse(two, "k").unwrap()), ("lb.example".into(), 443, true));
        let v6 = "clusters:\n- name: a\n  cluster:\n    server: https://[FD00::1]:16443\n";
        assert_eq!(known(&parse(v6, "k").unwrap()), ("[fd00::1]".into(), 16443, false));
    }

    #[test]
    fn kubeconfigs_without_a_usable_server_say_why() {
        assert!(matches!(parse("clusters: []\n", "k"), Err(KubeconfigError::NoServer { .. })));
        assert!(matches!(parse("clusters: [", "k"), Err(KubeconfigError::Yaml { .. })));
        let bad = "clusters:\n- name: a\n  cluster:\n    server: unix:///run/x.sock\n";
        let e = parse(bad, "/etc/kubernetes/kubelet.conf").unwrap_err().to_string();
        assert!(e.contains("/etc/kubernetes/kubelet.conf") && e.contains("unix:///run/x.sock"), "{e}");
        assert!(ApiServer::from_url("https://h:0", "").is_none() && ApiServer::from_url("https://h:x", "").is_none());
        assert!(
            ApiServer::from_url("https://u@h:1", "").is_none() && ApiServer::from_url("https://h^:1", "").is_none()
        );
    }

    #[test]
    fn the_first_kubeconfig_under_host_root_with_a_server_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config { host_root: dir.path().into(), ..Config::default() };
        assert_eq!(fetch(&config).api_server, ApiServer::Unknown);
        let k3s = dir.path().join("var/lib/rancher/k3s/agent");
        std::fs::create_dir_all(&k3s).unwrap();
        std::fs::write(k3s.join("kubelet.kubeconfig"), KUBEADM.replace("10.0.0.1:6443", "127.0.0.1:6444")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc/kubernetes")).unwrap();
        std::fs::write(dir.path().join("etc/kubernetes/kubelet.conf"), "clusters: [").unwrap();
        let l = fetch(&config);
        assert_eq!(known(&l.api_server), ("127.0.0.1".into(), 6444, false));
        assert!(l.errors[0].to_string().contains("/etc/kubernetes/kubelet.conf"), "{:?}", l.errors);
        // Over the bound: named, and the next one is used.
        std::fs::write(dir.path().join("etc/kubernetes/kubelet.conf"), vec![b'#'; MAX_KUBECONFIG as usize + 1])
            .unwrap();
        let l = fetch(&config);
        assert_eq!(known(&l.api_server), ("127.0.0.1".into(), 6444, false));
        let e = crate::model::strict_chain(&l.errors[0]);
        assert_eq!(e, "reading /etc/kubernetes/kubelet.conf: 1048577 bytes is more than the 1048576 bytes allowed");
        config.journal.api_server = "https://api.example:6553".into();
        assert_eq!(known(&fetch(&config).api_server), ("api.example".into(), 6553, false));
    }
}
