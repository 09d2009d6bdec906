//! `cargo xtask image`: the container image as an OCI archive, from the release binary and a Debian root built
//! with mmdebstrap (reproducible under SOURCE_DATE_EPOCH; docs/container.md says what is in it and why).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::{release_binary, root, run};

/// The Debian release the root comes from: Debian 13's systemd 257 journalctl reads the journal files of every
/// current node OS (compact journals came with systemd 252); Debian 12's 252 would refuse newer feature flags.
const SUITE: &str = "trixie";
const MIRROR: &str = "http://deb.debian.org/debian";
/// journalctl (systemd) for the kubelet journal; the save binaries `snapshot --full` calls (iptables, nftables).
const INCLUDE: &str = "systemd,iptables,nftables";
/// Left out of the root: documentation, manuals and translations nobody reads in a container.
const EXCLUDE: &[&str] = &["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*"];
/// The configuration baked into the image: the host's `/` is mounted at /host (docs/container.md).
const CONFIG: &str =
    "# The container's configuration: the host's / is mounted read-only at /host (docs/container.md).\n\
                      # Mount a ConfigMap over this file to change it.\nhost_root = \"/host\"\n";
/// The name `podman load` gives the image.
pub(crate) const REF_NAME: &str = "localhost/routewarden";
/// The environment variable the image system tests (tests/system/image.rs) read the archive's path from.
pub(crate) const IMAGE_ENV: &str = "ROUTEWARDEN_IMAGE";

/// A built image: the archive and its manifest's digest (what a registry would call the image).
pub(crate) struct Built {
    pub archive: PathBuf,
    pub digest: String,
}

/// `cargo xtask image [--twice]`.
pub(crate) fn image(args: &[String]) -> Result<Built> {
    let twice = match args {
        [] => false,
        [a] if a == "--twice" => true,
        _ => bail!("usage: cargo xtask image [--twice]"),
    };
    let binary = release_binary()?;
    let out = root().join("target/image");
    let stamp = Stamp { epoch: source_date_epoch()?, revision: git_revision()? };
    let first = build(&binary, &stamp, &out.join("a"))?;
    if twice {
        let second = build(&binary, &stamp, &out.join("b"))?;
        if first.digest != second.digest {
            bail!(
                "image not reproducible: {} has {}, {} has {}",
                first.archive.display(),
                first.digest,
                second.archive.display(),
                second.digest
            );
        }
        eprintln!("reproducible: both builds give {}", first.digest);
        let _ = std::fs::remove_dir_all(out.join("b"));
    }
    let archive = out.join(format!("routewarden-{}-oci.tar", env!("CARGO_PKG_VERSION")));
    std::fs::rename(&first.archive, &archive)
        .with_context(|| format!("moving the archive to {}", archive.display()))?;
    let _ = std::fs::remove_dir_all(out.join("a"));
    let size = std::fs::metadata(&archive)?.len();
    println!("{} {} ({:.1} MiB)", archive.display(), first.digest, size as f64 / 1048576.0);
    Ok(Built { archive, digest: first.digest })
}

/// What a build records of the source: read once, so both builds of `--twice` record the same.
struct Stamp {
    epoch: u64,
    revision: String,
}

/// SOURCE_DATE_EPOCH from the environment, else the commit time of HEAD.
pub(crate) fn source_date_epoch() -> Result<u64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"));
    }
    let out = Command::new("git").args(["log", "-1", "--format=%ct"]).current_dir(root()).output()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().context("reading the commit time of HEAD (git log)")
}

fn git_revision() -> Result<String> {
    let out = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(root()).output()?;
    let rev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || rev.is_empty() {
        bail!("git rev-parse HEAD failed");
    }
    Ok(rev)
}

/// RFC 3339 (UTC) for an epoch, through date(1).
fn rfc3339(epoch: u64) -> Result<String> {
    let out = Command::new("date").args(["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%dT%H:%M:%SZ"]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(crate) fn sha256(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum").arg(path).output().context("running sha256sum")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(h) if out.status.success() && h.len() == 64 => Ok(format!("sha256:{h}")),
        _ => bail!("sha256sum {} failed", path.display()),
    }
}

/// Writes one blob of an OCI layout under `blobs/sha256/`, returning its descriptor fields.
fn put_blob(layout: &Path, bytes: &[u8]) -> Result<(String, usize)> {
    let tmp = layout.join("blob.tmp");
    std::fs::write(&tmp, bytes)?;
    let digest = sha256(&tmp)?;
    let hex = digest.trim_start_matches("sha256:");
    std::fs::rename(&tmp, layout.join("blobs/sha256").join(hex))?;
    Ok((digest, bytes.len()))
}

/// One build into `dir`: the root tar, one gzip layer, config, manifest, index, and the archive of that layout.
fn build(binary: &Path, stamp: &Stamp, dir: &Path) -> Result<Built> {
    let _ = std::fs::remove_dir_all(dir);
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256"))?;
    let epoch = stamp.epoch;
    let created = rfc3339(epoch)?;
    let revision = &stamp.revision;
    let version = env!("CARGO_PKG_VERSION");

    // The root: mmdebstrap is reproducible under SOURCE_DATE_EPOCH (mtimes clamped, sorted tar, no machine-id),
    // needs no daemon and no unprivileged user namespaces, and its hooks put the binary and config in place.
    let rootfs = dir.join("rootfs.tar");
    let staged = dir.join("routewarden");
    std::fs::copy(binary, &staged)?;
    std::fs::write(dir.join("config.toml"), CONFIG)?;
    let hook = format!(
        "install -m 0755 {bin} \"$1/usr/bin/routewarden\" && install -d -m 0755 \"$1/etc/routewarden\" \
         \"$1/var/lib/routewarden\" \"$1/host\" && install -m 0644 {cfg} \"$1/etc/routewarden/config.toml\"",
        bin = staged.display(),
        cfg = dir.join("config.toml").display()
    );
    let mut cmd = Command::new("mmdebstrap");
    cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
        .args(["--quiet", "--variant=essential", "--format=tar"])
        .arg(format!("--include={INCLUDE}"))
        .args(EXCLUDE.iter().map(|e| format!("--dpkgopt=path-exclude={e}")))
        .arg(format!("--customize-hook={hook}"))
        .args([SUITE, &rootfs.to_string_lossy(), MIRROR]);
    run(&mut cmd).context("mmdebstrap (apt-get install mmdebstrap; needs root and the Debian mirror)")?;

    // The layer: gzip -n writes neither name nor time, so the same tar gives the same blob.
    let layer = dir.join("layer.tar.gz");
    crate::sh(&format!("gzip -9n < {} > {}", rootfs.display(), layer.display()))?;
    let diff_id = sha256(&rootfs)?;
    let layer_digest = sha256(&layer)?;
    let layer_size = std::fs::metadata(&layer)?.len();
    std::fs::rename(&layer, layout.join("blobs/sha256").join(layer_digest.trim_start_matches("sha256:")))?;
    std::fs::remove_file(&rootfs)?;

    let labels = json!({
        "org.opencontainers.image.title": "routewarden",
        "org.opencontainers.image.description": "Who programs Service routing on this Kubernetes node",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.source": env!("CARGO_PKG_REPOSITORY"),
        "org.opencontainers.image.licenses": env!("CARGO_PKG_LICENSE"),
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.base.name": format!("debian:{SUITE}"),
    });
    let config = json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/usr/bin/routewarden"],
            "Cmd": ["serve"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": format!("cargo xtask image (mmdebstrap {SUITE}: {INCLUDE})")}],
    });
    let (config_digest, config_size) = put_blob(&layout, &serde_json::to_vec(&config)?)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}],
        "annotations": labels,
    });
    let (digest, manifest_size) = put_blob(&layout, &serde_json::to_vec(&manifest)?)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": format!("{REF_NAME}:{version}")},
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;

    // The archive: sorted names, one mtime, numeric root ownership, so equal layouts give equal archives.
    let archive = dir.join("routewarden-oci.tar");
    crate::sh(&format!(
        "tar --sort=name --mtime=@{epoch} --owner=0 --group=0 --numeric-owner --format=gnu -C {} -cf {} \
         oci-layout index.json blobs",
        layout.display(),
        archive.display()
    ))?;
    std::fs::remove_dir_all(&layout)?;
    Ok(Built { archive, digest })
}
