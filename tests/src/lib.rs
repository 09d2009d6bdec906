//! The harness of routewarden's system tests: test worlds, each a network namespace with real iptables/nftables
//! rules and links, real BPF programs and pinned maps under a test-owned bpffs directory and cgroup, and
//! fake-named processes in a private pid namespace; then the real `routewarden` binary runs inside it.
//!
//! The binary under test comes from `ROUTEWARDEN_BIN` (see [`bin`]), which `cargo xtask test` sets to the binary it
//! has just built. Everything a world creates is named after the test and removed on drop. Nothing touches the
//! host's own network namespace.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod apiserver;
pub mod snapshots;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use aya::maps::{HashMap, MapData};
use aya::programs::{CgroupAttachMode, CgroupSockAddr};
use aya::Ebpf;

/// The real rule dumps, shared with the agent crate's unprivileged tests (see `INDEX.md` there for where each
/// comes from).
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../agent/tests/data/fixtures");

/// The repository's root.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The environment variable that names the binary under test.
pub const BIN_ENV: &str = "ROUTEWARDEN_BIN";

/// The `routewarden` binary under test: the absolute path in `ROUTEWARDEN_BIN`. `cargo xtask test` builds the binary
/// and sets it; these tests never build or look for a binary themselves, so they cannot test a stale one. Panics
/// with what to do when the variable is unset, relative, or names no file.
pub fn bin() -> PathBuf {
    let how = "run the system tests with `cargo xtask test` (it builds routewarden and sets ROUTEWARDEN_BIN), or \
               set ROUTEWARDEN_BIN to the absolute path of a freshly built binary, e.g. `cargo build -p routewarden && \
               ROUTEWARDEN_BIN=$PWD/target/debug/routewarden cargo test -p routewarden-system-tests`";
    let path = match std::env::var_os(BIN_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!("{BIN_ENV} is not set: {how}"),
    };
    if !path.is_absolute() {
        panic!("{BIN_ENV}={} is not an absolute path: {how}", path.display());
    }
    if !path.is_file() {
        panic!("{BIN_ENV}={} does not exist: {how}", path.display());
    }
    path
}

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
    skip_note(&msg);
    false
}

/// Whether `tool` is installed; prints a skip reason when not, and fails under CI=true.
pub fn tool(tool: &str) -> bool {
    if in_path(tool) {
        return true;
    }
    let msg = format!("skipping: {tool} is not installed");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg} (CI=true turns this skip into a failure)");
    }
    skip_note(&msg);
    false
}

/// Prints a skip reason to the real stderr: libtest captures `eprintln!` of passing tests, so a skip printed that
/// way would never be seen.
fn skip_note(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
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
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf");
        for prog in ["cilium_sock", "cilium_tc", "cilium_xdp", "cilium_maps", "calico", "calico_maps", "loxilb"] {
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

/// Compiles `bin/listen.c` (a process that listens on a port) once per test binary.
pub fn listen_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("routewarden-listen-{}", std::process::id()));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("bin/listen.c");
        sh(&format!("clang -O2 -o {} {}", out.display(), src.display()));
        out
    })
    .clone()
}

fn ensure_bpffs() {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    if !mounts.lines().any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.starts_with("bpf ")) {
        sh("mount -t bpf bpf /sys/fs/bpf");
    }
}

/// Names of the worlds that exist now in this process.
static LIVE_WORLDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A root process named like an agent that is not one (for [`World::impostor`]).
pub enum Impostor {
    /// `sleep` run through a symlink named like the agent: the name is the agent's, the executable `sleep`'s.
    Renamed,
    /// A copy of `sleep` named like the agent, in this cgroup under the world's (no runtime's or unit's layout).
    Cgroup(String),
}

pub struct World {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub bpffs: PathBuf,
    pub cgroup: PathBuf,
    /// Extra config lines appended to the generated config.
    pub config_extra: String,
    /// A command prefix for the binary in `run` (e.g. `setpriv ... -- `).
    pub wrapper: String,
    /// Shell commands run before `serve` in a private mount namespace of its own (`unshare -m`, propagation
    /// private: a tmpfs or a read-only bind mount there never reaches the host); `None` runs it in the host's.
    pub serve_mounts: Option<String>,
    /// A command that execs the binary under `serve` with the rest of its arguments (systemd-socket-activate with
    /// its listeners, say); the variables `serve` sets are passed through it with `-E`.
    pub serve_launcher: Vec<String>,
    /// Whether the world has a kubelet configuration file (true unless [`World::no_kubelet`]): a world is a
    /// Kubernetes node unless a test says otherwise.
    pub kubelet: bool,
    procs: Vec<String>,
    /// Root processes named like an agent that are not one: (comm, where).
    impostors: Vec<(String, Impostor)>,
    /// Processes run by an unprivileged user (`nobody`), named like an agent: they must not count.
    user_procs: Vec<String>,
    /// Processes that listen on a port: (comm, port).
    listeners: Vec<(String, u16)>,
    servers: Vec<String>,
    bpf: Vec<Ebpf>,
}

impl World {
    /// A fresh world for `test`, or `None` (after printing why) when the machine cannot host one. Panics when the
    /// binary under test is not given (see [`bin`]).
    pub fn new(test: &str) -> Option<World> {
        if !privileged(test) {
            return None;
        }
        bin();
        ensure_bpffs();
        let name = format!("rw-{}-{}", test.replace('_', "-").chars().take(20).collect::<String>(), std::process::id());
        // All system tests share one process: two live worlds with one name would delete each other's namespace.
        {
            let mut live = LIVE_WORLDS.lock().unwrap_or_else(|e| e.into_inner());
            assert!(!live.contains(&name), "two live worlds are named {name}: give World::new a unique name");
            live.push(name.clone());
        }
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
            serve_mounts: None,
            serve_launcher: Vec::new(),
            wrapper: String::new(),
            kubelet: true,
            procs: Vec::new(),
            impostors: Vec::new(),
            user_procs: Vec::new(),
            listeners: Vec::new(),
            servers: Vec::new(),
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
            "export TC_BPF_MNT={b}; tc qdisc add dev {dev} clsact && tc filter add dev {dev} ingress bpf da obj {o} sec classifier",
            b = self.bpffs.display(),
            o = obj.display()
        ));
    }

    /// Attaches the test `cil_from_netdev` program to `dev`'s ingress as a tcx link (kernel >= 6.6) with aya,
    /// from a thread that joins the world's namespace.
    pub fn tcx_ingress(&mut self, dev: &str) {
        let (ns, dev, obj) = (self.name.clone(), dev.to_string(), bpf_object("cilium_tc"));
        let ebpf = in_netns(&ns, move || {
            use aya::programs::tc::{SchedClassifier, TcAttachOptions, TcAttachType};
            let mut ebpf = Ebpf::load_file(obj).unwrap();
            let prog: &mut SchedClassifier = ebpf.program_mut("cil_from_netdev").unwrap().try_into().unwrap();
            prog.load().unwrap();
            prog.attach_with_options(&dev, TcAttachType::Ingress, TcAttachOptions::TcxOrder(Default::default()))
                .unwrap();
            ebpf
        });
        self.bpf.push(ebpf);
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

    /// Attaches the program of section `sec` of test object `obj` to `dev`'s tc `dir` hook (clsact, handle 1,
    /// priority 1, direct action) with the real `tc`, as LoxiLB's loader does; creates the clsact qdisc if needed.
    pub fn tc_sec(&self, obj: &str, sec: &str, dev: &str, dir: &str) {
        self.ns(&format!(
            "export TC_BPF_MNT={b}; (tc qdisc show dev {dev} | grep -q clsact || tc qdisc add dev {dev} clsact) && \
             tc filter add dev {dev} {dir} prio 1 handle 1 bpf da obj {o} sec {sec}",
            b = self.bpffs.display(),
            o = bpf_object(obj).display()
        ));
    }

    /// Attaches the program of section `sec` of test object `obj` to `dev` in generic XDP mode with the real `ip`.
    pub fn xdp_sec(&self, obj: &str, sec: &str, dev: &str) {
        self.ns(&format!(
            "export TC_BPF_MNT={b}; ip link set dev {dev} xdpgeneric obj {o} sec {sec}",
            b = self.bpffs.display(),
            o = bpf_object(obj).display()
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

    /// Attaches program `prog` of test object `obj` to `dev`'s ingress as a tcx link (kernel >= 6.6), from a thread
    /// that joins the world's namespace.
    pub fn tcx_prog(&mut self, obj: &str, prog: &str, dev: &str) {
        let (ns, dev, obj, prog) = (self.name.clone(), dev.to_string(), bpf_object(obj), prog.to_string());
        let ebpf = in_netns(&ns, move || {
            use aya::programs::tc::{SchedClassifier, TcAttachOptions, TcAttachType};
            let mut ebpf = Ebpf::load_file(obj).unwrap();
            let p: &mut SchedClassifier = ebpf.program_mut(&prog).unwrap().try_into().unwrap();
            p.load().unwrap();
            p.attach_with_options(&dev, TcAttachType::Ingress, TcAttachOptions::TcxOrder(Default::default())).unwrap();
            ebpf
        });
        self.bpf.push(ebpf);
    }

    /// Loads `calico_connect_v4` with aya and attaches it to the world's cgroup (Calico's connect-time LB).
    pub fn calico_ctlb(&mut self) {
        let mut ebpf = Ebpf::load_file(bpf_object("calico")).unwrap();
        let prog: &mut CgroupSockAddr = ebpf.program_mut("calico_connect_v4").unwrap().try_into().unwrap();
        prog.load().unwrap();
        let cg = std::fs::File::open(&self.cgroup).unwrap();
        prog.attach(cg, CgroupAttachMode::Single).unwrap();
        self.bpf.push(ebpf);
    }

    /// Pins Calico's `cali_v4_nat_fe3` under the world's bpffs with one frontend per (address, port, protocol,
    /// backend count), keyed as felix's `NewNATKey` writes them (prefix length 56, source 0.0.0.0/0).
    pub fn calico_nat_map(&mut self, frontends: &[([u8; 4], u16, u8, u32)]) {
        use aya::maps::lpm_trie::{Key, LpmTrie};
        let mut ebpf = Ebpf::load_file(bpf_object("calico_maps")).unwrap();
        let map = ebpf.take_map("cali_v4_nat_fe3").unwrap();
        let mut trie: LpmTrie<MapData, [u8; 12], [u8; 20]> = LpmTrie::try_from(map).unwrap();
        for (id, &(addr, port, proto, count)) in frontends.iter().enumerate() {
            let mut k = [0u8; 12];
            k[..4].copy_from_slice(&addr);
            k[4..6].copy_from_slice(&port.to_le_bytes());
            k[6] = proto;
            let mut v = [0u8; 20];
            v[..4].copy_from_slice(&(id as u32 + 1).to_le_bytes());
            v[4..8].copy_from_slice(&count.to_le_bytes());
            trie.insert(&Key::new(56, k), v, 0).unwrap();
        }
        trie.pin(self.bpffs.join("tc/globals/cali_v4_nat_fe3")).unwrap();
        self.bpf.push(ebpf);
    }

    /// Loads Calico's `cali_tc_preamble` and `calico_connect_v4` without attaching them (programs that prove nothing).
    pub fn calico_unattached(&mut self) {
        let mut ebpf = Ebpf::load_file(bpf_object("calico")).unwrap();
        let tc: &mut aya::programs::SchedClassifier = ebpf.program_mut("cali_tc_preamble").unwrap().try_into().unwrap();
        tc.load().unwrap();
        let sock: &mut CgroupSockAddr = ebpf.program_mut("calico_connect_v4").unwrap().try_into().unwrap();
        sock.load().unwrap();
        self.bpf.push(ebpf);
    }

    /// This world has no kubelet configuration file (and no kubelet process unless a test adds one).
    pub fn no_kubelet(&mut self) {
        self.kubelet = false;
    }

    /// Writes the world's `/proc/net/ip_vs` (IPVS is not available on every test machine; routewarden reads the
    /// configured file).
    pub fn ip_vs(&self, text: &str) {
        std::fs::write(self.dir.path().join("ip_vs"), text).unwrap();
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

    /// A process named `comm` that listens on 127.0.0.1:`port` will run (like [`World::process`], which it
    /// replaces for that name).
    pub fn listener(&mut self, comm: &str, port: u16) {
        self.procs.retain(|p| p != comm);
        self.listeners.push((comm.to_string(), port));
    }

    /// A process named `comm` run by `nobody` (a copy of `sleep` started through `setpriv`), as any local user
    /// can start one, will run while `check` runs.
    pub fn process_of_nobody(&mut self, comm: &str) {
        self.user_procs.push(comm.to_string());
    }

    /// A root process named `comm` that is not the agent will run while `check` runs (see [`Impostor`]).
    pub fn impostor(&mut self, comm: &str, how: Impostor) {
        self.impostors.push((comm.to_string(), how));
    }

    /// The cgroup (under the world's) a stand-in agent named `comm` runs in: the kubelet in a systemd service
    /// (`system.slice/kubelet.service`, as kubeadm's package installs it), every other agent in a container laid
    /// out as containerd's with the kubelet's systemd cgroup driver (`kubepods.slice/.../cri-containerd-<id>.scope`).
    pub fn agent_cgroup(&self, comm: &str) -> PathBuf {
        if comm == "kubelet" {
            return self.cgroup.join("system.slice/kubelet.service");
        }
        // A pod uid and a container id of the runtimes' forms, the same in every run (from the name).
        let hex: String =
            comm.bytes().map(|b| format!("{b:02x}")).collect::<String>().chars().cycle().take(64).collect();
        let uid = format!("{}_{}_{}_{}_{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]);
        self.cgroup.join(format!(
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice/cri-containerd-{hex}.scope"
        ))
    }

    /// A shell step that moves process `$p` into the cgroup `cg` (made first).
    fn join_cgroup(cg: &Path) -> String {
        format!("mkdir -p {c} && echo $p > {c}/cgroup.procs || exit 97; ", c = cg.display())
    }

    /// Shell steps that start the world's root stand-ins for agents ([`World::process`]): each a copy of `sleep`
    /// named like the agent, in the agent's cgroup ([`World::agent_cgroup`]), waited for until it bears the name.
    fn agents_script(&self) -> String {
        let dir = self.dir.path().display();
        let mut script = String::new();
        for c in &self.procs {
            script.push_str(&format!("cp /bin/sleep {dir}/{c} || exit 97; {dir}/{c} 600 & p=$!; "));
            script.push_str(&Self::join_cgroup(&self.agent_cgroup(c)));
            script.push_str(&Self::wait_comm(c));
        }
        for (c, how) in &self.impostors {
            match how {
                Impostor::Renamed => script.push_str(&format!(
                    "mkdir -p {dir}/renamed && ln -sf /bin/sleep {dir}/renamed/{c} || exit 97; {dir}/renamed/{c} 600 & p=$!; "
                )),
                Impostor::Cgroup(_) => script.push_str(&format!(
                    "mkdir -p {dir}/elsewhere && cp /bin/sleep {dir}/elsewhere/{c} || exit 97; {dir}/elsewhere/{c} 600 & p=$!; "
                )),
            }
            let cg = match how {
                Impostor::Renamed => self.agent_cgroup(c),
                Impostor::Cgroup(rel) => self.cgroup.join(rel),
            };
            script.push_str(&Self::join_cgroup(&cg));
            script.push_str(&Self::wait_comm(c));
        }
        script
    }

    /// A shell step that waits (up to 10 s) until process `$p` is named `comm`.
    fn wait_comm(comm: &str) -> String {
        format!(
            "n=0; until grep -qx {comm} /proc/$p/comm 2>/dev/null; do n=$((n+1)); [ $n -lt 1000 ] || exit 97; sleep 0.01; done; "
        )
    }

    /// The root process named `comm` set up before will not run.
    pub fn no_process(&mut self, comm: &str) {
        self.procs.retain(|p| p != comm);
    }

    /// A process named `comm` will run (in routewarden's private pid namespace) while `check` runs.
    pub fn process(&mut self, comm: &str) {
        self.procs.push(comm.to_string());
    }

    /// A process named `comm` (a copy of the `answer-http` binary at `bin`) will answer HTTP on `addr` inside the
    /// world while `check` runs: each `(path, code, body)` of `answers`. routewarden sees it as that process.
    pub fn server(&mut self, bin: &str, comm: &str, addr: &str, answers: &[(&str, u16, &str)]) {
        let dir = self.dir.path().display();
        let answers: Vec<String> = answers.iter().map(|(p, c, b)| format!("'{p}={c}:{b}'")).collect();
        let own = format!("{dir}/server-{}", self.servers.len());
        let ready = format!("{own}/ready");
        self.servers.push(format!(
            "mkdir -p {own}; rm -f {ready}; cp {bin} {own}/{comm}; {own}/{comm} {addr} {ready} {} & p=$!; {join}\
             until [ -e {ready} ] || ! kill -0 $p 2>/dev/null; do sleep 0.01; done; ",
            answers.join(" "),
            join = Self::join_cgroup(&self.agent_cgroup(comm)),
        ));
    }

    /// No more servers from [`World::server`] in later runs.
    pub fn clear_servers(&mut self) {
        self.servers.clear();
    }

    /// Writes the world's configuration: its bpffs, cgroup and IPVS file; the files routewarden would otherwise
    /// read from the host (mountinfo, CNI directory, Cilium agent socket, certificates, kubelet configuration) in
    /// the world's directory unless `config_extra` sets them; then `config_extra`.
    pub fn config(&self) -> PathBuf {
        let cfg = self.dir.path().join("config.toml");
        let mut text = format!(
            "bpffs = \"{}\"\ncgroup_roots = [\"{}\"]\nipvs_file = \"{}\"\n",
            self.bpffs.display(),
            self.cgroup.display(),
            self.dir.path().join("ip_vs").display(),
        );
        let sets = |key: &str| {
            self.config_extra
                .lines()
                .any(|l| l.trim_start().strip_prefix(key).is_some_and(|r| r.trim_start().starts_with('=')))
        };
        let empty_mountinfo = self.dir.path().join("empty-mountinfo");
        if !sets("mountinfo") {
            std::fs::write(&empty_mountinfo, "").unwrap();
            text.push_str(&format!("mountinfo = \"{}\"\n", empty_mountinfo.display()));
        }
        if !sets("kubelet_files") {
            // Not a directory named like a process: `process("kubelet")` copies a binary to <dir>/kubelet.
            let file = self.dir.path().join("kubelet-config.yaml");
            if self.kubelet {
                std::fs::write(&file, "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n")
                    .unwrap();
            } else {
                let _ = std::fs::remove_file(&file);
            }
            text.push_str(&format!("kubelet_files = [\"{}\"]\n", file.display()));
        }
        for (key, file) in [("cni_dir", "net.d"), ("cilium_socket", "cilium.sock"), ("iptables_command", "iptables")] {
            if !sets(key) {
                text.push_str(&format!("{key} = \"{}\"\n", self.dir.path().join(file).display()));
            }
        }
        text.push_str(&self.config_extra);
        if !self.config_extra.contains("[certificates]") {
            text.push_str("\n[certificates]\npaths = []\n");
        }
        std::fs::write(&cfg, text).unwrap();
        cfg
    }

    /// Runs the real binary inside the world with `args` after `--config CFG`; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &str) -> (i32, String, String) {
        let bin = bin();
        let bin = bin.display();
        let dir = self.dir.path().display();
        let mut script = self.agents_script();
        for c in &self.user_procs {
            // A directory nobody can reach (the world's own is private to root: let others through it).
            script.push_str(&format!(
                "chmod 711 {dir} && mkdir -p -m 755 {dir}/users && cp /bin/sleep {dir}/users/{c} || exit 97; \
                 setpriv --reuid=nobody --regid=nogroup --clear-groups {dir}/users/{c} 600 & p=$!; n=0; \
                 until grep -qx {c} /proc/$p/comm 2>/dev/null; do n=$((n+1)); [ $n -lt 1000 ] || exit 97; sleep 0.01; done; "
            ));
        }
        for (c, port) in &self.listeners {
            let listen = listen_binary();
            script.push_str(&format!(
                "mkdir -p {dir}/listeners; cp {l} {dir}/listeners/{c} || exit 97; {dir}/listeners/{c} {port} & p=$!; {join}n=0; \
                 until grep -qi ':{port:04X} [0-9A-F:]* 0A' /proc/net/tcp; do n=$((n+1)); [ $n -lt 1000 ] || exit 97; sleep 0.01; done; ",
                l = listen.display(),
                join = Self::join_cgroup(&self.agent_cgroup(c)),
            ));
        }
        for s in &self.servers {
            script.push_str(s);
        }
        script.push_str(&format!("{}{bin} --config {} {args}", self.wrapper, self.config().display()));
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

    /// Starts the real binary inside the world with `args` (like `run`) without waiting for it.
    /// The world's processes ([`World::process`]) run beside it in a private pid namespace, as with `run`.
    pub fn spawn(&self, args: &str) -> std::process::Child {
        let bin = bin();
        let bin = bin.display();
        let mut script = self.agents_script();
        script.push_str(&format!("{bin} --config {} {args}", self.config().display()));
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.name))
            .args(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", &script])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Takes `routewarden snapshot` in the world (with its processes), normalises it ([`snapshots::normalise`])
    /// and compares it with the recording `name` in `agent/tests/data/snapshots/`, failing with a diff when they
    /// differ; with `UPDATE_SNAPSHOTS=1` it (re)writes the recording instead.
    pub fn assert_recorded(&self, name: &str) {
        let (code, out, err) = self.run("snapshot");
        assert_eq!(code, 0, "routewarden snapshot failed: {err}");
        let mut snap: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("snapshot is not JSON ({e}): {out}\nstderr: {err}"));
        snapshots::normalise(&mut snap, &self.volatile_strings());
        snapshots::check_recorded(name, &snap);
    }

    /// Strings that differ between two runs of the same world, with what replaces them in a recording: the world's
    /// temporary directory, the directory of the compiled BPF objects and the world's name (both contain the pid).
    pub fn volatile_strings(&self) -> Vec<(String, String)> {
        let objects = bpf_object("cilium_sock").parent().map(Path::to_path_buf).unwrap_or_default();
        vec![
            (self.dir.path().display().to_string(), "/tmp/WORLD".into()),
            (objects.display().to_string(), "/tmp/BPF-OBJECTS".into()),
            (self.name.clone(), "WORLD".into()),
        ]
    }

    /// Runs `check --output json` and parses the report.
    pub fn check(&self) -> (i32, serde_json::Value) {
        let (code, out, err) = self.run("check --output json");
        let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
        (code, json)
    }

    /// Everything routewarden could change: rules of both backends, nftables, links, addresses, routes, permanent
    /// neighbours, ipsets, tc filters, XDP, pinned maps and cgroup attachments (packet counters zeroed: traffic is
    /// not state). Compared before and after a run to prove it is read-only.
    pub fn state(&self) -> String {
        let mut s = self.ns(
            "{ for t in iptables-legacy-save ip6tables-legacy-save iptables-nft-save ip6tables-nft-save; do \
             $t 2>/dev/null | grep -v '^#'; done; nft list ruleset; ip -d link show; ip -4 addr show; \
             ip -4 route show table all; ip neigh show nud permanent; ipset list -terse; \
             for d in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do tc filter show dev $d ingress; done; } \
             | sed -E 's/\\[[0-9]+:[0-9]+\\]/[0:0]/g; s/packets [0-9]+ bytes [0-9]+/packets 0 bytes 0/g'",
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
        remove_cgroup(&self.cgroup);
        LIVE_WORLDS.lock().unwrap_or_else(|e| e.into_inner()).retain(|n| *n != self.name);
    }
}

/// Removes the cgroup `dir` and those under it, deepest first; the processes of a finished run may take a
/// moment to leave them (a populated cgroup cannot be removed), so each is tried for up to 2 s.
fn remove_cgroup(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path());
            }
        }
    }
    for _ in 0..200 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::sleep(std::time::Duration::from_millis(10)),
            _ => return,
        }
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

/// Runs `f` on a thread that has joined the world's network namespace (the rest of the process stays put).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// A minimal HTTP/1.1 client: sends `request` raw and returns (status, headers, body) or the raw reply.
pub fn http_raw(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// GET `path` with extra header lines; returns (status code, body).
pub fn get(addr: &str, path: &str, headers: &str) -> (u16, String) {
    let reply =
        http_raw(addr, format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n").as_bytes());
    let code = reply.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

/// A `routewarden serve` running in a world, with a test-owned NOTIFY_SOCKET read by a background thread (a
/// socket nobody reads fills up, and the daemon then drops its messages).
pub struct Daemon {
    pub child: std::process::Child,
    notes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Index of the first notification not yet looked at.
    read: std::sync::Mutex<usize>,
    pub addr: String,
    pub ns: String,
}

impl World {
    /// Starts the daemon in the world's network namespace (processes source disabled: the host's pid namespace
    /// holds other tests' fake processes).
    pub fn serve(&mut self, extra: &str) -> Daemon {
        self.serve_with(extra, true)
    }

    /// Like `serve`; with `read_notify` false nobody reads the notify socket (it fills up, as a stuck manager's
    /// would).
    pub fn serve_with(&mut self, extra: &str, read_notify: bool) -> Daemon {
        let sock = self.dir.path().join("notify.sock");
        let _ = std::fs::remove_file(&sock);
        let notify = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
        let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&notes);
        std::thread::spawn(move || {
            if !read_notify {
                // Keep the socket open and unread for the daemon's whole life.
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
            let mut buf = [0u8; 4096];
            loop {
                match notify.recv(&mut buf) {
                    Ok(n) => sink.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                }
            }
        });
        // A world with its own `proc_dir` (see `fake_proc`) reads processes from there.
        let disabled = if extra.starts_with("proc_dir") { "" } else { "disabled_sources = [\"processes\"]\n" };
        self.config_extra = format!("{disabled}{}{extra}", self.config_extra);
        if !extra.contains("[journal]") {
            self.config_extra.push_str("\n[journal]\nenabled = false\n");
        }
        let addr = "127.0.0.1:9977".to_string();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.name));
        if let Some(mounts) = &self.serve_mounts {
            // Each step execs the next, so the child's pid is the daemon's.
            cmd.args(["unshare", "--mount", "--propagation", "private", "sh", "-ec"])
                .arg(format!("{mounts}\nexec \"$@\""))
                .arg("sh");
        }
        let child = cmd
            .args(&self.serve_launcher)
            .arg(bin())
            .arg("--config")
            .arg(self.config())
            .args(["serve", "--listen", &addr])
            .env("NOTIFY_SOCKET", &sock)
            .env("WATCHDOG_USEC", "1000000")
            .env("STATE_DIRECTORY", self.dir.path().join("state"))
            .env_remove("JOURNAL_STREAM")
            .env("ROUTEWARDEN_LOG", "debug")
            .stderr(std::fs::File::create(self.dir.path().join("serve.log")).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, notes, read: std::sync::Mutex::new(0), addr, ns: self.name.clone() }
    }
}

impl World {
    /// A procfs stand-in for the daemon's processes source: one `PID/comm` per name (pids from 100), so a served
    /// world can read processes without the host's pid namespace; returns the `proc_dir = "..."` line that
    /// `serve` takes first in its `extra` to read it (and then does not disable the processes source).
    pub fn fake_proc(&self, names: &[&str]) -> String {
        let proc = self.dir.path().join("proc");
        let _ = std::fs::remove_dir_all(&proc);
        for (i, name) in names.iter().enumerate() {
            let dir = proc.join((100 + i).to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("comm"), format!("{name}\n")).unwrap();
            // Run by root, as the agents are: routewarden counts only those.
            std::fs::write(dir.join("status"), format!("Name:\t{name}\nUid:\t0\t0\t0\t0\n")).unwrap();
            // From where the agents come from: their own executable, in a container (the kubelet in its unit).
            std::os::unix::fs::symlink(format!("/usr/local/bin/{name}"), dir.join("exe")).unwrap();
            let cg = self.agent_cgroup(name);
            let cg = cg.strip_prefix(&self.cgroup).unwrap_or(&cg);
            std::fs::write(dir.join("cgroup"), format!("0::/{}\n", cg.display())).unwrap();
        }
        std::fs::create_dir_all(&proc).unwrap();
        format!("proc_dir = \"{}\"\n", proc.display())
    }
}

impl Daemon {
    /// Notifications that arrive within `d` (after those already looked at).
    pub fn notifications_for(&self, d: std::time::Duration) -> Vec<String> {
        std::thread::sleep(d);
        let notes = self.notes.lock().unwrap();
        let mut read = self.read.lock().unwrap();
        let out = notes[*read..].to_vec();
        *read = notes.len();
        out
    }

    /// Waits (up to 15 s) for a notification containing `want`; returns those seen until then.
    pub fn wait_notify(&self, want: &str) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            {
                let notes = self.notes.lock().unwrap();
                let mut read = self.read.lock().unwrap();
                if let Some(i) = notes[*read..].iter().position(|m| m.contains(want)) {
                    let out = notes[*read..*read + i + 1].to_vec();
                    *read += i + 1;
                    return out;
                }
                assert!(std::time::Instant::now() < deadline, "no notify message {want:?}; seen {:?}", &notes[*read..]);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The daemon's log so far.
    pub fn log(&self, w: &World) -> String {
        std::fs::read_to_string(w.dir.path().join("serve.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let (addr, path) = (self.addr.clone(), path.to_string());
        in_netns(&self.ns, move || get(&addr, &path, ""))
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One journal entry to write: (unix µs, unit or "kernel", MESSAGE bytes).
pub type JournalLine<'a> = (u64, &'a str, &'a [u8]);

/// Whether journalctl and systemd-journal-remote are installed; prints a skip reason when not, and fails under
/// CI=true.
pub fn journal_tools() -> bool {
    tool("journalctl") && tool("/lib/systemd/systemd-journal-remote")
}

/// Writes a real journal file at `path` (must end in `.journal`) with systemd-journal-remote.
pub fn journal_file(path: &Path, entries: &[JournalLine]) {
    let records: Vec<JournalRecord> = entries
        .iter()
        .map(|&(usec, unit, message)| JournalRecord { usec, unit, fields: Vec::new(), message })
        .collect();
    journal_records(path, &records);
}

/// One journal entry with more fields than [`JournalLine`]: `fields` are (name, value) pairs written as given
/// (`_PID`, `CONTAINER_NAME`, ...).
pub struct JournalRecord<'a> {
    pub usec: u64,
    /// `_SYSTEMD_UNIT`, or "kernel" for a kernel message.
    pub unit: &'a str,
    pub fields: Vec<(&'a str, String)>,
    pub message: &'a [u8],
}

/// Writes a real journal file at `path` (must end in `.journal`) with systemd-journal-remote.
pub fn journal_records(path: &Path, records: &[JournalRecord]) {
    let mut export = Vec::new();
    for (i, r) in records.iter().enumerate() {
        // One boot: the monotonic clock follows the realtime one, so files written later (a journal that grows
        // while followed) sort after the earlier ones, as on a node; `i` keeps equal times apart.
        let mono = r.usec.saturating_sub(1_700_000_000_000_000) + i as u64;
        export.extend(format!("__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={mono}\n", r.usec).as_bytes());
        export.extend(b"_BOOT_ID=0123456789abcdef0123456789abcdef\nPRIORITY=6\n");
        if r.unit == "kernel" {
            export.extend(b"_TRANSPORT=kernel\nSYSLOG_IDENTIFIER=kernel\n");
        } else {
            export.extend(format!("_SYSTEMD_UNIT={}\n_TRANSPORT=stdout\n", r.unit).as_bytes());
        }
        for (name, value) in &r.fields {
            export.extend(format!("{name}={value}\n").as_bytes());
        }
        // The binary field form carries any bytes, newlines included.
        export.extend(b"MESSAGE\n");
        export.extend((r.message.len() as u64).to_le_bytes());
        export.extend(r.message);
        export.extend(b"\n\n");
    }
    let mut child = Command::new("/lib/systemd/systemd-journal-remote")
        .args(["--split-mode=none", "-o"])
        .arg(path)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &export).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "systemd-journal-remote: {}", String::from_utf8_lossy(&out.stderr));
}
