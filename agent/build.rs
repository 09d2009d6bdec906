//! Build script: stamps the git revision and the commit date into `--version` and `build_info`.
#![allow(clippy::disallowed_methods)] // a build script runs git itself; sys::exec is the crate's runtime wrapper
//!
//! `ROUTEWARDEN_REVISION` (for builds from a tarball) wins over git; without either the revision is "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=ROUTEWARDEN_REVISION");
    // Rebuild when HEAD moves: HEAD itself (a branch switch), the branch's ref, and packed refs.
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])) {
        println!("cargo:rerun-if-changed={r}");
    }
    let revision = std::env::var("ROUTEWARDEN_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // The commit's date, not the build's, so that a rebuild of one revision is byte-identical.
    let date = git(&["log", "-1", "--format=%cs"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ROUTEWARDEN_REVISION={revision}");
    println!("cargo:rustc-env=ROUTEWARDEN_COMMIT_DATE={date}");
}
