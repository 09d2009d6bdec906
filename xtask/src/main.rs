//! xtask: routewarden's build system. `cargo xtask test` runs every check and test, `cargo xtask demo` shows a
//! real finding in a throwaway network namespace, `cargo xtask bench` measures the detector at scale.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

mod image;
mod release;
mod sysext;
#[cfg(test)]
mod tidy;

/// Debian packages the privileged tests, the demo and the benchmarks need.
const PACKAGES: &[&str] = &[
    "iptables",
    "nftables",
    "iproute2",
    "ipset",
    "bpftool",
    "clang",
    "llvm",
    "libbpf-dev",
    "linux-libc-dev",
    "util-linux",
    "systemd",
    "systemd-journal-remote",
    "prometheus",
    "curl",
    "kubectl",
    "mmdebstrap",
    "podman",
    "runc",
    "squashfs-tools",
];

/// A tool each package provides, to tell whether it is installed.
const TOOLS: &[&str] = &[
    "iptables-nft-restore",
    "nft",
    "ip",
    "ipset",
    "bpftool",
    "clang",
    "llc",
    "nsenter",
    "systemd-analyze",
    "promtool",
    "curl",
    "/lib/systemd/systemd-journal-remote",
    "kubectl",
    "mmdebstrap",
    "podman",
    "runc",
    "mksquashfs",
];

const HELP: &str = "cargo xtask <command>

Commands:
  test    install missing system packages (as root), then cargo fmt --check, clippy -D warnings, build routewarden,
          the unit and unprivileged integration tests, the system tests (tests/) with ROUTEWARDEN_BIN set, and
          5 s of every fuzzing target (installs cargo-afl when missing)
  demo    build routewarden, create a namespace where kube-proxy and Cilium socket-LB conflict, run `check` in it
  bench   [detector|daemon] [ARGS]: time check against iptables-save on generated 1k/10k/50k-Service rulesets,
          and the daemon's memory, idle CPU and HTTP throughput (numbers go to BENCHMARKS.md)
  dist    build the release binary, man page, completions, license list, .deb and .rpm into target/dist/
  image   [--twice]: the container image (OCI archive) from the release binary and a Debian 13 root built with
          mmdebstrap, into target/image/; --twice builds it again and fails unless the digests are equal
  sysext  [--twice]: the systemd-sysext image (squashfs) from the release binary, units and default configuration,
          into target/sysext/routewarden-<version>-x86-64.raw; --twice builds it again and fails unless identical
  release [--image]: dist, then the binary tarball, the sysext image, a CycloneDX SBOM (cargo-cyclonedx, pinned)
          and SHA256SUMS (with the OCI archive when --image) into target/release-artefacts/, checked: the sums
          match and the tarball's binary runs
  package-test  release (dist and the artefacts), then lintian and rpmlint, and install/upgrade/purge the .deb in a debootstrapped Debian
          root and the .rpm into an rpm --root; the sysext image merged under systemd-nspawn --boot (needs root and
          the Debian mirror)
  deps    install the Debian packages the tests need (apt-get; needs root)
  fuzz    TARGET [--secs N]: build fuzz/ with cargo-afl and run afl-fuzz on one target from its seeds for N seconds
          (default 60; TARGET `all` runs each); fails on any crash or hang (needs `cargo install cargo-afl`)";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("demo") => demo(),
        Some("bench") => bench(&args[1..]),
        Some("deps") => deps(true),
        Some("dist") => dist().map(|_| ()),
        Some("image") => image::image(&args[1..]).map(|_| ()),
        Some("release") => release::release(&args[1..]).map(|_| ()),
        Some("sysext") => sysext::sysext(&args[1..]).map(|_| ()),
        Some("package-test") => package_test(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            println!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{HELP}"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    run_quiet(cmd)
}

fn run_quiet(cmd: &mut Command) -> Result<()> {
    let status = cmd.current_dir(root()).status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn sh(script: &str) -> Result<()> {
    run_quiet(Command::new("sh").args(["-c", script]))
}

fn have(tool: &str) -> bool {
    if tool.starts_with('/') {
        return Path::new(tool).exists();
    }
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} || test -x /usr/sbin/{tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n")
}

/// Installs the packages when a tool is missing; `always` forces apt-get even when all tools are there.
fn deps(always: bool) -> Result<()> {
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() && !always {
        return Ok(());
    }
    if !is_root() {
        bail!("missing tools {missing:?}; run as root (or apt-get install {}) first", PACKAGES.join(" "));
    }
    sh(&format!(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {} >/dev/null",
        PACKAGES.join(" ")
    ))
}

fn test() -> Result<()> {
    if is_root() {
        deps(false)?;
    } else {
        eprintln!("not root: privileged system tests will skip (CI=true makes them fail)");
    }
    run(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
    // --workspace includes the system tests crate, which is not a default member.
    run(Command::new("cargo").args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(Command::new("cargo").args(["build", "-p", "routewarden", "--bin", "routewarden"]))?;
    let bin = debug_binary()?;
    // Unit tests, the agent crate's unprivileged integration tests, benches in test mode, xtask.
    run(Command::new("cargo").args(["test", "--workspace", "--all-targets", "--exclude", SYSTEM_TESTS]))?;
    // The container image, built twice (the reproducibility check) and once per run for the image tests.
    let mut system = Command::new("cargo");
    if is_root() {
        system.env(image::IMAGE_ENV, image::image(&["--twice".to_string()])?.archive);
    }
    // The privileged system tests, against the binary just built.
    let tested = run(system.args(["test", "-p", SYSTEM_TESTS, "--all-targets"]).env("ROUTEWARDEN_BIN", &bin));
    if is_root() {
        // The image tests load the image under this name; remove it (their containers remove themselves).
        let name = format!("{}:{}", image::REF_NAME, env!("CARGO_PKG_VERSION"));
        let _ = Command::new("podman").args(["rmi", "-f", &name]).output();
    }
    tested?;
    verify_units()?;
    // A short run of every fuzzing target: a crash or hang fails, naming the input AFL kept.
    ensure_cargo_afl()?;
    fuzz(&["all".to_string(), "--secs".to_string(), FUZZ_CI_SECS.to_string()])
}

/// Seconds each fuzzing target runs in `cargo xtask test`.
const FUZZ_CI_SECS: u64 = 5;

/// The cargo-afl `cargo xtask fuzz` is tested with.
const CARGO_AFL: &str = "0.18.2";

/// Installs cargo-afl (from crates.io, with cargo) and builds its AFL++ when `cargo afl` is missing.
fn ensure_cargo_afl() -> Result<()> {
    let have = Command::new("cargo").args(["afl", "--version"]).output().is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("cargo-afl is missing: installing cargo-afl {CARGO_AFL} (its build builds AFL++ too)");
        run(Command::new("cargo").args(["install", "cargo-afl", "--locked", "--version", CARGO_AFL]))?;
    }
    // cargo-afl 0.18 builds its AFL++ runtime when it is installed; an install without one builds it here. Asked
    // again, it refuses with "already built", which is what a ready machine answers.
    let out = Command::new("cargo").args(["afl", "config", "--build"]).output().context("running cargo afl config")?;
    let said = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !said.contains("already built") {
        bail!("cargo afl config --build failed: {said}");
    }
    Ok(())
}

/// The package of the privileged system tests (`tests/`); it reads the binary under test from ROUTEWARDEN_BIN.
const SYSTEM_TESTS: &str = "routewarden-system-tests";

/// `systemd-analyze verify` on every unit (with ExecStart pointed at the built binary), failing on any output:
/// it exits 0 on unknown keys. Prints the offline security exposure.
fn verify_units() -> Result<()> {
    let bin = debug_binary()?;
    let tmp = std::env::temp_dir().join(format!("routewarden-units-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    for entry in std::fs::read_dir(root().join("systemd"))? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !(name.ends_with(".service") || name.ends_with(".socket") || name.ends_with(".conf")) {
            continue;
        }
        let text = std::fs::read_to_string(&path)?.replace("/usr/bin/routewarden", &bin.to_string_lossy());
        std::fs::write(tmp.join(&name), text)?;
    }
    // Verified once every unit is in place: the service requires its socket unit, found beside it.
    let mut names: Vec<String> = std::fs::read_dir(&tmp)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".service") || n.ends_with(".socket"))
        .collect();
    names.sort();
    for name in names {
        // A template is verified through an instance, looked up in the working directory.
        let target = match name.split_once("@.") {
            Some((base, ext)) => format!("{base}@kube\\x2dproxy.{ext}"),
            None => tmp.join(&name).to_string_lossy().into_owned(),
        };
        let out = Command::new("systemd-analyze").arg("verify").arg(&target).current_dir(&tmp).output()?;
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if !out.status.success() || !said.trim().is_empty() {
            bail!("systemd-analyze verify {name}: {said}");
        }
        if !name.ends_with(".service") {
            // The exposure is a service's sandbox; a socket unit runs nothing.
            continue;
        }
        let sec = Command::new("systemd-analyze").args(["security", "--offline=yes"]).arg(tmp.join(&name)).output()?;
        let text = String::from_utf8_lossy(&sec.stdout);
        if let Some(line) = text.lines().find(|l| l.contains("Overall exposure level")) {
            eprintln!("{name}: {}", line.trim_start_matches(|c: char| !c.is_alphanumeric()));
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// `cargo metadata --format-version 1 ARGS...` as JSON.
fn cargo_metadata(args: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1"])
        .args(args)
        .current_dir(root())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).context("parsing cargo metadata")
}

/// The compiled `routewarden` binary of the dev profile, wherever cargo puts its target directory.
fn debug_binary() -> Result<PathBuf> {
    let meta = cargo_metadata(&["--no-deps"])?;
    let target = meta["target_directory"].as_str().context("cargo metadata has no target_directory")?;
    Ok(Path::new(target).join("debug/routewarden"))
}

/// Builds a namespace where kube-proxy's rules and Cilium socket-LB conflict and runs `check` in it; fails unless
/// `check` reports the conflict (exit code 2, `service-routing.conflict`).
fn demo() -> Result<()> {
    if !is_root() {
        bail!("the demo creates a network namespace, BPF programs and a cgroup: run it as root");
    }
    let src = root().join("tests/bpf/cilium_sock.c");
    let fixture = root().join("agent/tests/data/fixtures/kube-proxy-iptables-TestOverallIPTablesRules.txt");
    for input in [&fixture, &src] {
        if !input.is_file() {
            bail!(
                "demo input {} is missing: it is part of the repository, restore it (git checkout -- .)",
                input.display()
            );
        }
    }
    deps(false)?;
    run(Command::new("cargo").args(["build", "--quiet", "-p", "routewarden", "--bin", "routewarden"]))?;
    let bin = debug_binary()?;
    let tmp = std::env::temp_dir().join("routewarden-demo");
    let script = format!(
        r#"set -e
NS=rw-demo; BPF=/sys/fs/bpf/rw-demo; CG=/sys/fs/cgroup/unified/rw-demo; T={tmp}
cleanup() {{ bpftool cgroup detach $CG connect4 pinned $BPF/sock 2>/dev/null || true; rm -rf $BPF; rmdir $CG 2>/dev/null || true; ip netns del $NS 2>/dev/null || true; }}
cleanup; trap cleanup EXIT
mkdir -p $T $CG
rm -f $T/check.out $T/check.rc
grep -qs ' /sys/fs/bpf bpf' /proc/mounts || mount -t bpf bpf /sys/fs/bpf
mkdir -p $BPF
echo '# 1. a network namespace with kube-proxy rules (iptables mode, nft backend) and Cilium links'
ip netns add $NS
sed 's/ -m nfacct --nfacct-name [a-z_]*//' {fixture} > $T/rules.txt
nsenter --net=/run/netns/$NS iptables-nft-restore < $T/rules.txt
nsenter --net=/run/netns/$NS ip link add cilium_host type veth peer name cilium_net
echo '# 2. a program named like Cilium socket-LB attached to a cgroup (stands in for the cgroup v2 root)'
clang -O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu -c {src} -o $T/sock.o
bpftool prog load $T/sock.o $BPF/sock type cgroup/connect4
bpftool cgroup attach $CG connect4 pinned $BPF/sock
printf 'bpffs = "%s"\ncgroup_roots = ["%s"]\n' $BPF $CG > $T/config.toml
echo '# 3. routewarden check, with a process named kube-proxy running'
echo
set +e
nsenter --net=/run/netns/$NS unshare --pid --fork --mount-proc sh -c "cp /bin/sleep $T/kube-proxy; $T/kube-proxy 60 & sleep 0.2; {bin} --config $T/config.toml check" > $T/check.out 2>&1
rc=$?
echo $rc > $T/check.rc
cat $T/check.out
echo "(exit code $rc)"
"#,
        tmp = tmp.display(),
        fixture = fixture.display(),
        src = src.display(),
        bin = bin.display()
    );
    let status = Command::new("sh").args(["-c", &script]).current_dir(root()).status().context("starting sh")?;
    if !status.success() {
        bail!("demo failed: setting up the namespace failed ({status}); the failing step is printed above");
    }
    let out = std::fs::read_to_string(tmp.join("check.out")).context("reading the output of check")?;
    let rc = std::fs::read_to_string(tmp.join("check.rc")).context("reading the exit code of check")?;
    let rc = rc.trim();
    if rc != "2" || !out.contains("service-routing.conflict") {
        bail!(
            "demo failed: `routewarden check` should exit 2 with a CRITICAL service-routing.conflict finding; it exited {rc}{}",
            if out.contains("service-routing.conflict") { "" } else { " without reporting service-routing.conflict" }
        );
    }
    eprintln!("demo ok: check reported the conflict and exited 2");
    Ok(())
}

/// `cargo xtask bench [detector|daemon] [ARGS...]`: runs the benchmark binaries (both by default), after
/// installing what they need (wrk, GNU time, curl).
fn bench(args: &[String]) -> Result<()> {
    if !is_root() {
        bail!("the benchmarks create network namespaces: run them as root");
    }
    deps(false)?;
    if !have("wrk") || !Path::new("/usr/bin/time").exists() || !have("curl") {
        sh("apt-get install -y -qq --no-install-recommends wrk time curl >/dev/null")?;
    }
    let (which, rest): (Vec<&str>, &[String]) = match args.first().map(String::as_str) {
        Some(b @ ("detector" | "daemon")) => (vec![b], &args[1..]),
        _ => (vec!["detector", "daemon"], args),
    };
    for b in which {
        let mut cmd = Command::new("cargo");
        cmd.args(["bench", "--bench", b, "--"]).args(rest);
        run(&mut cmd)?;
    }
    Ok(())
}

/// Installs a cargo subcommand from crates.io when it is missing.
fn cargo_tool(sub: &str, krate: &str) -> Result<()> {
    let ok = Command::new("cargo").args([sub, "--version"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        run(Command::new("cargo").args(["install", "--locked", krate]))?;
    }
    Ok(())
}

/// One line per third-party crate in the dependency graph: name, version, license.
fn third_party_licenses() -> Result<String> {
    let meta = cargo_metadata(&["--locked"])?;
    let members: Vec<&str> =
        meta["workspace_members"].as_array().map(|m| m.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    let mut lines: Vec<String> = meta["packages"]
        .as_array()
        .map(|p| p.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|p| !members.contains(&p["id"].as_str().unwrap_or("")))
        .map(|p| {
            format!(
                "{} {}: {}",
                p["name"].as_str().unwrap_or("?"),
                p["version"].as_str().unwrap_or("?"),
                p["license"].as_str().unwrap_or("see the crate's license file")
            )
        })
        .collect();
    lines.sort();
    lines.dedup();
    Ok(format!(
        "Third-party crates compiled into routewarden (or used to build it), with their licenses.\n\n{}\n",
        lines.join("\n")
    ))
}

/// The target the release binary is built for: glibc 2.17 (cargo-zigbuild's suffix), so the packages install on
/// RHEL 7/8, Amazon Linux 2, Ubuntu 18.04/20.04 and Debian 10/11 as well as on current releases.
const GLIBC_FLOOR: &str = "2.17";
const TRIPLE: &str = "x86_64-unknown-linux-gnu";
/// The build tools, pinned (cargo-zigbuild and zig come from PyPI; zig provides the glibc 2.17 stubs).
const PIP_TOOLS: &[&str] = &["ziglang==0.17.1", "cargo-zigbuild==0.24.1"];

/// Installs cargo-zigbuild and zig from PyPI when missing; returns the PATH under which `cargo zigbuild` runs
/// (pip's scripts directory first: it need not be on the caller's PATH, as in a fresh CI shell).
fn zigbuild() -> Result<std::ffi::OsString> {
    let scripts = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
        .context("running python3 (needed for cargo-zigbuild and zig from PyPI)")?;
    let scripts = String::from_utf8_lossy(&scripts.stdout).trim().to_string();
    let mut dirs = vec![PathBuf::from(&scripts)];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    let path = std::env::join_paths(dirs).context("joining PATH")?;
    let ok = Command::new("cargo")
        .args(["zigbuild", "--version"])
        .env("PATH", &path)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        run(Command::new("python3").args(["-m", "pip", "install", "--quiet"]).args(PIP_TOOLS))?;
    }
    Ok(path)
}

/// The GLIBC_x.y symbol versions a binary needs, highest last.
fn glibc_versions(binary: &Path) -> Result<Vec<(u32, u32)>> {
    let out = Command::new("objdump").arg("-T").arg(binary).output().context("running objdump -T")?;
    if !out.status.success() {
        bail!("objdump -T {} failed: {}", binary.display(), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut versions: Vec<(u32, u32)> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.');
            Some((parts.next()?.parse().ok()?, parts.next().unwrap_or("0").parse().ok()?))
        })
        .collect();
    versions.sort_unstable();
    versions.dedup();
    Ok(versions)
}

/// The release binary (glibc 2.17 floor, checked), built with cargo-zigbuild: what `dist` packages and `image`
/// puts in the container image.
pub(crate) fn release_binary() -> Result<PathBuf> {
    let path = zigbuild()?;
    run(Command::new("cargo")
        .env("PATH", &path)
        .args(["zigbuild", "--release", "--locked", "-p", "routewarden", "--target"])
        .arg(format!("{TRIPLE}.{GLIBC_FLOOR}")))?;
    let binary = dist_binary();
    let floor = GLIBC_FLOOR.split_once('.').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    let versions = glibc_versions(&binary)?;
    match (versions.last(), floor) {
        (Some(&(major, minor)), Some(floor)) if (major, minor) > floor => {
            bail!("{} needs GLIBC_{major}.{minor}, above the floor {GLIBC_FLOOR}", binary.display())
        }
        (None, _) => bail!("{} has no GLIBC symbol versions: not a glibc binary?", binary.display()),
        (Some(&(major, minor)), _) => eprintln!("release binary: highest symbol GLIBC_{major}.{minor}"),
    }
    Ok(binary)
}

/// Where `release_binary` leaves the binary.
fn dist_binary() -> PathBuf {
    root().join(format!("target/{TRIPLE}/release/routewarden"))
}

/// `cargo xtask dist`: release binary (glibc 2.17 floor, checked), generated assets, .deb, .rpm and SHA256SUMS in
/// target/dist/.
fn dist() -> Result<PathBuf> {
    let dist = root().join("target/dist");
    let assets = dist.join("assets");
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(assets.join("man"))?;
    cargo_tool("deb", "cargo-deb@3.8.0")?;
    cargo_tool("generate-rpm", "cargo-generate-rpm@0.21.1")?;
    let binary = release_binary()?;
    run(Command::new(&binary).arg("generate-assets").arg(&assets))?;
    // Man pages: cargo-deb compresses them itself; the rpm gets compressed copies.
    sh(&format!(
        "cd {a} && mv routewarden*.8 routewarden*.7 man/ && for f in man/*.8 man/*.7; do gzip -9nc $f > $f.gz; done",
        a = assets.display()
    ))?;
    std::fs::write(assets.join("THIRD-PARTY-LICENSES.txt"), third_party_licenses()?)?;
    run(Command::new("cargo")
        .args(["deb", "-p", "routewarden", "--no-build", "--target", TRIPLE, "--output"])
        .arg(&dist))?;
    // cargo-generate-rpm does not strip; the release profile already does. gzip, not zstd: rpm on RHEL 7 and
    // Amazon Linux 2 cannot read a zstd payload.
    run(Command::new("cargo")
        .args(["generate-rpm", "-p", "agent", "--target", TRIPLE, "--payload-compress", "gzip", "--output"])
        .arg(&dist))?;
    sh(&format!("cd {} && sha256sum *.deb *.rpm > SHA256SUMS && cat SHA256SUMS", dist.display()))?;
    Ok(dist)
}

/// A debootstrapped Debian root for SUITE, cached as a tar under target/ (CI starts without it: one download).
fn debian_root(suite: &str, include: &str) -> Result<PathBuf> {
    let tar = root().join(format!("target/debian-{suite}.tar"));
    if !tar.exists() {
        let dir = root().join(format!("target/debian-{suite}"));
        let include = if include.is_empty() { String::new() } else { format!("--include={include}") };
        sh(&format!(
            "rm -rf {d} && debootstrap --variant=minbase {include} {suite} {d} http://deb.debian.org/debian >/dev/null \
             && tar -C {d} -cf {t}.part . && mv {t}.part {t} && rm -rf {d}",
            d = dir.display(),
            t = tar.display()
        ))?;
    }
    Ok(tar)
}

/// Lints both packages, installs, upgrades and purges the .deb in a Debian 12 root (chroot) and installs it in a
/// Debian 11 root (the glibc floor), boots Debian 12 under systemd-nspawn to test the unit for real
/// (`packaging/test/nspawn.sh`) and the systemd-sysext image (`packaging/test/sysext.sh`), and installs the .rpm
/// into an rpm --root.
fn package_test() -> Result<()> {
    if !is_root() {
        bail!("the package test uses debootstrap, chroot and systemd-nspawn: run it as root");
    }
    if !have("lintian") || !have("rpmlint") || !have("debootstrap") || !have("systemd-nspawn") || !have("mksquashfs") {
        sh("apt-get install -y -qq --no-install-recommends lintian rpmlint rpm debootstrap systemd-container \
            squashfs-tools >/dev/null")?;
    }
    // The release artefacts (which build dist's .deb and .rpm), checked against their SHA256SUMS.
    release::release(&[])?;
    let dist = root().join("target/dist");
    sh(&format!(
        r#"set -e
cd {dist}
echo '# lintian (errors fail; warnings are listed in README)'
lintian --fail-on error --suppress-tags-from-file {root}/packaging/lintian-suppressions *.deb
echo '# rpm metadata and contents'
rpm -qpi *.rpm
rpm -qpl *.rpm
rpm -qp --scripts *.rpm | head -30
rpm -qp --qf '%{{PAYLOADCOMPRESSOR}}\n' *.rpm | grep -qx gzip || {{ echo 'the rpm payload is not gzip'; exit 1; }}
echo '# the packages declare the glibc floor the binary was checked against'
test "$(dpkg-deb -f *.deb Depends)" = "libc6 (>= {floor})" || {{ echo "deb Depends: $(dpkg-deb -f *.deb Depends)"; exit 1; }}
rpm -qpR *.rpm
rpm -qpR *.rpm | sed -n 's/.*(GLIBC_\([0-9.]*\)).*/\1/p' | sort -V | tail -1 | grep -qx '{floor}' || {{ echo 'rpm requires a glibc above the floor'; exit 1; }}
echo '# rpmlint (errors fail; accepted warnings are filtered in packaging/rpmlintrc with the reason)'
rpmlint --strict -r {root}/packaging/rpmlintrc *.rpm
"#,
        dist = dist.display(),
        root = root().display(),
        floor = GLIBC_FLOOR
    ))?;

    // An older build for the upgrade test: the same binary with a lower revision.
    let old = dist.join("old");
    std::fs::create_dir_all(&old)?;
    run(Command::new("cargo")
        .args(["deb", "-p", "routewarden", "--no-build", "--target", TRIPLE, "--deb-revision", "0", "--output"])
        .arg(&old))?;

    let bookworm = debian_root("bookworm", "systemd,systemd-sysv,dbus,iptables,nftables,curl,iproute2,procps")?;
    let chroot = root().join("target/debian-root");
    sh(&format!(
        r##"set -e
C={c}
rm -rf $C && mkdir -p $C && tar -C $C -xf {t}
cp {dist}/*.deb $C/tmp/new.deb && cp {dist}/old/*.deb $C/tmp/old.deb
trap 'umount $C/proc 2>/dev/null || true' EXIT
mount -t proc proc $C/proc
inroot() {{ chroot $C /bin/sh -c "$1"; }}
echo '# Debian 12 chroot: install the older build'
inroot 'dpkg -i /tmp/old.deb'
inroot 'test -x /usr/bin/routewarden && test -f /lib/systemd/system/routewarden.service && test -f /usr/share/man/man8/routewarden.8.gz'
inroot 'for p in check snapshot serve wait scan-journal config; do test -f /usr/share/man/man8/routewarden-$p.8.gz || {{ echo "missing man page routewarden-$p(8)"; exit 1; }}; done'
inroot 'test -f /usr/share/man/man7/routewarden-findings.7.gz || {{ echo "missing man page routewarden-findings(7)"; exit 1; }}'
inroot 'test "$(stat -c %a /usr/bin/routewarden)" = 755 && test "$(stat -c %U /usr/bin/routewarden)" = root'
inroot 'routewarden --version'
echo '# a local change to the conffile and some state'
inroot 'echo "# local change" >> /etc/routewarden/config.toml && mkdir -p /var/lib/routewarden && echo cursor > /var/lib/routewarden/journal.cursor'
echo '# upgrade'
inroot 'dpkg -i --force-confold /tmp/new.deb'
inroot 'grep -q "# local change" /etc/routewarden/config.toml' || {{ echo 'the upgrade lost the local conffile change'; exit 1; }}
inroot 'test "$(cat /var/lib/routewarden/journal.cursor)" = cursor' || {{ echo 'the upgrade lost the journal cursor'; exit 1; }}
inroot 'routewarden --version && routewarden config validate'
inroot 'routewarden check --output json > /tmp/report.json; test $? -le 3 && grep -q schema_version /tmp/report.json'
echo '# remove keeps the configuration, purge removes configuration and state'
inroot 'dpkg -r routewarden && test -f /etc/routewarden/config.toml && test ! -e /usr/bin/routewarden'
inroot 'dpkg --purge routewarden && test ! -e /etc/routewarden && test ! -e /var/lib/routewarden'
echo 'deb install, upgrade and purge: ok'
"##,
        c = chroot.display(),
        t = bookworm.display(),
        dist = dist.display()
    ))?;

    // Debian 11 has glibc 2.31: the package installs and the binary runs there (it would not with a 2.34 floor).
    let bullseye = debian_root("bullseye", "")?;
    sh(&format!(
        r##"set -e
C={c}
rm -rf $C && mkdir -p $C && tar -C $C -xf {t}
cp {dist}/*.deb $C/tmp/new.deb
trap 'umount $C/proc 2>/dev/null || true' EXIT
mount -t proc proc $C/proc
inroot() {{ chroot $C /bin/sh -c "$1"; }}
echo "# Debian 11 chroot (glibc $(inroot 'dpkg-query -W -f=\${{Version}} libc6'))"
inroot 'dpkg -i /tmp/new.deb'
inroot 'routewarden --version && routewarden config validate'
inroot 'routewarden check --output json > /tmp/report.json; test $? -le 3 && grep -q schema_version /tmp/report.json'
echo 'deb install on Debian 11: ok'
"##,
        c = root().join("target/debian-bullseye-root").display(),
        t = bullseye.display(),
        dist = dist.display()
    ))?;

    let work = root().join("target/nspawn");
    std::fs::create_dir_all(&work)?;
    let deb = |dir: &Path| -> Result<PathBuf> {
        std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .with_context(|| format!("no .deb in {}", dir.display()))
    };
    run(Command::new(root().join("packaging/test/nspawn.sh"))
        .arg(&bookworm)
        .arg(deb(&dist)?)
        .arg(deb(&old)?)
        .arg(&work))?;
    // The systemd-sysext image, built twice (reproducible), merged and run under the same Debian 12 systemd.
    let sysext = sysext::build_image(&dist_binary(), true)?;
    run(Command::new(root().join("packaging/test/sysext.sh"))
        .arg(&bookworm)
        .arg(&sysext.raw)
        .arg(env!("CARGO_PKG_VERSION"))
        .arg(&work))?;
    sh(&format!(
        r#"set -e
R={dist}/rpmroot
rm -rf $R && mkdir -p $R
rpm --root $R --initdb
rpm --root $R -i --nodeps --noscripts {dist}/*.rpm
test -x $R/usr/bin/routewarden && test -f $R/etc/routewarden/config.toml
rpm --root $R -q --configfiles routewarden | grep -q /etc/routewarden/config.toml
rpm --root $R -V --nodeps routewarden
echo 'rpm install into --root: ok'
$R/usr/bin/routewarden --version
"#,
        dist = dist.display()
    ))?;
    Ok(())
}

/// The fuzzing targets of `fuzz/` (its `src/bin/*.rs`).
fn fuzz_targets() -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("fuzz/src/bin"))
        .context("reading fuzz/src/bin")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rs").map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// `cargo xtask fuzz TARGET [--secs N]`: builds the targets with cargo-afl (stable Rust) and runs afl-fuzz on
/// TARGET from `fuzz/seeds/TARGET` for N seconds; any crash or hang fails, naming the files AFL kept.
fn fuzz(args: &[String]) -> Result<()> {
    let targets = fuzz_targets()?;
    let Some(target) = args.first() else {
        bail!("usage: cargo xtask fuzz TARGET [--secs N]; targets: {}", targets.join(" "))
    };
    let secs: u64 = match args.iter().position(|a| a == "--secs") {
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).context("--secs needs a number of seconds")?,
        None => 60,
    };
    let chosen: Vec<String> = if target == "all" {
        targets.clone()
    } else if targets.contains(target) {
        vec![target.clone()]
    } else {
        bail!("unknown fuzzing target {target:?}; targets: {}", targets.join(" "))
    };
    let manifest = root().join("fuzz/Cargo.toml");
    run(Command::new("cargo").args(["afl", "build", "--release", "--manifest-path"]).arg(&manifest))?;
    let mut failed = Vec::new();
    for t in &chosen {
        let out = root().join("target/fuzz").join(t);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(root().join("target/fuzz")).context("creating target/fuzz")?;
        let bin = root().join("fuzz/target/release").join(t);
        run(Command::new("cargo")
            // A 5 s limit per input: the bounds keep every parser far below it, and a loaded 2-core machine
            // does not turn a slow execution into a false hang.
            .args(["afl", "fuzz", "-t", "5000", "-V", &secs.to_string(), "-i"])
            .arg(root().join("fuzz/seeds").join(t))
            .arg("-o")
            .arg(&out)
            .arg("--")
            .arg(&bin)
            .env("AFL_NO_UI", "1")
            .env("AFL_SKIP_CPUFREQ", "1")
            // Shared cores (other builds, other fuzzers): never refuse to start for want of a free core.
            .env("AFL_NO_AFFINITY", "1")
            .env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1")
            .env("AFL_BENCH_UNTIL_CRASH", "1"))?;
        let stats = std::fs::read_to_string(out.join("default/fuzzer_stats")).unwrap_or_default();
        let stat = |key: &str| {
            stats
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim().to_string()))
        };
        let found = |dir: &str| -> Vec<PathBuf> {
            std::fs::read_dir(out.join("default").join(dir))
                .map(|d| d.flatten().map(|e| e.path()).filter(|p| !p.ends_with("README.txt")).collect())
                .unwrap_or_default()
        };
        let (crashes, hangs) = (found("crashes"), found("hangs"));
        println!(
            "fuzz {t}: {} execs in {secs} s, {} paths, {} crashes, {} hangs",
            stat("execs_done").unwrap_or_default(),
            stat("corpus_count").unwrap_or_default(),
            crashes.len(),
            hangs.len()
        );
        if !crashes.is_empty() || !hangs.is_empty() {
            failed.push(format!("{t}: {:?} {:?}", crashes, hangs));
        }
    }
    if !failed.is_empty() {
        bail!("fuzzing found crashes or hangs:\n{}", failed.join("\n"));
    }
    Ok(())
}
