//! `cargo xtask release`: every release artefact in target/release-artefacts/ (tarball, .deb, .rpm, sysext image,
//! optionally the OCI archive), a CycloneDX SBOM and SHA256SUMS, then checks the sums and runs the tarball's binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{cargo_tool, root, run, sh};

/// cargo-cyclonedx (crates.io), pinned: the SBOM comes from Cargo.lock through the CycloneDX project's own tool.
const CYCLONEDX: &str = "cargo-cyclonedx@0.5.9";
/// The triple the tarball's name carries (the binary is x86_64, glibc 2.17 and later).
const TARBALL_TRIPLE: &str = "x86_64-linux-gnu";

/// `cargo xtask release [--image]`.
pub(crate) fn release(args: &[String]) -> Result<PathBuf> {
    let image = match args {
        [] => false,
        [a] if a == "--image" => true,
        _ => bail!("usage: cargo xtask release [--image]"),
    };
    let out = root().join("target/release-artefacts");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let dist = crate::dist()?;
    let epoch = crate::image::source_date_epoch()?;
    // dist built and checked it; building again would only relink.
    let binary = crate::dist_binary();
    tarball(&binary, &dist.join("assets"), &out, epoch)?;
    for entry in std::fs::read_dir(&dist)? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "deb" || x == "rpm") {
            let name = path.file_name().context("a package without a file name")?;
            std::fs::copy(&path, out.join(name))?;
        }
    }
    let sysext = crate::sysext::build_image(&binary, false)?;
    std::fs::copy(&sysext.raw, out.join(crate::sysext::file_name()))?;
    if image {
        let built = crate::image::image(&[])?;
        let name = built.archive.file_name().context("the archive has no file name")?;
        std::fs::copy(&built.archive, out.join(name))?;
    }
    sbom(&out)?;
    write_sums(&out)?;
    check(&out)?;
    println!("release artefacts in {}:", out.display());
    sh(&format!("cd {} && cat SHA256SUMS", out.display()))?;
    Ok(out)
}

/// `routewarden-<v>-x86_64-linux-gnu`, the tarball's name and its top directory.
fn tarball_stem() -> String {
    format!("routewarden-{}-{TARBALL_TRIPLE}", env!("CARGO_PKG_VERSION"))
}

/// The binary tarball: the binary, units, example drop-ins, the default configuration, man pages, completions,
/// LICENSE and the third-party licenses, under one top directory; sorted, one mtime, root-owned, `gzip -n`.
fn tarball(binary: &Path, assets: &Path, out: &Path, epoch: u64) -> Result<PathBuf> {
    let repo = root();
    let stage = root().join("target/release-stage");
    let _ = std::fs::remove_dir_all(&stage);
    let top = stage.join(tarball_stem());
    for d in ["systemd/examples", "man", "completions"] {
        std::fs::create_dir_all(top.join(d))?;
    }
    let mut copies: Vec<(PathBuf, String)> = vec![
        (binary.to_path_buf(), "routewarden".into()),
        (repo.join("packaging/config.toml"), "config.toml".into()),
        (repo.join("LICENSE"), "LICENSE".into()),
        (repo.join("README.md"), "README.md".into()),
        (assets.join("THIRD-PARTY-LICENSES.txt"), "THIRD-PARTY-LICENSES.txt".into()),
        (assets.join("routewarden.bash"), "completions/routewarden.bash".into()),
        (assets.join("_routewarden"), "completions/_routewarden".into()),
        (assets.join("routewarden.fish"), "completions/routewarden.fish".into()),
    ];
    for (dir, dest) in [("systemd", "systemd"), ("systemd/examples", "systemd/examples")] {
        for e in std::fs::read_dir(repo.join(dir)).with_context(|| format!("reading {dir}"))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_file() && [".service", ".socket", ".conf"].iter().any(|x| name.ends_with(x)) {
                copies.push((e.path(), format!("{dest}/{name}")));
            }
        }
    }
    for e in std::fs::read_dir(assets.join("man")).context("reading the generated man pages")?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".8") || name.ends_with(".7") {
            copies.push((e.path(), format!("man/{name}")));
        }
    }
    for (from, to) in &copies {
        std::fs::copy(from, top.join(to)).with_context(|| format!("copying {} to {to}", from.display()))?;
    }
    let tar = out.join(format!("{}.tar.gz", tarball_stem()));
    sh(&format!(
        "cd {stage} && chmod -R u=rwX,go=rX . && chmod 0755 {stem}/routewarden && \
         tar --sort=name --mtime=@{epoch} --owner=0 --group=0 --numeric-owner --format=gnu -cf - {stem} \
         | gzip -9n > {tar}",
        stage = stage.display(),
        stem = tarball_stem(),
        tar = tar.display()
    ))?;
    let _ = std::fs::remove_dir_all(&stage);
    Ok(tar)
}

/// `routewarden-<v>.cdx.json`: a CycloneDX SBOM of the routewarden package (its Cargo.lock graph without build
/// dependencies, which are not in the binary) from the pinned cargo-cyclonedx. It writes `<package>.cdx.json` next to
/// every workspace member's Cargo.toml; routewarden's is moved out of the source tree and the others removed.
fn sbom(out: &Path) -> Result<PathBuf> {
    cargo_tool("cyclonedx", CYCLONEDX)?;
    let members = [("agent", "routewarden"), ("xtask", "xtask"), ("tests", "routewarden-system-tests")];
    let written = |dir: &str, name: &str| root().join(dir).join(format!("{name}.cdx.json"));
    let remove_all = || members.iter().for_each(|(d, n)| drop(std::fs::remove_file(written(d, n))));
    remove_all();
    let ran = run(Command::new("cargo").args([
        "cyclonedx",
        "--manifest-path",
        "agent/Cargo.toml",
        "--format",
        "json",
        "--spec-version",
        "1.5",
        "--no-build-deps",
        "--target",
        crate::TRIPLE,
    ]));
    let sbom = out.join(format!("routewarden-{}.cdx.json", env!("CARGO_PKG_VERSION")));
    let moved = ran.and_then(|()| {
        std::fs::rename(written("agent", "routewarden"), &sbom)
            .with_context(|| format!("cargo cyclonedx did not write agent/routewarden.cdx.json for {}", sbom.display()))
    });
    remove_all();
    moved?;
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&sbom)?).context("parsing the SBOM")?;
    let components = doc["components"].as_array().map_or(0, Vec::len);
    if doc["bomFormat"] != "CycloneDX" || components < 10 {
        bail!("{} is not a CycloneDX SBOM of the dependency graph ({components} components)", sbom.display());
    }
    eprintln!("SBOM: {} ({components} components)", sbom.display());
    Ok(sbom)
}

/// SHA256SUMS over every other file in `dir`, in name order (the format `sha256sum -c` reads). The shell creates
/// SHA256SUMS.part before find runs, so find leaves out both names.
fn write_sums(dir: &Path) -> Result<()> {
    sh(&format!(
        "cd {} && find . -maxdepth 1 -type f ! -name 'SHA256SUMS*' -printf '%f\\n' | LC_ALL=C sort \
         | xargs -r sha256sum > SHA256SUMS.part && mv SHA256SUMS.part SHA256SUMS",
        dir.display()
    ))
}

/// The release checks itself: SHA256SUMS names every file and each matches, and the tarball unpacks to a binary
/// that runs and says this version.
pub(crate) fn check(dir: &Path) -> Result<()> {
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).context("reading SHA256SUMS")?;
    let listed: Vec<&str> = sums.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "SHA256SUMS" && !listed.contains(&name.as_str()) {
            bail!("{name} is in {} but not in SHA256SUMS", dir.display());
        }
    }
    let out = Command::new("sha256sum").args(["--check", "--strict", "SHA256SUMS"]).current_dir(dir).output()?;
    if !out.status.success() {
        bail!(
            "SHA256SUMS does not match the files:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tar = dir.join(format!("{}.tar.gz", tarball_stem()));
    let unpacked = dir.with_extension("unpacked");
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked)?;
    let untar = Command::new("tar").arg("-xzf").arg(&tar).arg("-C").arg(&unpacked).status()?;
    if !untar.success() {
        bail!("{} does not unpack", tar.display());
    }
    let bin = unpacked.join(tarball_stem()).join("routewarden");
    let ran = Command::new(&bin).arg("--version").output().with_context(|| format!("running {}", bin.display()))?;
    let said = String::from_utf8_lossy(&ran.stdout).trim().to_string();
    let _ = std::fs::remove_dir_all(&unpacked);
    let want = format!("routewarden {}", env!("CARGO_PKG_VERSION"));
    if !ran.status.success() || !said.starts_with(&want) {
        bail!("the tarball's binary says {said:?} (exit {}), not {want:?}", ran.status);
    }
    eprintln!("release check: SHA256SUMS matches {} files; the tarball's binary says {said:?}", listed.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A release directory with a tarball whose binary prints `routewarden <version>`, and its SHA256SUMS.
    fn fake_release(name: &str) -> PathBuf {
        let dir = root().join("target/tmp").join(format!("xtask-release-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("stage").join(tarball_stem())).expect("mkdir");
        let bin = dir.join("stage").join(tarball_stem()).join("routewarden");
        std::fs::write(&bin, format!("#!/bin/sh\necho routewarden {}\n", env!("CARGO_PKG_VERSION"))).expect("write");
        let rel = dir.join("rel");
        std::fs::create_dir_all(&rel).expect("mkdir");
        sh(&format!(
            "chmod 755 {bin} && tar -C {stage} -czf {rel}/{stem}.tar.gz {stem} && echo deb > {rel}/a.deb",
            bin = bin.display(),
            stage = dir.join("stage").display(),
            rel = rel.display(),
            stem = tarball_stem()
        ))
        .expect("making the tarball");
        write_sums(&rel).expect("write_sums");
        rel
    }

    /// The check passes on a consistent release and fails on each way one goes wrong.
    #[test]
    fn the_release_check_catches_a_changed_file_an_unlisted_file_and_a_wrong_binary() {
        let rel = fake_release("check");
        check(&rel).expect("a consistent release passes");
        let sums = std::fs::read_to_string(rel.join("SHA256SUMS")).expect("read");
        assert_eq!(sums.lines().count(), 2, "{sums}");

        std::fs::write(rel.join("a.deb"), "changed").expect("write");
        let err = check(&rel).expect_err("a changed file must fail").to_string();
        assert!(err.contains("does not match"), "{err}");

        write_sums(&rel).expect("write_sums");
        std::fs::write(rel.join("extra.rpm"), "x").expect("write");
        let err = check(&rel).expect_err("an unlisted file must fail").to_string();
        assert!(err.contains("extra.rpm"), "{err}");

        // A tarball whose binary names another version.
        std::fs::remove_file(rel.join("extra.rpm")).expect("rm");
        let stage = rel.parent().expect("parent").join("stage");
        std::fs::write(stage.join(tarball_stem()).join("routewarden"), "#!/bin/sh\necho routewarden 0.0.0-other\n")
            .expect("write");
        sh(&format!("tar -C {} -czf {}/{stem}.tar.gz {stem}", stage.display(), rel.display(), stem = tarball_stem()))
            .expect("tar");
        write_sums(&rel).expect("write_sums");
        let err = check(&rel).expect_err("a wrong binary must fail").to_string();
        assert!(err.contains("0.0.0-other"), "{err}");
        let _ = std::fs::remove_dir_all(rel.parent().expect("parent"));
    }
}
