//! Processes routewarden watches, by pid and comm, with where each came from (its executable and cgroup), and
//! which kubelet configuration files exist.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessState {
    pub processes: Vec<Process>,
    /// Kubelet configuration files that exist (from the configured `kubelet_files`): a node where the kubelet is
    /// installed but not running is still a Kubernetes node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubelet_files: Vec<String>,
    /// Who listens on kube-proxy's health port (the port of `kube_proxy.healthz_address`, 10256): Calico and
    /// Cilium bind it too. `None` when nobody listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthz_port: Option<PortHolder>,
    /// Processes with a watched name that do not count: not run by root (any local user can name a process
    /// `kube-proxy`), or whose executable or cgroup is not an agent's; kept as evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<IgnoredProcess>,
}

/// A process named like an agent routewarden watches that was not counted, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IgnoredProcess {
    pub pid: u32,
    pub comm: String,
    /// Its real uid, when it could be read.
    pub uid: Option<u32>,
    pub reason: String,
    /// Where it came from, when its owner was root and its origin was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// A TCP listener and the process that holds its socket (`pid`/`comm` unknown when no process's fds show it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortHolder {
    pub port: u16,
    pub pid: Option<u32>,
    pub comm: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
    /// Where it came from (absent in snapshots taken before origins were read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// Where a process came from: its executable and its cgroup, as `/proc/PID/exe` and `/proc/PID/cgroup` say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// `/proc/PID/exe`: the path in the process's own mount namespace (a container's image), with the kernel's
    /// ` (deleted)` when the file was replaced after it started; `None` when it could not be read.
    pub exe: Option<String>,
    /// The cgroup path that decided `kind` (from `/proc/PID/cgroup`); `None` when none could be read.
    pub cgroup: Option<String>,
    pub kind: CgroupKind,
    /// What could not be checked and why; the process then counts on its owner alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchecked: Option<String>,
}

/// What a process's cgroup says about who started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CgroupKind {
    /// A container of a runtime (or a pod of the kubelet's, when the layout does not name the runtime).
    Container { runtime: Runtime },
    /// A unit of a service manager (a systemd service, scope or slice; an OpenRC service; Talos's system cgroups).
    Unit { manager: Manager, unit: String },
    /// The root cgroup: hosts where no service manager places processes.
    Root,
    /// None of these: not a place an agent runs.
    Other,
    /// Not known: unreadable, no usable line, or above routewarden's own cgroup namespace.
    Unknown,
}

/// The container runtimes whose cgroup layouts are known (docs/local-state-and-processes.md cites each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
    Podman,
    /// Under the kubelet's `kubepods` tree, the runtime not named (the cgroupfs driver's `<64 hex>` containers).
    Kubepods,
}

/// The service managers whose cgroup layouts are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Manager {
    Systemd,
    Openrc,
    Talos,
}

impl std::fmt::Display for CgroupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CgroupKind::Container { runtime: Runtime::Kubepods } => f.write_str("a pod's container"),
            CgroupKind::Container { runtime } => write!(f, "a container of {}", runtime.name()),
            CgroupKind::Unit { manager, unit } => write!(f, "{} unit {unit}", manager.name()),
            CgroupKind::Root => f.write_str("the root cgroup"),
            CgroupKind::Other => f.write_str("a cgroup of no container runtime or service manager"),
            CgroupKind::Unknown => f.write_str("an unknown cgroup"),
        }
    }
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "CRI-O",
            Runtime::Docker => "Docker",
            Runtime::Podman => "Podman",
            Runtime::Kubepods => "the kubelet's pods",
        }
    }
}

impl Manager {
    pub fn name(self) -> &'static str {
        match self {
            Manager::Systemd => "systemd",
            Manager::Openrc => "OpenRC",
            Manager::Talos => "Talos",
        }
    }
}

impl ProcessState {
    /// Pids of processes named `comm`.
    pub fn pids(&self, comm: &str) -> Vec<u32> {
        self.processes.iter().filter(|p| p.comm == comm).map(|p| p.pid).collect()
    }

    /// The pids of processes named `comm` for evidence, each with where it runs when known:
    /// `7 (a container of containerd), 9`.
    pub fn pids_text(&self, comm: &str) -> String {
        let each: Vec<String> = self
            .processes
            .iter()
            .filter(|p| p.comm == comm)
            .map(|p| match p.origin.as_ref().map(|o| &o.kind) {
                Some(k @ (CgroupKind::Container { .. } | CgroupKind::Unit { .. } | CgroupKind::Root)) => {
                    format!("{} ({k})", p.pid)
                }
                _ => p.pid.to_string(),
            })
            .collect();
        each.join(", ")
    }
}

impl ProcessState {
    /// The `processes` source's note: the processes not counted, and those counted whose origin could not be
    /// checked; `None` when there are neither.
    pub fn note(&self) -> Option<String> {
        let list = |each: Vec<String>| {
            let more = each.len().saturating_sub(10);
            let shown = each.into_iter().take(10).collect::<Vec<_>>().join("; ");
            if more > 0 {
                format!("{shown}; and {more} more")
            } else {
                shown
            }
        };
        let mut parts = Vec::new();
        if !self.ignored.is_empty() {
            let each = self.ignored.iter().map(|p| format!("{} (pid {}): {}", p.comm, p.pid, p.reason)).collect();
            parts.push(format!("not counted, as any local user can name a process so: {}", list(each)));
        }
        let unchecked: Vec<String> = self
            .processes
            .iter()
            .filter_map(|p| {
                let why = p.origin.as_ref()?.unchecked.as_ref()?;
                Some(format!("{} (pid {}): {why}", p.comm, p.pid))
            })
            .collect();
        if !unchecked.is_empty() {
            parts.push(format!(
                "counted on their owner alone, as their origin could not be checked: {}",
                list(unchecked)
            ));
        }
        (!parts.is_empty()).then(|| parts.join(". "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, comm: &str, origin: Option<Origin>) -> Process {
        Process { pid, comm: comm.into(), origin }
    }

    #[test]
    fn evidence_names_where_each_process_runs_and_the_note_what_was_not_checked() {
        let container = Origin {
            exe: Some("/usr/local/bin/kube-proxy".into()),
            cgroup: Some("/kubepods.slice/cri-containerd-x.scope".into()),
            kind: CgroupKind::Container { runtime: Runtime::Containerd },
            unchecked: None,
        };
        let unread = Origin {
            exe: None,
            cgroup: Some("/system.slice/kubelet.service".into()),
            kind: CgroupKind::Unit { manager: Manager::Systemd, unit: "kubelet.service".into() },
            unchecked: Some("its executable cannot be read (Permission denied (os error 13))".into()),
        };
        let state = ProcessState {
            processes: vec![
                process(7, "kube-proxy", Some(container)),
                process(9, "kube-proxy", None),
                process(12, "kubelet", Some(unread)),
            ],
            ..ProcessState::default()
        };
        assert_eq!(state.pids_text("kube-proxy"), "7 (a container of containerd), 9");
        assert_eq!(state.pids_text("kubelet"), "12 (systemd unit kubelet.service)");
        assert_eq!(
            state.note().as_deref(),
            Some(
                "counted on their owner alone, as their origin could not be checked: kubelet (pid 12): its \
                 executable cannot be read (Permission denied (os error 13))"
            )
        );
        // A snapshot from before origins were read still loads.
        let old: ProcessState = serde_json::from_str(r#"{"processes": [{"pid": 7, "comm": "kube-proxy"}]}"#).unwrap();
        assert_eq!(old.processes[0].origin, None);
        assert_eq!(old.note(), None);
    }
}
