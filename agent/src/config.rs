//! The configuration file's data: where routewarden looks on the node. Plain serde data (TOML, unknown keys
//! refused, every field defaulted); `settings` loads and validates it, each subsystem checking its own part.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::SourceId;

/// The default configuration file, read when it exists and no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/routewarden/config.toml";

/// All settings. Paths marked "under host_root" are joined below `host_root`, so the same file works on a
/// node (`host_root = "/"`) and in a container that mounts the host at `/host`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Prefix for every host path below. Default "/".
    pub host_root: PathBuf,
    /// procfs, under host_root. Default "/proc".
    pub proc_dir: PathBuf,
    /// IPVS virtual server table, under host_root. Default "/proc/net/ip_vs".
    pub ipvs_file: PathBuf,
    /// bpffs mount, under host_root. Cilium pins its maps in `<bpffs>/tc/globals`. Default "/sys/fs/bpf".
    pub bpffs: PathBuf,
    /// cgroup v2 roots searched for socket-LB programs, under host_root; missing ones are skipped.
    /// Default ["/run/cilium/cgroupv2", "/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/run/calico/cgroup"].
    pub cgroup_roots: Vec<PathBuf>,
    /// Seconds a single external command may run before it is killed. Default 10.
    pub command_timeout_secs: u64,
    /// Sources not to read at all (reported as disabled): iptables-legacy, nftables, links, ipvs, bpf, processes,
    /// certificates, mounts, cni, kube-proxy-api, cilium-agent, routes. Any other name is refused.
    #[serde(deserialize_with = "collected_sources")]
    pub disabled_sources: BTreeSet<SourceId>,
    pub binaries: Binaries,
    pub daemon: Daemon,
    pub gate: Gate,
    pub journal: Journal,
    pub certificates: Certificates,
    /// The host's mount table, under host_root (PID 1's view). Default "/proc/1/mountinfo".
    pub mountinfo: PathBuf,
    /// Service CIDRs (e.g. ["10.96.0.0/12"]) whose addresses count as ClusterIPs, besides those in Cilium's
    /// service maps. Default: none.
    pub service_cidrs: Vec<String>,
    /// CNI configuration directory, under host_root. Default "/etc/cni/net.d".
    pub cni_dir: PathBuf,
    pub kube_proxy: KubeProxyApi,
    /// The Cilium agent's API socket, under host_root. Default "/var/run/cilium/cilium.sock".
    pub cilium_socket: PathBuf,
    /// Kubelet configuration files, under host_root: any that exists makes this a Kubernetes node even while no
    /// kubelet runs. Default: kubeadm's, the kubelet's own and the systemd units', k3s's, rke2's, EKS's and MicroK8s's.
    pub kubelet_files: Vec<PathBuf>,
    /// The largest legacy iptables table read from the kernel, in bytes (the kernel announces the size first);
    /// a larger one fails the iptables-legacy source instead of being allocated. Default 2147483648 (2 GiB; a
    /// kube-proxy nat table takes about 1 MB per 100 Services).
    pub iptables_legacy_max_bytes: u64,
    /// The node's `iptables` command, under host_root: never run, only its symlink chain (update-alternatives) is
    /// read to tell which backend the node's tools write (named by `iptables.mixed-backends`).
    /// Default "/usr/sbin/iptables".
    pub iptables_command: PathBuf,
    pub metrics: MetricsListener,
    pub kubernetes: Kubernetes,
}

/// Certificates to watch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Certificates {
    /// Files or globs (`*`, `**`) under host_root: PEM certificates or bundles, and kubeconfigs with embedded
    /// certificates. Default: kubelet PKI, kubeconfigs in /etc/kubernetes, the control-plane PKI.
    pub paths: Vec<String>,
    /// Warn this many days before expiry. Default 28.
    pub warning_days: u64,
    /// Critical this many days before expiry. Default 7.
    pub critical_days: u64,
}

impl Default for Certificates {
    fn default() -> Self {
        Certificates {
            paths: vec![
                "/var/lib/kubelet/pki/*.pem".into(),
                "/var/lib/kubelet/pki/*.crt".into(),
                "/var/lib/kubelet/kubeconfig".into(),
                "/etc/kubernetes/*.conf".into(),
                "/etc/kubernetes/pki/**/*.crt".into(),
            ],
            warning_days: 28,
            critical_days: 7,
        }
    }
}

/// Where kube-proxy answers about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubeProxyApi {
    /// `/proxyMode` lives here. Default "127.0.0.1:10249".
    pub metrics_address: String,
    /// `/healthz` lives here. Default "127.0.0.1:10256".
    pub healthz_address: String,
    /// Milliseconds to wait for each. Default 300.
    pub timeout_ms: u64,
}

impl Default for KubeProxyApi {
    fn default() -> Self {
        KubeProxyApi {
            metrics_address: "127.0.0.1:10249".into(),
            healthz_address: "127.0.0.1:10256".into(),
            timeout_ms: 300,
        }
    }
}

/// The journal watcher (`serve`) and `scan-journal`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Journal {
    /// Follow the journal in `serve`. Default true.
    pub enabled: bool,
    /// Default "/usr/bin/journalctl".
    pub journalctl: PathBuf,
    /// Read this journal directory instead of the system journal. Default: none.
    pub directory: Option<PathBuf>,
    /// Units to follow (kernel messages always come along). Default: every unit a rule names.
    pub units: Vec<String>,
    /// On the first start (no saved cursor), read this many seconds back. Default 600.
    pub lookback_secs: u64,
    /// Seconds between checks that the following journalctl still delivers (a one-shot journalctl is asked for
    /// the newest entry; a stuck follower is restarted). Default 60.
    pub hang_check_secs: u64,
    /// Extra rule files (`*.toml` with `[[rules]]`), read in name order. Default "/etc/routewarden/rules.d".
    pub rules_dir: PathBuf,
    /// Rules added to the defaults (a rule with a default's id replaces it), in the form of a rules file's
    /// `[[rules]]` entries (validated by `settings`). Default: none.
    pub rules: Vec<toml::Table>,
    /// The API server the kubelet uses, as a URL ("https://10.0.0.1:6443"): what `{apiserver}` in the rules stands
    /// for. Empty: the `server:` of the first of `kubelet_kubeconfigs` that has one. Default "".
    pub api_server: String,
    /// The kubelet's kubeconfigs, under host_root, tried in order for the API server's address: kubeadm's, the
    /// kubelet's own (EKS and hand-built nodes), k3s's and rke2's agent, MicroK8s's. Without any, the rules fall
    /// back to the ports API servers are known to listen on. Default: those five.
    pub kubelet_kubeconfigs: Vec<PathBuf>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            enabled: true,
            journalctl: "/usr/bin/journalctl".into(),
            directory: None,
            units: Vec::new(),
            lookback_secs: 600,
            hang_check_secs: 60,
            rules_dir: "/etc/routewarden/rules.d".into(),
            rules: Vec::new(),
            api_server: String::new(),
            // kubeadm (kubeadm's constants, KubeletKubeConfigFileName); the kubelet's --kubeconfig on EKS
            // (amazon-eks-ami) and hand-built nodes; k3s and rke2 (k3s pkg/agent/config/config.go:
            // <data-dir>/agent/kubelet.kubeconfig); MicroK8s (microk8s-resources/default-args/kubelet:
            // --kubeconfig=${SNAP_DATA}/credentials/kubelet.config).
            kubelet_kubeconfigs: vec![
                "/etc/kubernetes/kubelet.conf".into(),
                "/var/lib/kubelet/kubeconfig".into(),
                "/var/lib/rancher/k3s/agent/kubelet.kubeconfig".into(),
                "/var/lib/rancher/rke2/agent/kubelet.kubeconfig".into(),
                "/var/snap/microk8s/current/credentials/kubelet.config".into(),
            ],
        }
    }
}

/// The daemon's readiness gate: READY=1 and `/readyz` 200 only once these hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Gate {
    /// Requirements, as for `routewarden wait --for` (e.g. "chain:filter/KUBE-FORWARD", "no-conflict").
    /// Default: none (ready after the first collection).
    pub requirements: Vec<String>,
    /// Seconds between re-checks while the gate is closed, for what has no change events. Default 1.
    pub poll_secs: u64,
}

impl Default for Gate {
    fn default() -> Self {
        Gate { requirements: Vec::new(), poll_secs: 1 }
    }
}

/// `routewarden serve`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Daemon {
    /// HTTP address. Loopback by default: no node component (kubelet 10248/10250, kube-proxy 10249/10256,
    /// Cilium 9962-9964/9879/9890/4240, node_exporter 9100, node-problem-detector 20256) uses 9977.
    /// Default "127.0.0.1:9977".
    pub listen: String,
    /// Serve `listen` on a non-loopback address. It is plain HTTP without authentication (`/status` names the
    /// node's proxies and findings): use `[metrics]` for remote scrapes. Default false.
    pub allow_remote: bool,
    /// Also serve on this unix socket (mode 0660) when set. Default: none.
    pub unix_socket: Option<PathBuf>,
    /// Seconds between full re-collections, for what has no change events (iptables-legacy, BPF, processes).
    /// Default 30.
    pub resync_secs: u64,
    /// Milliseconds to wait after a change event for the burst to end before collecting. Default 300.
    pub debounce_ms: u64,
    /// Where state survives restarts (the journal cursor). `$STATE_DIRECTORY` (set by systemd's
    /// StateDirectory=) wins. Default "/var/lib/routewarden".
    pub state_dir: PathBuf,
    /// At most this many HTTP connections at once; more wait in the accept queue. Default 64.
    pub max_connections: usize,
    /// Seconds a client may take to send its request headers; a connection lives at most six times this.
    /// Default 5.
    pub request_timeout_secs: u64,
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon {
            listen: "127.0.0.1:9977".into(),
            allow_remote: false,
            unix_socket: None,
            resync_secs: 30,
            debounce_ms: 300,
            state_dir: "/var/lib/routewarden".into(),
            max_connections: 64,
            request_timeout_secs: 5,
        }
    }
}

/// `[metrics]`: a second listener for remote Prometheus servers, serving only `/metrics` and `/healthz`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsListener {
    /// Address such as "10.0.0.5:9978" or "0.0.0.0:9978"; without a port, 9978 (never daemon.listen's 9977).
    /// Empty: no network listener. Default "".
    pub listen: String,
    /// A Prometheus exporter-toolkit web configuration file (`tls_server_config`, bcrypt `basic_auth_users`),
    /// e.g. "/etc/routewarden/web.yml". Required for a non-loopback `listen` unless `allow_plaintext`.
    /// Default: none.
    pub web_config: Option<PathBuf>,
    /// Serve a non-loopback `listen` without TLS. Default false.
    pub allow_plaintext: bool,
}

/// `[kubernetes]`: the findings as Node conditions and Events through the API server (off by default).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Kubernetes {
    /// Patch the Node's conditions and post Events. Default false.
    pub enabled: bool,
    /// The kubeconfig to use (CA, client certificate and key or a bearer token), under host_root; when it does not
    /// exist, "/var/lib/kubelet/kubeconfig" is tried. Default "/etc/kubernetes/kubelet.conf".
    pub kubeconfig: PathBuf,
    /// The Node to report on. Empty: the kubelet's node name (its kubeconfig's `system:node:NAME` identity), else
    /// the host name. Default "".
    pub node_name: String,
    /// Seconds between heartbeats of unchanged conditions (`lastHeartbeatTime`). Default 300.
    pub heartbeat_secs: u64,
    /// Keep new Pods off the node while its Service routing is not programmed: the Node carries the taint
    /// `taint_key:NoSchedule` while the node gate (`[gate] requirements`, or `no-conflict` and `service-proxy` when
    /// those are empty) is unmet, and loses it once the gate holds. Needs an identity that may patch Nodes (the
    /// kubelet's may not: NodeRestriction). Default false.
    pub taint: bool,
    /// The taint's key (effect NoSchedule). Default "routewarden.io/service-routing-not-ready".
    pub taint_key: String,
}

/// The taint `[kubernetes] taint` manages unless `taint_key` names another.
pub const DEFAULT_TAINT_KEY: &str = "routewarden.io/service-routing-not-ready";

/// The kubelet's other kubeconfig, tried when `kubernetes.kubeconfig` does not exist.
pub const KUBELET_KUBECONFIG_FALLBACK: &str = "/var/lib/kubelet/kubeconfig";

impl Default for Kubernetes {
    fn default() -> Self {
        Kubernetes {
            enabled: false,
            kubeconfig: "/etc/kubernetes/kubelet.conf".into(),
            node_name: String::new(),
            heartbeat_secs: 300,
            taint: false,
            taint_key: DEFAULT_TAINT_KEY.into(),
        }
    }
}

/// External programs, by absolute path.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Binaries {
    /// Used only by `snapshot --full` (`check` reads legacy tables from the kernel). Default
    /// "/usr/sbin/iptables-legacy-save".
    pub iptables_legacy_save: PathBuf,
    /// Used only by `snapshot --full`. Default "/usr/sbin/ip6tables-legacy-save".
    pub ip6tables_legacy_save: PathBuf,
    /// Used only by `snapshot --full`. Default "/usr/sbin/iptables-nft-save".
    pub iptables_nft_save: PathBuf,
    /// Used only by `snapshot --full`. Default "/usr/sbin/ip6tables-nft-save".
    pub ip6tables_nft_save: PathBuf,
    /// Used only by `snapshot --full`, for the kube-proxy tables by name. Default "/usr/sbin/nft".
    pub nft: PathBuf,
    /// Used only by `wait` run from a systemd unit (`systemctl show -p Before`), to warn when the kubelet is
    /// ordered after a wait for kube-proxy. Default "/usr/bin/systemctl".
    pub systemctl: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host_root: "/".into(),
            proc_dir: "/proc".into(),
            ipvs_file: "/proc/net/ip_vs".into(),
            bpffs: "/sys/fs/bpf".into(),
            cgroup_roots: vec![
                "/run/cilium/cgroupv2".into(),
                "/sys/fs/cgroup".into(),
                "/sys/fs/cgroup/unified".into(),
                "/run/calico/cgroup".into(),
            ],
            command_timeout_secs: 10,
            disabled_sources: BTreeSet::new(),
            binaries: Binaries::default(),
            daemon: Daemon::default(),
            gate: Gate::default(),
            journal: Journal::default(),
            certificates: Certificates::default(),
            mountinfo: "/proc/1/mountinfo".into(),
            service_cidrs: Vec::new(),
            cni_dir: "/etc/cni/net.d".into(),
            kube_proxy: KubeProxyApi::default(),
            cilium_socket: "/var/run/cilium/cilium.sock".into(),
            kubelet_files: vec![
                "/var/lib/kubelet/config.yaml".into(),
                "/var/lib/kubelet/kubeconfig".into(),
                "/etc/kubernetes/kubelet.conf".into(),
                "/etc/kubernetes/bootstrap-kubelet.conf".into(),
                "/etc/systemd/system/kubelet.service".into(),
                "/lib/systemd/system/kubelet.service".into(),
                "/usr/lib/systemd/system/kubelet.service".into(),
                "/etc/systemd/system/kubelet.service.d".into(),
                "/var/lib/rancher/k3s/agent/kubelet.kubeconfig".into(),
                "/var/lib/rancher/rke2/agent/kubelet.kubeconfig".into(),
                "/etc/kubernetes/kubelet/kubelet-config.json".into(),
                "/etc/kubernetes/kubelet/config.json".into(),
                "/var/snap/microk8s/current/args/kubelet".into(),
            ],
            iptables_legacy_max_bytes: 2 << 30,
            iptables_command: "/usr/sbin/iptables".into(),
            metrics: MetricsListener::default(),
            kubernetes: Kubernetes::default(),
        }
    }
}

impl Default for Binaries {
    fn default() -> Self {
        Binaries {
            iptables_legacy_save: "/usr/sbin/iptables-legacy-save".into(),
            ip6tables_legacy_save: "/usr/sbin/ip6tables-legacy-save".into(),
            iptables_nft_save: "/usr/sbin/iptables-nft-save".into(),
            ip6tables_nft_save: "/usr/sbin/ip6tables-nft-save".into(),
            nft: "/usr/sbin/nft".into(),
            systemctl: "/usr/bin/systemctl".into(),
        }
    }
}

/// A name in `disabled_sources` that is no source one collection reads (the journal and the Kubernetes exporter
/// have switches of their own).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown source {name:?} (known: {})", known_sources())]
pub struct UnknownSource {
    pub name: String,
}

/// The names `disabled_sources` accepts, in the order a collection reads them.
pub fn known_sources() -> String {
    SourceId::COLLECTED.map(SourceId::as_str).join(", ")
}

/// The collected source named `name`.
pub fn collected_source(name: &str) -> Result<SourceId, UnknownSource> {
    SourceId::COLLECTED
        .into_iter()
        .find(|id| id.as_str() == name)
        .ok_or_else(|| UnknownSource { name: name.to_string() })
}

/// `disabled_sources`: names of collected sources only.
fn collected_sources<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<SourceId>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names.iter().map(|n| collected_source(n).map_err(serde::de::Error::custom)).collect()
}

/// `p` below `root`: the one join of a node path under `host_root` (an absolute `p` loses its leading `/`).
pub fn under_root(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

impl Config {
    /// `p` below the host root.
    pub fn host_path(&self, p: &Path) -> PathBuf {
        under_root(&self.host_root, p)
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs)
    }

    /// Whether `source` is to be read (not in `disabled_sources`).
    pub fn enabled(&self, source: SourceId) -> bool {
        !self.disabled_sources.contains(&source)
    }

    /// The effective configuration (this file over the defaults) as TOML, for `routewarden config show`; `origin`
    /// names the file. No key holds a secret today (kubeconfig and web_config name files whose contents are not
    /// read here), but any key named like one ([`is_secret_key`]) is shown as `<redacted>`, so a secret key added
    /// later cannot leak through `config show`.
    pub fn effective_toml(&self, origin: Option<&Path>) -> String {
        let from =
            origin.map_or("built-in defaults only".to_string(), |p| format!("{} over the defaults", p.display()));
        let text = redact(&toml::to_string_pretty(self).unwrap_or_default());
        format!("# routewarden effective configuration: {from}\n\n{text}")
    }

    /// The defaults as TOML with a one-line comment above every key, for `routewarden config defaults` (the
    /// shipped `/etc/routewarden/config.toml`). Keys whose default is "none" are shown commented out with an example.
    pub fn defaults_toml() -> String {
        let body = toml::to_string_pretty(&Config::default()).unwrap_or_default();
        let mut out = format!(
            "# routewarden configuration ({DEFAULT_PATH}). Every key is optional; these are the defaults.\n\
             # Paths below host_root are joined under it (set host_root = \"/host\" in a container).\n\n"
        );
        let mut section = String::new();
        for line in body.lines() {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
                out.push_str(line);
                out.push('\n');
                for (key, example) in
                    UNSET_EXAMPLES.iter().filter(|(k, _)| k.split_once('.').map(|s| s.0) == Some(name))
                {
                    let short = key.split_once('.').map_or(*key, |s| s.1);
                    out.push_str(&format!("# {}\n# {short} = {example}\n", key_doc(key).unwrap_or("")));
                }
                continue;
            }
            if !line.starts_with([' ', ']', '#']) {
                if let Some((key, _)) = line.split_once(" = ") {
                    let full = if section.is_empty() { key.to_string() } else { format!("{section}.{key}") };
                    if let Some(doc) = key_doc(&full) {
                        out.push_str(&format!("# {doc}\n"));
                    }
                }
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// Keys whose default is "none" (not serialised), with the example `config defaults` shows commented out.
const UNSET_EXAMPLES: &[(&str, &str)] = &[
    ("daemon.unix_socket", "\"/run/routewarden/routewarden.sock\""),
    ("journal.directory", "\"/var/log/journal/remote\""),
    ("metrics.web_config", "\"/etc/routewarden/web.yml\""),
];

/// One line per key (`section.key`), the comment `config defaults` writes above it; the field docs above say more.
const KEY_DOCS: &[(&str, &str)] = &[
    ("host_root", "Prefix for every host path below (\"/host\" in a container that mounts the host there)."),
    ("proc_dir", "procfs, under host_root."),
    ("ipvs_file", "IPVS virtual server table, under host_root."),
    ("bpffs", "bpffs mount, under host_root (Cilium pins its maps in <bpffs>/tc/globals)."),
    ("cgroup_roots", "cgroup v2 roots searched for socket-LB programs, under host_root; missing ones are skipped."),
    ("command_timeout_secs", "Seconds an external command or a netlink dump may run before it is stopped."),
    ("disabled_sources", "Sources not to read at all (reported as disabled), e.g. [\"ipvs\", \"cilium-agent\"]."),
    ("mountinfo", "The host's mount table, under host_root (PID 1's view)."),
    ("service_cidrs", "Service CIDRs (e.g. [\"10.96.0.0/12\"]) whose addresses count as ClusterIPs."),
    ("cni_dir", "CNI configuration directory, under host_root."),
    ("cilium_socket", "The Cilium agent's API socket, under host_root."),
    ("kubelet_files", "Kubelet configuration files, under host_root: any that exists makes this a Kubernetes node."),
    (
        "iptables_legacy_max_bytes",
        "The largest legacy iptables table read from the kernel, in bytes (~1 MB per 100 Services).",
    ),
    ("iptables_command", "The node's iptables command, under host_root: never run, its symlinks tell its backend."),
    ("binaries.iptables_legacy_save", "Used only by `snapshot --full`."),
    ("binaries.ip6tables_legacy_save", "Used only by `snapshot --full`."),
    ("binaries.iptables_nft_save", "Used only by `snapshot --full`."),
    ("binaries.ip6tables_nft_save", "Used only by `snapshot --full`."),
    ("binaries.nft", "Used only by `snapshot --full`, for the kube-proxy tables by name."),
    ("binaries.systemctl", "Used only by `wait` under systemd, to warn when the kubelet is ordered after it."),
    ("daemon.listen", "HTTP address of `serve` (plain HTTP: loopback unless allow_remote)."),
    ("daemon.allow_remote", "Serve listen on a non-loopback address (no TLS, no authentication: prefer [metrics])."),
    ("daemon.unix_socket", "Also serve on this unix socket (mode 0660); default: none."),
    ("daemon.resync_secs", "Seconds between full re-collections, for what has no change events."),
    ("daemon.debounce_ms", "Milliseconds to wait after a change event for the burst to end before collecting."),
    ("daemon.state_dir", "Where state survives restarts (the journal cursor); $STATE_DIRECTORY wins."),
    ("daemon.max_connections", "At most this many HTTP connections at once; more wait in the accept queue."),
    ("daemon.request_timeout_secs", "Seconds a client may take to send its request headers."),
    (
        "gate.requirements",
        "Readiness requirements, as for `routewarden wait --for` (none: ready after the first collection).",
    ),
    ("gate.poll_secs", "Seconds between re-checks while the gate is closed, for what has no change events."),
    ("journal.enabled", "Follow the kubelet journal in `serve`."),
    ("journal.journalctl", "The journalctl binary."),
    ("journal.directory", "Read this journal directory instead of the system journal; default: none."),
    ("journal.units", "Units to follow (kernel messages always come along); empty: every unit a rule names."),
    ("journal.lookback_secs", "On the first start (no saved cursor), read this many seconds back."),
    ("journal.hang_check_secs", "Seconds between checks that the following journalctl still delivers."),
    ("journal.rules_dir", "Extra rule files (*.toml with [[rules]]), read in name order."),
    ("journal.rules", "Rules added to the defaults, as a rules file's [[rules]] entries."),
    ("journal.api_server", "The kubelet's API server URL for the rules' {apiserver}; empty: from its kubeconfig."),
    ("journal.kubelet_kubeconfigs", "The kubelet's kubeconfigs (under host_root), tried in order for its API server."),
    (
        "certificates.paths",
        "PEM certificates, bundles or kubeconfigs to watch: files or globs (*, **) under host_root.",
    ),
    ("certificates.warning_days", "Warn this many days before expiry."),
    ("certificates.critical_days", "Critical this many days before expiry."),
    ("kube_proxy.metrics_address", "Where kube-proxy answers /proxyMode."),
    ("kube_proxy.healthz_address", "Where kube-proxy answers /healthz."),
    ("kube_proxy.timeout_ms", "Milliseconds to wait for each."),
    (
        "metrics.listen",
        "Address of the remote-scrape listener (/metrics, /healthz only); empty: none; port 9978 if omitted.",
    ),
    ("metrics.web_config", "TLS and basic auth for listen (exporter-toolkit web config); default: none."),
    ("metrics.allow_plaintext", "Serve a non-loopback listen without TLS."),
    ("kubernetes.enabled", "Patch the Node's conditions and post Events through the API server."),
    ("kubernetes.kubeconfig", "Kubeconfig under host_root (/var/lib/kubelet/kubeconfig is tried when it is missing)."),
    ("kubernetes.node_name", "The Node to report on; empty: the kubelet's node name, else the host name."),
    ("kubernetes.heartbeat_secs", "Seconds between heartbeats of unchanged conditions."),
    ("kubernetes.taint", "Taint the Node NoSchedule while its Service routing is not programmed (the node gate)."),
    ("kubernetes.taint_key", "The taint's key (effect NoSchedule)."),
];

fn key_doc(key: &str) -> Option<&'static str> {
    KEY_DOCS.iter().find(|(k, _)| *k == key).map(|(_, d)| *d)
}

/// Whether a key's value would be a secret: its name says password, token or secret (a `*_file`/`*File` key names
/// a file and is not one).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let names_file = k.ends_with("file") || k.ends_with("_path") || k.ends_with("dir");
    !names_file && ["password", "passwd", "token", "secret", "private_key"].iter().any(|w| k.contains(w))
}

/// `toml::to_string_pretty` output with the value of every secret-named key ([`is_secret_key`]), in any table,
/// replaced by `"<redacted>"` (a multi-line array value with all its lines). Works on the text so the keys keep
/// their order.
pub fn redact(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if skipping {
            skipping = line != "]";
            continue;
        }
        match line.split_once(" = ") {
            Some((key, value)) if !line.starts_with([' ', '#', '[']) && is_secret_key(key.trim_matches('"')) => {
                out.push_str(&format!("{key} = \"<redacted>\"\n"));
                skipping = value == "[";
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_their_own_toml() {
        let parsed: Config = toml::from_str(&Config::defaults_toml()).unwrap();
        assert_eq!(parsed, Config::default());
    }

    /// Every key the defaults hold (and every key whose default is none) has its one-line comment, and no comment
    /// is left for a key that is gone.
    #[test]
    fn every_key_of_the_defaults_has_a_comment() {
        let value = toml::Value::try_from(Config::default()).unwrap();
        let mut keys: Vec<String> = UNSET_EXAMPLES.iter().map(|(k, _)| k.to_string()).collect();
        for (k, v) in value.as_table().unwrap() {
            match v.as_table() {
                Some(t) => keys.extend(t.keys().map(|sub| format!("{k}.{sub}"))),
                None => keys.push(k.clone()),
            }
        }
        keys.sort();
        let mut documented: Vec<String> = KEY_DOCS.iter().map(|(k, _)| k.to_string()).collect();
        documented.sort();
        assert_eq!(keys, documented, "KEY_DOCS must list exactly the configuration's keys");

        let text = Config::defaults_toml();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let is_key = !line.starts_with([' ', ']', '#', '[']) && line.contains(" = ");
            let is_unset = line.starts_with("# ")
                && UNSET_EXAMPLES
                    .iter()
                    .any(|(k, _)| line.starts_with(&format!("# {} = ", k.split_once('.').unwrap().1)));
            if is_key || is_unset {
                assert!(i > 0 && lines[i - 1].starts_with("# ") && lines[i - 1].len() > 3, "no comment above {line:?}");
            }
        }
    }

    /// No key holds a secret today; one added later (a token, a password) is redacted by `config show` by its name.
    #[test]
    fn config_show_redacts_a_secret_key_added_later() {
        let text = redact(
            "token = \"abc\"\nkeys = [\n    \"x\",\n]\n\n[kubernetes]\npassword = \"hunter2\"\nbearer_token = [\n    \"t1\",\n]\n\
             token_file = \"/run/t\"\nkubeconfig = \"/etc/kubernetes/kubelet.conf\"\n",
        );
        for secret in ["abc", "hunter2", "t1"] {
            assert!(!text.contains(secret), "{secret} shown: {text}");
        }
        assert_eq!(text.matches("<redacted>").count(), 3, "{text}");
        assert!(
            text.contains("/run/t") && text.contains("/etc/kubernetes/kubelet.conf"),
            "paths are no secrets: {text}"
        );
        assert!(text.contains("keys = [\n    \"x\",\n]"), "{text}");
        // Today's configuration has nothing to redact.
        assert!(!Config::default().effective_toml(None).contains("<redacted>"));
    }

    #[test]
    fn disabled_sources_are_collected_sources_by_name() {
        let c: Config = toml::from_str("disabled_sources = [\"ipvs\", \"cilium-agent\", \"ipvs\"]").unwrap();
        assert_eq!(c.disabled_sources, BTreeSet::from([SourceId::Ipvs, SourceId::CiliumAgent]));
        assert!(!c.enabled(SourceId::Ipvs) && c.enabled(SourceId::Bpf));
        assert!(toml::to_string(&c).unwrap().contains("disabled_sources = [\"cilium-agent\", \"ipvs\"]"));
        for bad in ["ebpf", "journal", "kubernetes", "IPVS"] {
            let err = toml::from_str::<Config>(&format!("disabled_sources = [\"{bad}\"]")).unwrap_err().to_string();
            assert!(
                err.contains(&format!("unknown source \"{bad}\"")) && err.contains("ipvs, bpf, processes"),
                "{err}"
            );
        }
    }

    #[test]
    fn host_paths_join_below_the_root() {
        let s = Config { host_root: "/host".into(), ..Config::default() };
        assert_eq!(s.host_path(Path::new("/proc/net/ip_vs")), PathBuf::from("/host/proc/net/ip_vs"));
    }
}
