//! Test worlds for system tests: a network namespace with real iptables/nftables rules and links, real BPF
//! programs and pinned maps under a test-owned bpffs directory and cgroup, and fake-named processes in a private
//! pid namespace; then the real `routewarden` binary runs inside it.
//!
//! Everything a world creates is named after the test and removed on drop. Nothing touches the host's own
//! network namespace.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use aya::maps::{HashMap, MapData};
use aya::programs::{CgroupAttachMode, CgroupSockAddr};
use aya::Ebpf;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");

/// Whether privileged tests can run; prints why not, and fails under CI=true.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut missing: Vec<&str> =
        ["ip", "nsenter", "unshare", "iptables-nft-restore", "iptables-legacy-restore", "nft", "tc", "clang"]
            .into_iter()
            .filter(|t| !in_path(t))
            .collect();
    if !root {
        missing.insert(0, "root");
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("skipping {test}: needs {}", missing.join(", "));
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg} (CI=true turns this skip into a failure)");
    }
    eprintln!("{msg}");
    false
}

fn in_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).chain(["/usr/sbin".into(), "/sbin".into()]).any(|d| d.join(tool).exists()))
        .unwrap_or(false)
}

/// Runs a command, panicking with its stderr if it fails.
pub fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "`{script}` failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Compiles the test BPF objects once per test binary.
pub fn bpf_object(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("routewarden-bpf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bpf");
        for prog in ["cilium_sock", "cilium_tc", "cilium_xdp", "cilium_maps"] {
            sh(&format!(
                "clang -O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu -c {}/{prog}.c -o {}/{prog}.o",
                src.display(),
                dir.display()
            ));
        }
        dir
    });
    dir.join(format!("{name}.o"))
}

fn ensure_bpffs() {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    if !mounts.lines().any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.starts_with("bpf ")) {
        sh("mount -t bpf bpf /sys/fs/bpf");
    }
}

pub struct World {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub bpffs: PathBuf,
    pub cgroup: PathBuf,
    /// Extra config lines appended to the generated config.
    pub config_extra: String,
    procs: Vec<String>,
    bpf: Vec<Ebpf>,
}

impl World {
    /// A fresh world for `test`, or `None` (after printing why) when the machine cannot host one.
    pub fn new(test: &str) -> Option<World> {
        if !privileged(test) {
            return None;
        }
        ensure_bpffs();
        let name = format!("rw-{}-{}", test.replace('_', "-").chars().take(20).collect::<String>(), std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&format!("ip netns add {name}"));
        let bpffs = PathBuf::from(format!("/sys/fs/bpf/{name}"));
        std::fs::create_dir_all(bpffs.join("tc/globals")).unwrap();
        let cgroup = PathBuf::from(format!("/sys/fs/cgroup/unified/{name}"));
        std::fs::create_dir_all(&cgroup).unwrap();
        let w = World {
            name,
            dir: tempfile::tempdir().unwrap(),
            bpffs,
            cgroup,
            config_extra: String::new(),
            procs: Vec::new(),
            bpf: Vec::new(),
        };
        w.ns("ip link set lo up");
        Some(w)
    }

    /// Runs a shell script inside the world's network namespace (the mount namespace stays the host's, so
    /// bpffs and cgroupfs stay visible).
    pub fn ns(&self, script: &str) -> String {
        sh(&format!("nsenter --net=/run/netns/{} sh -c '{}'", self.name, script.replace('\'', "'\\''")))
    }

    /// Loads iptables-restore text into one backend (`legacy` or `nft`) and family, adding to what is there.
    pub fn iptables_restore(&self, backend: &str, v6: bool, text: &str) {
        // nfacct objects do not exist in a fresh namespace; kube-proxy's counters are irrelevant here.
        let text: String = text
            .lines()
            .map(|l| {
                l.replace(" -m nfacct --nfacct-name ct_state_invalid_dropped_pkts", "")
                    .replace(" -m nfacct --nfacct-name localhost_nps_accepted_pkts", "")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let file = self.dir.path().join("rules.txt");
        std::fs::write(&file, text + "\n").unwrap();
        let bin = if v6 { "ip6tables" } else { "iptables" };
        self.ns(&format!("{bin}-{backend}-restore --noflush < {}", file.display()));
    }

    pub fn iptables_fixture(&self, backend: &str, fixture: &str) {
        self.iptables_restore(backend, false, &std::fs::read_to_string(Path::new(FIXTURES).join(fixture)).unwrap());
    }

    /// Loads a knftables-format dump with `nft -f`, declaring objects before the rules that use them.
    pub fn nft_fixture(&self, fixture: &str) {
        let text = std::fs::read_to_string(Path::new(FIXTURES).join(fixture)).unwrap();
        let decl = |l: &&str| ["add table", "add set", "add map", "add chain"].iter().any(|p| l.starts_with(p));
        let ordered: Vec<&str> = text.lines().filter(decl).chain(text.lines().filter(|l| !decl(l))).collect();
        let file = self.dir.path().join("rules.nft");
        std::fs::write(&file, ordered.join("\n") + "\n").unwrap();
        self.ns(&format!("nft -f {}", file.display()));
    }

    /// Creates a veth pair inside the namespace.
    pub fn veth(&self, a: &str, b: &str) {
        self.ns(&format!("ip link add {a} type veth peer name {b} && ip link set {a} up && ip link set {b} up"));
    }

    /// Attaches the test `cil_from_netdev` program to `dev`'s tc ingress with the real `tc`.
    pub fn tc_ingress(&self, dev: &str) {
        let obj = bpf_object("cilium_tc");
        self.ns(&format!(
            "export TC_BPF_MNT={b}; tc qdisc add dev {dev} clsact && tc filter add dev {dev} ingress bpf da obj {o} sec tc",
            b = self.bpffs.display(),
            o = obj.display()
        ));
    }

    /// Attaches the test `cil_xdp_entry` program to `dev` in generic XDP mode with the real `ip`.
    pub fn xdp(&self, dev: &str) {
        let obj = bpf_object("cilium_xdp");
        self.ns(&format!(
            "export TC_BPF_MNT={b}; ip link set dev {dev} xdpgeneric obj {o} sec xdp",
            b = self.bpffs.display(),
            o = obj.display()
        ));
    }

    /// Loads `cil_sock4_connect` with aya and attaches it to the world's cgroup (socket-LB).
    pub fn socket_lb(&mut self) {
        let mut ebpf = Ebpf::load_file(bpf_object("cilium_sock")).unwrap();
        let prog: &mut CgroupSockAddr = ebpf.program_mut("cil_sock4_connect").unwrap().try_into().unwrap();
        prog.load().unwrap();
        let cg = std::fs::File::open(&self.cgroup).unwrap();
        prog.attach(cg, CgroupAttachMode::Single).unwrap();
        self.bpf.push(ebpf);
    }

    /// Pins `cilium_lb4_services_v2` under the world's bpffs with one frontend per (address, port, flags) and
    /// one backend slot each.
    pub fn lb4_map(&mut self, frontends: &[([u8; 4], u16, u8)]) {
        let mut ebpf = Ebpf::load_file(bpf_object("cilium_maps")).unwrap();
        let map = ebpf.take_map("cilium_lb4_services_v2").unwrap();
        let mut hm: HashMap<MapData, [u8; 12], [u8; 12]> = HashMap::try_from(map).unwrap();
        for &(addr, port, flags) in frontends {
            for slot in 0u16..2 {
                let mut k = [0u8; 12];
                k[..4].copy_from_slice(&addr);
                k[4..6].copy_from_slice(&port.to_be_bytes());
                k[6..8].copy_from_slice(&slot.to_ne_bytes());
                k[8] = 6;
                let mut v = [0u8; 12];
                v[4..6].copy_from_slice(&1u16.to_ne_bytes());
                v[8] = flags;
                hm.insert(k, v, 0).unwrap();
            }
        }
        hm.pin(self.bpffs.join("tc/globals/cilium_lb4_services_v2")).unwrap();
        self.bpf.push(ebpf);
    }

    /// A process named `comm` will run (in routewarden's private pid namespace) while `check` runs.
    pub fn process(&mut self, comm: &str) {
        self.procs.push(comm.to_string());
    }

    pub fn config(&self) -> PathBuf {
        let cfg = self.dir.path().join("config.toml");
        let text = format!(
            "bpffs = \"{}\"\ncgroup_roots = [\"{}\"]\nipvs_file = \"{}\"\n{}",
            self.bpffs.display(),
            self.cgroup.display(),
            self.dir.path().join("ip_vs").display(),
            self.config_extra
        );
        std::fs::write(&cfg, text).unwrap();
        cfg
    }

    /// Runs the real binary inside the world with `args` after `--config CFG`; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &str) -> (i32, String, String) {
        let bin = env!("CARGO_BIN_EXE_routewarden");
        let dir = self.dir.path().display();
        let mut script = String::new();
        for c in &self.procs {
            script.push_str(&format!(
                "cp /bin/sleep {dir}/{c}; {dir}/{c} 600 & p=$!; until grep -qx {c} /proc/$p/comm 2>/dev/null; do sleep 0.01; done; "
            ));
        }
        script.push_str(&format!("{bin} --config {} {args}", self.config().display()));
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.name))
            .args(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", &script])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `check --output json` and parses the report.
    pub fn check(&self) -> (i32, serde_json::Value) {
        let (code, out, err) = self.run("check --output json");
        let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
        (code, json)
    }

    /// Everything routewarden could change: rules of both backends, nftables, links, tc filters, XDP, pinned
    /// maps and cgroup attachments. Compared before and after a run to prove it is read-only.
    pub fn state(&self) -> String {
        let mut s = self.ns(
            "for t in iptables-legacy-save ip6tables-legacy-save iptables-nft-save ip6tables-nft-save; do \
             $t 2>/dev/null | grep -v '^#'; done; nft list ruleset; ip -d link show; \
             for d in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do tc filter show dev $d ingress; done",
        );
        s.push_str(&sh(&format!(
            "find {b} | sort; for m in $(find {b} -type f); do bpftool map dump pinned $m; done; bpftool cgroup show {c}",
            b = self.bpffs.display(),
            c = self.cgroup.display()
        )));
        s
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Dropping the aya objects detaches and unloads their programs.
        self.bpf.clear();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = std::fs::remove_dir_all(&self.bpffs);
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

/// The ids of the report's findings.
pub fn ids(report: &serde_json::Value) -> Vec<String> {
    report["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect()
}

pub fn finding<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {report:#}"))
}
