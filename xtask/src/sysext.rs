//! `cargo xtask sysext`: the systemd-sysext image (`routewarden-<version>-x86-64.raw`, squashfs) from the release
//! binary, the units and the default configuration; reproducible under SOURCE_DATE_EPOCH (docs/install.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{release_binary, root};

/// The extension's name: systemd 252 requires `extension-release.NAME` to match the image's file name without
/// `.raw`, so the image is installed as `routewarden.raw` (or a symlink of that name to the versioned file).
pub(crate) const NAME: &str = "routewarden";
/// systemd's architecture identifier (as `ConditionArchitecture=` spells it) of the release binary.
const ARCH: &str = "x86-64";

/// `usr/lib/extension-release.d/extension-release.routewarden`. `ID=_any`: the binary needs only glibc 2.17 and the
/// kernel, so it fits every host OS, and with `_any` systemd-sysext checks neither SYSEXT_LEVEL nor VERSION_ID
/// (systemd-sysext(8)); Flatcar's sysext-bakery advises against matching by VERSION_ID for the same reason.
/// `ARCHITECTURE` is checked against uname(2). `EXTENSION_RELOAD_MANAGER=1` makes systemd 255+ reload units after
/// a merge (252 ignores it).
fn extension_release(version: &str) -> String {
    format!(
        "ID=_any\nARCHITECTURE={ARCH}\nEXTENSION_RELOAD_MANAGER=1\n\
         NAME=routewarden\nVERSION_ID={version}\nIMAGE_VERSION={version}\n"
    )
}

/// The drop-in that starts the service once the extension is merged: sysext images cannot `systemctl enable`
/// (that writes /etc), so, as Flatcar's sysext-bakery does, the target upholds the unit. An operator opts out by
/// masking the drop-in: `ln -s /dev/null /etc/systemd/system/multi-user.target.d/10-routewarden.conf`.
const UPHOLDS: &str = "# From the routewarden system extension: start routewarden.service with multi-user.target.\n\
                       # Opt out: ln -s /dev/null /etc/systemd/system/multi-user.target.d/10-routewarden.conf\n\
                       [Unit]\nUpholds=routewarden.service\n";

/// A built image and its sha256.
pub(crate) struct Built {
    pub raw: PathBuf,
    pub sha256: String,
}

/// `cargo xtask sysext [--twice]`: builds target/sysext/routewarden-<version>-x86-64.raw; `--twice` builds it
/// again and fails unless both have the same sha256.
pub(crate) fn sysext(args: &[String]) -> Result<Built> {
    let twice = match args {
        [] => false,
        [a] if a == "--twice" => true,
        _ => bail!("usage: cargo xtask sysext [--twice]"),
    };
    need_mksquashfs()?;
    build_image(&release_binary()?, twice)
}

/// The image from a release binary already built (and checked) by `release_binary`.
pub(crate) fn build_image(binary: &Path, twice: bool) -> Result<Built> {
    need_mksquashfs()?;
    let epoch = crate::image::source_date_epoch()?;
    let out = root().join("target/sysext");
    let first = build(binary, epoch, &out.join("a"))?;
    if twice {
        let second = build(binary, epoch, &out.join("b"))?;
        if first.sha256 != second.sha256 {
            bail!("sysext image not reproducible: {} then {}", first.sha256, second.sha256);
        }
        eprintln!("reproducible: both builds give sha256 {}", first.sha256);
        let _ = std::fs::remove_dir_all(out.join("b"));
    }
    let raw = out.join(file_name());
    std::fs::rename(&first.raw, &raw).with_context(|| format!("moving the image to {}", raw.display()))?;
    let _ = std::fs::remove_dir_all(out.join("a"));
    let size = std::fs::metadata(&raw)?.len();
    println!("{} sha256:{} ({:.1} MiB)", raw.display(), first.sha256, size as f64 / 1048576.0);
    Ok(Built { raw, sha256: first.sha256 })
}

/// `routewarden-<version>-x86-64.raw`, the sysext-bakery's naming.
pub(crate) fn file_name() -> String {
    format!("{NAME}-{}-{ARCH}.raw", env!("CARGO_PKG_VERSION"))
}

fn need_mksquashfs() -> Result<()> {
    if !crate::have("mksquashfs") {
        bail!("mksquashfs is missing: apt-get install squashfs-tools (cargo xtask deps installs it)");
    }
    Ok(())
}

/// One build into `dir`: stage the tree, then pack it.
fn build(binary: &Path, epoch: u64, dir: &Path) -> Result<Built> {
    let _ = std::fs::remove_dir_all(dir);
    let tree = dir.join("tree");
    stage(binary, &tree)?;
    let raw = dir.join(file_name());
    pack(&tree, &raw, epoch)?;
    let sha256 = crate::image::sha256(&raw)?.trim_start_matches("sha256:").to_string();
    Ok(Built { raw, sha256 })
}

/// The files of the image under `tree/usr`, each with an explicit mode (the caller's umask must not leak in).
fn stage(binary: &Path, tree: &Path) -> Result<()> {
    let repo = root();
    let version = env!("CARGO_PKG_VERSION");
    let mut files: Vec<(String, Source)> = vec![
        ("usr/bin/routewarden".into(), Source::File(binary.to_path_buf(), 0o755)),
        (format!("usr/lib/extension-release.d/extension-release.{NAME}"), Source::Text(extension_release(version))),
        ("usr/lib/systemd/system/multi-user.target.d/10-routewarden.conf".into(), Source::Text(UPHOLDS.into())),
        // /etc is not part of a system extension: this is the reference copy; without /etc/routewarden/config.toml
        // the daemon runs on its built-in defaults, which this file spells out.
        ("usr/share/routewarden/config.toml".into(), Source::File(repo.join("packaging/config.toml"), 0o644)),
        ("usr/share/licenses/routewarden/LICENSE".into(), Source::File(repo.join("LICENSE"), 0o644)),
        (
            "usr/share/licenses/routewarden/THIRD-PARTY-LICENSES.txt".into(),
            Source::Text(crate::third_party_licenses()?),
        ),
    ];
    // Every unit the packages ship (services, and sockets when there are any), and the example drop-ins.
    for (dir, dest) in [("systemd", "usr/lib/systemd/system"), ("systemd/examples", "usr/share/routewarden/examples")] {
        let mut names: Vec<String> = std::fs::read_dir(repo.join(dir))
            .with_context(|| format!("reading {dir}"))?
            .flatten()
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.starts_with("routewarden") || dir.ends_with("examples"))
            .filter(|n| [".service", ".socket", ".conf"].iter().any(|x| n.ends_with(x)))
            .collect();
        names.sort();
        for n in names {
            files.push((format!("{dest}/{n}"), Source::File(repo.join(dir).join(&n), 0o644)));
        }
    }
    for (rel, src) in files {
        let path = tree.join(&rel);
        let parent = path.parent().context("a staged file has no parent")?;
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        let mode = match src {
            Source::File(from, mode) => {
                std::fs::copy(&from, &path).with_context(|| format!("copying {} to {rel}", from.display()))?;
                mode
            }
            Source::Text(text) => {
                std::fs::write(&path, text).with_context(|| format!("writing {rel}"))?;
                0o644
            }
        };
        set_mode(&path, mode)?;
    }
    // Directories 0755 whatever the umask.
    crate::sh(&format!("find {} -type d -exec chmod 0755 {{}} +", tree.display()))
}

enum Source {
    File(PathBuf, u32),
    Text(String),
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Packs `tree` into a squashfs image. squashfs, not erofs: every kernel with systemd-sysext reads it (erofs came
/// to most distribution kernels later), it is what Flatcar's sysext-bakery builds by default, and Debian 12's
/// squashfs-tools 4.5 packs reproducibly: `-all-time`/`-mkfs-time` set every time to SOURCE_DATE_EPOCH (the
/// variable alone only clamps newer times, so a staged file's older mtime would leak in), `-all-root` the owners, `-no-xattrs` leaves the build machine's labels out; the order is sorted. gzip (the default
/// compressor): every squashfs kernel has it.
pub(crate) fn pack(tree: &Path, raw: &Path, epoch: u64) -> Result<()> {
    let _ = std::fs::remove_file(raw);
    let out = Command::new("mksquashfs")
        .arg(tree)
        .arg(raw)
        .args(["-noappend", "-all-root", "-no-xattrs", "-no-progress", "-quiet", "-comp", "gzip"])
        .args(["-all-time", &epoch.to_string(), "-mkfs-time", &epoch.to_string()])
        // The variable only clamps later times (and squashfs-tools refuses it together with -all-time).
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .context("running mksquashfs (apt-get install squashfs-tools)")?;
    if !out.status.success() {
        bail!(
            "mksquashfs {} failed: {}{}",
            tree.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory under target/ for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = root().join("target/tmp").join(format!("xtask-sysext-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the scratch directory");
        dir
    }

    /// mksquashfs present, or skip with the reason; under CI=true a missing tool fails.
    fn mksquashfs_or_skip() -> bool {
        if crate::have("mksquashfs") {
            return true;
        }
        assert!(std::env::var("CI").is_err(), "CI=true and mksquashfs is missing (squashfs-tools)");
        eprintln!("skipped: mksquashfs is missing (apt-get install squashfs-tools)");
        false
    }

    /// The same inputs give the same image, whatever the staged files' times and the umask: the packing is
    /// reproducible (the whole `cargo xtask sysext --twice` does this with the release binary).
    #[test]
    fn two_packs_of_the_same_tree_are_identical() {
        if !mksquashfs_or_skip() {
            return;
        }
        let dir = scratch("twice");
        // Any executable stands for the binary here: this test is about the packing, not the program.
        let binary = dir.join("binary");
        std::fs::copy("/bin/true", &binary).expect("copying /bin/true");
        stage(&binary, &dir.join("t1")).expect("staging once");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        stage(&binary, &dir.join("t2")).expect("staging again");
        crate::sh(&format!("touch -d @1 {}/t2/usr/bin/routewarden", dir.display())).expect("touch");
        pack(&dir.join("t1"), &dir.join("a.raw"), 1_700_000_000).expect("packing once");
        pack(&dir.join("t2"), &dir.join("b.raw"), 1_700_000_000).expect("packing again");
        let a = crate::image::sha256(&dir.join("a.raw")).expect("sha256 a");
        let b = crate::image::sha256(&dir.join("b.raw")).expect("sha256 b");
        assert_eq!(a, b, "two packs of the same files differ");
        // ... and a different SOURCE_DATE_EPOCH gives a different image: the epoch is what the times come from.
        pack(&dir.join("t1"), &dir.join("c.raw"), 1_700_000_001).expect("packing with another epoch");
        let c = crate::image::sha256(&dir.join("c.raw")).expect("sha256 c");
        assert_ne!(a, c, "SOURCE_DATE_EPOCH does not reach the image");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What systemd-sysext reads is in the image, owned by root, under /usr only, with the modes it needs.
    #[test]
    fn the_image_holds_usr_only_with_the_extension_release() {
        if !mksquashfs_or_skip() {
            return;
        }
        let dir = scratch("contents");
        let binary = dir.join("binary");
        std::fs::copy("/bin/true", &binary).expect("copying /bin/true");
        stage(&binary, &dir.join("t")).expect("staging");
        pack(&dir.join("t"), &dir.join("x.raw"), 1_700_000_000).expect("packing");
        let out = Command::new("unsquashfs").arg("-lln").arg(dir.join("x.raw")).output().expect("unsquashfs -lln");
        assert!(out.status.success(), "unsquashfs failed: {}", String::from_utf8_lossy(&out.stderr));
        let listing = String::from_utf8_lossy(&out.stdout);
        let entries: Vec<(&str, &str, &str)> = listing
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let path = f.last()?.strip_prefix("squashfs-root")?;
                Some((f[0], f[1], path))
            })
            .filter(|(_, _, p)| !p.is_empty())
            .collect();
        for (mode, owner, path) in &entries {
            assert_eq!(*owner, "0/0", "{path} is owned by {owner}, not root");
            assert!(path.starts_with("/usr"), "{path} is outside /usr: systemd-sysext would ignore it");
            if path.ends_with(".service") || path.ends_with(".conf") {
                assert_eq!(*mode, "-rw-r--r--", "{path} has mode {mode}");
            }
        }
        let find = |p: &str| entries.iter().find(|e| e.2 == p).map(|e| e.0);
        assert_eq!(find("/usr/bin/routewarden"), Some("-rwxr-xr-x"));
        for p in [
            "/usr/lib/systemd/system/routewarden.service",
            "/usr/lib/systemd/system/routewarden-wait@.service",
            "/usr/lib/systemd/system/multi-user.target.d/10-routewarden.conf",
            "/usr/share/routewarden/config.toml",
            "/usr/share/licenses/routewarden/LICENSE",
            "/usr/share/licenses/routewarden/THIRD-PARTY-LICENSES.txt",
        ] {
            assert!(find(p).is_some(), "{p} is missing from the image:\n{listing}");
        }
        let release = std::fs::read_to_string(dir.join("t/usr/lib/extension-release.d/extension-release.routewarden"))
            .expect("reading the staged extension-release");
        assert!(release.lines().any(|l| l == "ID=_any"), "{release}");
        assert!(release.lines().any(|l| l == "ARCHITECTURE=x86-64"), "{release}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
