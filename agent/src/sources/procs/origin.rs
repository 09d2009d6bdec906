//! Whether a root process named like an agent came from where that agent runs: its executable's file name and
//! its cgroup (a container of a runtime, or a unit of a service manager). Pure: callers read `/proc/PID/exe` and
//! `/proc/PID/cgroup`. What counts, and the source of each layout, is in docs/local-state-and-processes.md.

use crate::model::procs::{CgroupKind, Manager, Origin, Runtime};

/// Executable file names a watched process name may run from besides its own name (`/proc/PID/comm` is the
/// name of the file executed, which may be a symlink to a multi-call binary).
///
/// - k3s: one binary; the server and agent run as `k3s-server`/`k3s-agent` through symlinks to `k3s` in its data
///   directory (k3s-io/k3s `cmd/k3s/main.go`, the data directory's `bin/`).
/// - Kubernetes up to 1.18 shipped `hyperkube`, one binary whose `kubelet` and `kube-proxy` symlinks ran each
///   component (kubernetes/kubernetes `cluster/images/hyperkube`, removed in 1.19).
const ALSO_RUNS_FROM: &[(&str, &[&str])] =
    &[("k3s-server", &["k3s"]), ("k3s-agent", &["k3s"]), ("kubelet", &["hyperkube"]), ("kube-proxy", &["hyperkube"])];

/// The kernel's mark on `/proc/PID/exe` when the file was unlinked or replaced after the process started (an
/// upgrade in place): the process is still the agent it was.
const DELETED: &str = " (deleted)";

/// Whether `exe` (a `/proc/PID/exe` target) is a file the agent named `comm` runs from: the same file name (comm
/// is the name cut to 15 bytes), or one of [`ALSO_RUNS_FROM`].
pub fn exe_fits(comm: &str, exe: &str) -> bool {
    let path = exe.strip_suffix(DELETED).unwrap_or(exe);
    let file = path.rsplit('/').next().unwrap_or(path);
    file == comm
        || (comm.len() == 15 && file.starts_with(comm))
        || ALSO_RUNS_FROM.iter().any(|(c, files)| *c == comm && files.contains(&file))
}

/// Judges a root process named `comm` by its executable (`/proc/PID/exe`'s target, or why it could not be read)
/// and its cgroup file (`/proc/PID/cgroup`'s text, or why not): its origin, and why it does not count (`None`
/// when it counts). What cannot be read does not drop it: it counts, and `origin.unchecked` says what was not
/// checked.
pub fn judge(comm: &str, exe: std::io::Result<String>, cgroup: std::io::Result<String>) -> (Origin, Option<String>) {
    let mut unchecked = Vec::new();
    let mut not_counted = None;
    let exe = match exe {
        Ok(exe) => {
            if !exe_fits(comm, &exe) {
                not_counted = Some(format!("its executable is {exe}, not {comm}'s"));
            }
            Some(exe)
        }
        Err(e) => {
            unchecked.push(format!("its executable cannot be read ({e})"));
            None
        }
    };
    let (cgroup, kind) = match cgroup {
        Ok(text) => match classify(&text) {
            Ok((path, kind)) => {
                if kind == CgroupKind::Other && not_counted.is_none() {
                    not_counted = Some(format!("its cgroup {path} is {kind}"));
                }
                (Some(path), kind)
            }
            Err(why) => {
                unchecked.push(why.to_string());
                (None, CgroupKind::Unknown)
            }
        },
        Err(e) => {
            unchecked.push(format!("its cgroup cannot be read ({e})"));
            (None, CgroupKind::Unknown)
        }
    };
    let unchecked = (!unchecked.is_empty()).then(|| unchecked.join(", "));
    (Origin { exe, cgroup, kind, unchecked }, not_counted)
}

/// The cgroup that tells where a process came from, from the text of `/proc/PID/cgroup`
/// (`hierarchy-ID:controllers:path` lines), and its kind; `Err` says why none could be told.
///
/// The lines that place processes by who started them are the cgroup v2 line (`0::`) and the named v1
/// hierarchies (`name=systemd`, `name=openrc`); v1 controller lines only when neither is there (a host with v1
/// controllers alone). Of those, the most telling wins: a container, then a unit, then another cgroup, then the
/// root.
pub fn classify(text: &str) -> Result<(String, CgroupKind), CgroupError> {
    let lines: Vec<(&str, &str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            Some((it.next()?, it.next()?, it.next()?))
        })
        .collect();
    let placing = |(id, controllers, _): &&(&str, &str, &str)| {
        (*id == "0" && controllers.is_empty()) || controllers.split(',').any(|c| c.starts_with("name="))
    };
    let chosen: Vec<&(&str, &str, &str)> =
        if lines.iter().any(|l| placing(&l)) { lines.iter().filter(placing).collect() } else { lines.iter().collect() };
    let mut best: Option<(u8, String, CgroupKind)> = None;
    for (_, controllers, path) in chosen {
        let openrc = controllers.split(',').any(|c| c == "name=openrc");
        let Some(kind) = kind_of(path, openrc) else { continue };
        let rank = match kind {
            CgroupKind::Container { .. } => 4,
            CgroupKind::Unit { .. } => 3,
            CgroupKind::Other => 2,
            CgroupKind::Root => 1,
            CgroupKind::Unknown => 0,
        };
        if best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
            best = Some((rank, path.to_string(), kind));
        }
    }
    match best {
        Some((_, path, kind)) => Ok((path, kind)),
        None if lines.is_empty() => Err(CgroupError::NoLine),
        None => Err(CgroupError::OutsideNamespace),
    }
}

/// Why a cgroup file tells nothing of where its process came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupError {
    #[error("its cgroup file has no cgroup line")]
    NoLine,
    #[error("its cgroup is outside routewarden's cgroup namespace")]
    OutsideNamespace,
}

/// The kind of one cgroup path, judged from its innermost telling component outwards; `None` when the path is
/// only `..` (above the reader's cgroup namespace: nothing can be told). `openrc`: the path is in OpenRC's own
/// v1 hierarchy, where each top directory is a service.
fn kind_of(path: &str, openrc: bool) -> Option<CgroupKind> {
    let all: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    // Seen from another cgroup namespace, a path starts with `..` steps up to the common ancestor.
    let comps: Vec<&str> = all.iter().copied().filter(|c| *c != "..").collect();
    if comps.is_empty() {
        return if all.is_empty() { Some(CgroupKind::Root) } else { None };
    }
    if openrc {
        return Some(CgroupKind::Unit { manager: Manager::Openrc, unit: comps[0].to_string() });
    }
    let under_kubepods = |i: usize| comps[..i].iter().any(|c| c.contains("kubepods"));
    for (i, c) in comps.iter().enumerate().rev() {
        if let Some(runtime) = runtime_scope(c) {
            return Some(CgroupKind::Container { runtime });
        }
        if is_container_id(c) {
            // The cgroupfs drivers name a container by its bare id, under the runtime's or the kubelet's tree.
            if i > 0 && comps[i - 1] == "docker" {
                return Some(CgroupKind::Container { runtime: Runtime::Docker });
            }
            // Under `pod<uid>` too: from routewarden's own pod (a private cgroup namespace) the `kubepods`
            // ancestors are hidden behind `..` steps.
            if under_kubepods(i) || (i > 0 && is_pod_dir(comps[i - 1])) {
                return Some(CgroupKind::Container { runtime: Runtime::Kubepods });
            }
        }
        if c.contains("kubepods") || is_pod_dir(c) {
            return Some(CgroupKind::Container { runtime: Runtime::Kubepods });
        }
        if [".service", ".scope", ".slice"].iter().any(|s| c.ends_with(s)) {
            return Some(CgroupKind::Unit { manager: Manager::Systemd, unit: c.to_string() });
        }
        if let Some(service) = c.strip_prefix("openrc.").or_else(|| c.strip_prefix("openrc_")) {
            return Some(CgroupKind::Unit { manager: Manager::Openrc, unit: service.to_string() });
        }
        if i == 0 && TALOS.contains(c) {
            return Some(CgroupKind::Unit { manager: Manager::Talos, unit: comps.join("/") });
        }
    }
    Some(CgroupKind::Other)
}

/// Talos's own top cgroups: `init` (machined), `system` (its services), `podruntime` (containerd, the kubelet,
/// etcd) (talos.dev, "Cgroups Resource Analysis", v1.9).
const TALOS: [&str; 3] = ["init", "system", "podruntime"];

/// The runtime of a container scope (systemd cgroup driver) or a CRI-O/Podman cgroupfs directory:
/// `cri-containerd-<id>.scope`, `crio-<id>.scope` (and `crio-conmon-`), `docker-<id>.scope`,
/// `libpod-<id>.scope` (and `libpod-conmon-`), `crio-<id>`, `libpod-<id>`.
fn runtime_scope(c: &str) -> Option<Runtime> {
    let bare = c.strip_suffix(".scope").unwrap_or(c);
    let id = |prefix: &str| bare.strip_prefix(prefix).map(|r| r.strip_prefix("conmon-").unwrap_or(r));
    let scoped = c.ends_with(".scope");
    if scoped {
        if id("cri-containerd-").is_some_and(is_container_id) {
            return Some(Runtime::Containerd);
        }
        if id("docker-").is_some_and(is_container_id) {
            return Some(Runtime::Docker);
        }
    }
    if id("crio-").is_some_and(is_container_id) {
        return Some(Runtime::CriO);
    }
    if id("libpod-").is_some_and(is_container_id) {
        return Some(Runtime::Podman);
    }
    None
}

/// A pod's directory of the kubelet's cgroupfs driver: `pod` and the pod's uid (32 hex digits, with or without
/// `-` or `_` between the groups).
fn is_pod_dir(c: &str) -> bool {
    c.strip_prefix("pod").is_some_and(|uid| {
        let hex = uid.bytes().filter(|b| *b != b'-' && *b != b'_');
        hex.clone().count() == 32 && hex.clone().all(|b| b.is_ascii_hexdigit()) && uid.len() <= 36
    })
}

/// A container id as runtimes write it: 64 lowercase hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "358607a37e7ada357032e7f5729c9ae6a3efdb7962acbcbe47ff6a3c5506cb1c";

    fn kind(text: &str) -> CgroupKind {
        classify(text).unwrap().1
    }

    fn container(runtime: Runtime) -> CgroupKind {
        CgroupKind::Container { runtime }
    }

    fn unit(manager: Manager, unit: &str) -> CgroupKind {
        CgroupKind::Unit { manager, unit: unit.into() }
    }

    #[test]
    fn agents_executables_fit_and_others_do_not() {
        // kube-proxy's image runs /usr/local/bin/kube-proxy (kubernetes/minikube#11280's systemd-cgls).
        assert!(exe_fits("kube-proxy", "/usr/local/bin/kube-proxy"));
        assert!(exe_fits("kube-proxy", "/usr/local/bin/kube-proxy (deleted)"));
        assert!(exe_fits("k3s-server", "/var/lib/rancher/k3s/data/abc/bin/k3s"));
        assert!(exe_fits("k3s", "/usr/local/bin/k3s"));
        assert!(exe_fits("kubelite", "/snap/microk8s/7964/kubelite"));
        assert!(exe_fits("calico-node", "/bin/calico-node"));
        assert!(exe_fits("cilium-agent", "/usr/bin/cilium-agent"));
        assert!(exe_fits("kubelet", "/usr/local/bin/hyperkube"));
        // comm is the file name cut to 15 bytes.
        assert!(exe_fits("kube-controller", "/usr/local/bin/kube-controller-manager"));
        assert!(!exe_fits("kube-proxy", "/usr/bin/sleep"));
        assert!(!exe_fits("kube-proxy", "/tmp/kube-proxy-wrapper"));
        assert!(!exe_fits("calico-node", "/usr/bin/k3s"));
        assert!(!exe_fits("kube-proxy", "/usr/bin/sleep (deleted)"));
    }

    #[test]
    fn containers_of_each_runtime_and_layout() {
        // containerd, systemd driver (netdata/netdata#4868's cgroup tree).
        let p = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod03f3f104_3215_44f2_9686_d4dd1f05a7ed.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(kind(&p), container(Runtime::Containerd));
        // CRI-O on a v1 host: the controllers and name=systemd (opencontainers/runc#4620's /proc/PID/cgroup).
        let p = format!(
            "13:freezer:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda5c1f8d5_1919_434d_add7_4afaafdaef89.slice/crio-{ID}.scope\n\
             11:files:/\n\
             1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda5c1f8d5_1919_434d_add7_4afaafdaef89.slice/crio-{ID}.scope\n"
        );
        assert_eq!(kind(&p), container(Runtime::CriO));
        // Docker under the kubelet (dockershim), systemd driver (kontena/pharos-cluster#440's systemd-cgls).
        let p = format!(
            "1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9692aa0e_748e_11e8_8dfa_76d458035df6.slice/docker-{ID}.scope\n"
        );
        assert_eq!(kind(&p), container(Runtime::Docker));
        // The cgroupfs driver (kubelet's `/kubepods/<qos>/pod<uid>/<id>`; guaranteed pods have no QoS level).
        assert_eq!(
            kind(&format!("0::/kubepods/besteffort/pod2ca4a155-3599-498d-bb9d-4446693fa3ea/{ID}\n")),
            container(Runtime::Kubepods)
        );
        assert_eq!(
            kind(&format!("0::/kubepods/pod2ca4a155-3599-498d-bb9d-4446693fa3ea/{ID}\n")),
            container(Runtime::Kubepods)
        );
        assert_eq!(kind(&format!("12:pids:/docker/{ID}\n3:cpu:/docker/{ID}\n")), container(Runtime::Docker));
        assert_eq!(kind(&format!("0::/machine.slice/libpod-{ID}.scope/container\n")), container(Runtime::Podman));
        // kind: a node container (docker) whose kubelet puts pods under /kubelet.slice; seen from the host.
        let p = format!(
            "0::/system.slice/docker-{ID}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod1b2c.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(kind(&p), container(Runtime::Containerd));
        // From routewarden's own container (a private cgroup namespace): `..` steps to the common ancestor.
        let p = format!("0::/../../kubepods-besteffort-pod1b2c.slice/cri-containerd-{ID}.scope\n");
        assert_eq!(kind(&p), container(Runtime::Containerd));
        // The same with the cgroupfs driver: the `kubepods` ancestors are hidden, the pod's directory is not.
        let p = format!("0::/../../../burstable/pod2ca4a155-3599-498d-bb9d-4446693fa3ea/{ID}\n");
        assert_eq!(kind(&p), container(Runtime::Kubepods));
    }

    #[test]
    fn units_of_each_service_manager() {
        assert_eq!(kind("0::/system.slice/kubelet.service\n"), unit(Manager::Systemd, "kubelet.service"));
        assert_eq!(kind("0::/system.slice/k3s.service\n"), unit(Manager::Systemd, "k3s.service"));
        assert_eq!(
            kind("0::/system.slice/snap.microk8s.daemon-kubelite.service\n"),
            unit(Manager::Systemd, "snap.microk8s.daemon-kubelite.service")
        );
        // `--kubelet-cgroups=/system.slice` moves the kubelet into the slice itself (kontena/pharos-cluster#440).
        let v1 = "11:cpuacct,cpu:/system.slice\n9:pids:/system.slice\n1:name=systemd:/system.slice\n";
        assert_eq!(kind(v1), unit(Manager::Systemd, "system.slice"));
        // `sudo k3s server &` from a login shell (k3s's quick start): a session scope, a unit still.
        assert_eq!(kind("0::/user.slice/user-0.slice/session-3.scope\n"), unit(Manager::Systemd, "session-3.scope"));
        // A hybrid host: the v2 line mirrors systemd's placement; the v1 controllers are ignored.
        let hybrid =
            "4:memory:/custom/place\n1:name=systemd:/system.slice/kubelet.service\n0::/system.slice/kubelet.service\n";
        assert_eq!(kind(hybrid), unit(Manager::Systemd, "kubelet.service"));
        assert_eq!(kind("0::/openrc.k3s\n"), unit(Manager::Openrc, "k3s"));
        assert_eq!(kind("5:name=openrc:/k3s\n"), unit(Manager::Openrc, "k3s"));
        assert_eq!(kind("0::/podruntime/kubelet\n"), unit(Manager::Talos, "podruntime/kubelet"));
    }

    #[test]
    fn the_root_other_cgroups_and_what_cannot_be_told() {
        assert_eq!(kind("0::/\n"), CgroupKind::Root);
        // A v1 controller's own group does not outweigh the placing lines (this project's CI sandbox).
        assert_eq!(
            kind("9:name=systemd:/\n4:memory:/process_api/897dcf5e40517560b80146ff3c6ce258\n0::/\n"),
            CgroupKind::Root
        );
        assert_eq!(classify("0::/rw-test-42/agents\n").unwrap(), ("/rw-test-42/agents".into(), CgroupKind::Other));
        // A 64-hex directory under nothing known is not a container.
        assert_eq!(kind(&format!("0::/elsewhere/{ID}\n")), CgroupKind::Other);
        assert_eq!(classify(""), Err(CgroupError::NoLine));
        assert_eq!(classify("0::/../..\n"), Err(CgroupError::OutsideNamespace));
    }

    #[test]
    fn judgement_counts_what_fits_and_what_cannot_be_read() {
        let cg = || Ok(format!("0::/kubepods.slice/cri-containerd-{ID}.scope\n"));
        let (o, why) = judge("kube-proxy", Ok("/usr/local/bin/kube-proxy".into()), cg());
        assert_eq!(why, None);
        assert_eq!(o.kind, container(Runtime::Containerd));
        assert_eq!(o.unchecked, None);

        let (_, why) = judge("kube-proxy", Ok("/usr/bin/sleep".into()), cg());
        assert_eq!(why.as_deref(), Some("its executable is /usr/bin/sleep, not kube-proxy's"));

        let (_, why) = judge("kube-proxy", Ok("/usr/local/bin/kube-proxy".into()), Ok("0::/rw-test/x\n".into()));
        assert!(why.unwrap().contains("its cgroup /rw-test/x is a cgroup of no container runtime"));

        // Unreadable: counted, and said.
        let io = std::io::Error::from_raw_os_error;
        let (o, why) = judge("kubelet", Err(io(libc::EACCES)), Err(io(libc::ESRCH)));
        assert_eq!(why, None);
        assert_eq!((o.exe, o.kind), (None, CgroupKind::Unknown));
        assert_eq!(
            o.unchecked.as_deref(),
            Some(
                "its executable cannot be read (Permission denied (os error 13)), its cgroup cannot be read (No such \
                 process (os error 3))"
            )
        );
        let (o, _) = judge("kubelet", Ok("/usr/bin/kubelet".into()), Ok(String::new()));
        assert_eq!(o.unchecked.as_deref(), Some("its cgroup file has no cgroup line"));
    }
}
