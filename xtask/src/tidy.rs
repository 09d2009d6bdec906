//! Tidy tests (as rust-analyzer's): the crate's layers import only the layers below them, and every Rust file opens
//! with a `//!` line that says what it is for. Run by `cargo test -p xtask`. (That only `sys` starts processes is
//! clippy's `disallowed-methods`, in agent/clippy.toml.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The agent's top-level modules by layer; a module may use `crate::` paths only into lower layers (and itself).
const LAYERS: &[(&str, u8)] = &[
    ("config", 1),
    ("model", 1),
    ("sys", 1),
    ("report", 2),
    ("catalogue", 3),
    ("sources", 3),
    ("journal", 3),
    ("rules", 3),
    ("outputs", 4),
    ("kubernetes", 4),
    ("settings", 5),
    ("daemon", 6),
    ("wait", 6),
    ("cli", 6),
    ("logging", 6),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Every `.rs` file below `dir`, skipping build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target" || n == ".git") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text without `//` comments, so doc links and prose do not count as imports.
fn code(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Top-level modules named by `crate::X` paths in `code`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // `routewarden::` from outside, or a longer identifier ending in `crate`, is not this crate's path.
        if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// Violations of the layer rule in the agent's sources, as readable lines.
fn layer_violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap_or(&f);
        let top = rel.components().next().map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string());
        let Some(top) = top else { continue };
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(own) = layer(&top) else {
            out.push(format!("{}: module {top} has no layer in xtask/src/tidy.rs LAYERS", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for used in crate_refs(&code(&text)) {
            if used == top {
                continue;
            }
            match layer(&used) {
                Some(l) if l < own => {}
                Some(l) => out.push(format!(
                    "{}: {top} (layer {own}) uses crate::{used} (layer {l}); only lower layers may be used",
                    rel.display()
                )),
                None => out.push(format!("{}: crate::{used} has no layer in LAYERS", rel.display())),
            }
        }
    }
    out
}

#[test]
fn layers_import_only_lower_layers() {
    let bad = layer_violations(&workspace().join("agent/src"));
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn the_layer_check_catches_an_upward_import() {
    let dir = std::env::temp_dir().join(format!("rw-tidy-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/mod.rs"), "//! x\nuse crate::daemon::Thing;\nuse crate::model::Snapshot;\n")
        .unwrap();
    std::fs::write(dir.join("config.rs"), "//! y\n// crate::daemon in a comment is fine\n").unwrap();
    let bad = layer_violations(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("rules (layer 3) uses crate::daemon (layer 6)"), "{bad:?}");
}

#[test]
fn every_rust_file_opens_with_a_module_doc_line() {
    let mut files = Vec::new();
    for dir in ["agent", "xtask", "tests"] {
        rust_files(&workspace().join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let bad: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap_or_default().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(bad.is_empty(), "files without an opening //! line:\n{}", bad.join("\n"));
}
