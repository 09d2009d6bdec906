//! Tidy tests (as rust-analyzer's): the crate's layers import only the layers below them, files inside one module
//! form no circle, `unsafe` appears only in `sys/`, only `rules` builds or changes a report, and every Rust file
//! opens with a `//!` line that says what it is for. Run by `cargo test -p xtask`. (That only `sys` starts processes is clippy's `disallowed-methods`, in
//! agent/clippy.toml.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The agent's top-level modules by layer; a module may use `crate::` paths only into lower layers (and itself).
const LAYERS: &[(&str, u8)] = &[
    ("model", 1),
    ("sys", 1),
    ("config", 2),
    ("report", 2),
    ("catalogue", 3),
    ("sources", 3),
    ("journal", 3),
    ("rules", 4),
    ("outputs", 5),
    ("kubernetes", 5),
    ("settings", 6),
    ("daemon", 7),
    ("wait", 7),
    ("status", 7),
    ("cli", 7),
    ("logging", 7),
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
    assert!(bad[0].contains("rules (layer 4) uses crate::daemon (layer 7)"), "{bad:?}");
}

/// Circles between sibling files of one module directory (`a.rs` names `b` through `super::b` or
/// `crate::MODULE::b`, and `b.rs` names `a`, directly or through others), as readable lines. `mod.rs` is the
/// module's root, which its files may use and which uses them: it takes no part.
fn sibling_circles(src: &Path) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut files = Vec::new();
    rust_files(src, &mut files);
    // module directory -> file stem -> siblings it names
    let mut graph: BTreeMap<PathBuf, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in &files {
        let (Some(dir), Some(stem)) = (f.parent(), f.file_stem().map(|s| s.to_string_lossy().into_owned())) else {
            continue;
        };
        if stem == "mod" || dir == src {
            continue;
        }
        let module = dir.strip_prefix(src).unwrap_or(dir).to_string_lossy().replace('/', "::");
        let text = code(&std::fs::read_to_string(f).unwrap_or_default());
        let mut names = BTreeSet::new();
        for prefix in ["super::".to_string(), format!("crate::{module}::")] {
            for (i, _) in text.match_indices(&prefix) {
                if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let name: String =
                    text[i + prefix.len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if name != stem && dir.join(format!("{name}.rs")).exists() {
                    names.insert(name);
                }
            }
        }
        graph.entry(dir.to_path_buf()).or_default().insert(stem, names);
    }
    let mut out = Vec::new();
    for (dir, edges) in &graph {
        for start in edges.keys() {
            // Depth-first from `start`: a path back to it is a circle, reported once from its smallest file.
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((at, path)) = stack.pop() {
                for next in edges.get(&at).into_iter().flatten() {
                    if next == start {
                        if path.iter().all(|p| p >= start) {
                            let rel = dir.strip_prefix(src).unwrap_or(dir).display().to_string();
                            out.push(format!("{rel}/: {} -> {start}", path.join(" -> ")));
                        }
                    } else if seen.insert(next.clone()) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push((next.clone(), p));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn files_of_one_module_form_no_circle() {
    let bad = sibling_circles(&workspace().join("agent/src"));
    assert!(
        bad.is_empty(),
        "circles between the files of a module (move what both need below them):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_circle_check_catches_a_circle_through_a_third_file() {
    let dir = std::env::temp_dir().join(format!("rw-tidy-circle-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/mod.rs"), "//! m\npub mod a;\n").unwrap();
    std::fs::write(dir.join("rules/a.rs"), "//! a\nuse super::b::X;\nuse super::analyse;\n").unwrap();
    std::fs::write(dir.join("rules/b.rs"), "//! b\nuse crate::rules::c::Y;\n").unwrap();
    std::fs::write(dir.join("rules/c.rs"), "//! c\nfn f() { super::a::g() }\n// super::b in a comment\n").unwrap();
    std::fs::write(dir.join("rules/d.rs"), "//! d\nuse super::a::Z;\n").unwrap();
    let bad = sibling_circles(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(bad, vec!["rules/: a -> b -> c -> a".to_string()]);
}

/// `unsafe` (blocks, functions, impls) outside `sys/`, as readable lines.
fn unsafe_outside_sys(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap_or(&f);
        if rel.starts_with("sys") {
            continue;
        }
        let text = code(&std::fs::read_to_string(&f).unwrap_or_default());
        for (n, line) in text.lines().enumerate() {
            let words = line.split(|c: char| !(c.is_alphanumeric() || c == '_'));
            if words.into_iter().any(|w| w == "unsafe") {
                out.push(format!("{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    out
}

#[test]
fn unsafe_code_lives_only_in_sys() {
    let src = workspace().join("agent/src");
    assert!(src.join("sys").is_dir());
    let bad = unsafe_outside_sys(&src);
    assert!(
        bad.is_empty(),
        "unsafe outside agent/src/sys/ (put the call behind a safe function there):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_unsafe_check_sees_code_not_comments_or_names() {
    let dir = std::env::temp_dir().join(format!("rw-tidy-unsafe-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sys")).unwrap();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("sys/mod.rs"), "//! s\nfn f() { unsafe { g() } }\n").unwrap();
    std::fs::write(dir.join("rules/a.rs"), "//! a\n// unsafe in a comment\nlet unsafe_ok = 1;\nunsafe { h() }\n")
        .unwrap();
    let bad = unsafe_outside_sys(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(bad, vec!["rules/a.rs:4: unsafe { h() }".to_string()]);
}

/// Places outside `rules/` (and the type's own module, `report.rs`) that build a `Report` or change its verdict,
/// findings or sources, as readable lines. Tests (after `#[cfg(test)]`) may build reports as fixtures.
fn reports_built_outside_rules(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap_or(&f);
        if rel.starts_with("rules") || rel == Path::new("report.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code(text).lines().enumerate() {
            let builds = line.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == "Report")
                && line.contains("Report {")
                && !line.contains("struct Report");
            let changes = [".verdict = ", ".findings.push(", ".findings.extend(", ".sources.insert("]
                .iter()
                .any(|p| line.contains(p));
            if builds || changes {
                out.push(format!("{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    out
}

#[test]
fn only_the_rules_build_a_report() {
    let bad = reports_built_outside_rules(&workspace().join("agent/src"));
    assert!(
        bad.is_empty(),
        "a report built or changed outside rules/ (give rules::assemble the input instead):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_report_check_sees_a_daemon_patching_a_report() {
    let dir = std::env::temp_dir().join(format!("rw-tidy-report-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("daemon")).unwrap();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/assemble.rs"), "//! r\nfn f(r: &mut Report) { r.verdict = v; }\n").unwrap();
    std::fs::write(
        dir.join("daemon/mod.rs"),
        "//! d\nfn g(r: &mut Report) {\n    r.findings.push(x);\n    if r.verdict == v {}\n    let s = SourceReport { a };\n}\n\
         #[cfg(test)]\nfn t() { let r = Report { a }; }\n",
    )
    .unwrap();
    let bad = reports_built_outside_rules(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(bad, vec!["daemon/mod.rs:3: r.findings.push(x);".to_string()]);
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

/// The end (exclusive) of the bracketed group opening at `open` (`(`, `{`, `[` or `<`), skipping string literals.
fn group_end(s: &[u8], open: usize) -> usize {
    let mut depth = 0i32;
    let mut i = open;
    while i < s.len() {
        match s[i] {
            b'"' => {
                i += 1;
                while i < s.len() && s[i] != b'"' {
                    i += if s[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'{' | b'[' | b'<' => depth += 1,
            // `->` is no closing bracket.
            b'>' if i > 0 && s[i - 1] == b'-' => {}
            b')' | b'}' | b']' | b'>' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    s.len()
}

/// `text` split at its top-level commas.
fn top_level_split(text: &str) -> Vec<&str> {
    let s = text.as_bytes();
    let (mut out, mut start, mut i) = (Vec::new(), 0, 0);
    while i < s.len() {
        match s[i] {
            b'"' | b'(' | b'{' | b'[' | b'<' if !(s[i] == b'<' && i > 0 && s[i - 1] == b'-') => {
                let end = if s[i] == b'"' {
                    let mut j = i + 1;
                    while j < s.len() && s[j] != b'"' {
                        j += if s[j] == b'\\' { 2 } else { 1 };
                    }
                    j + 1
                } else {
                    group_end(s, i)
                };
                i = end;
                continue;
            }
            b',' => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&text[start..]);
    out.into_iter().filter(|f| !f.trim().is_empty()).collect()
}

/// Whether the message (`attr`: what is inside `#[error(...)]`) names `field`: `{field}`, `{field:?}`, or `.field`
/// among the format arguments.
fn names_field(attr: &str, field: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let braced = [format!("{{{field}}}"), format!("{{{field}:")];
    if braced.iter().any(|b| attr.contains(b.as_str())) {
        return true;
    }
    attr.match_indices(&format!(".{field}")).any(|(i, m)| {
        let before = attr[..i].chars().next_back().is_none_or(|c| !ident(c));
        let after = attr[i + m.len()..].chars().next().is_none_or(|c| !ident(c));
        before && after
    })
}

/// thiserror messages that print a field which is also the error's source (`#[source]`, `#[from]` or named
/// `source`), so a chain would print that cause twice: `file: Variant` for each.
fn interpolated_sources(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap_or(&f).display().to_string();
        // Comment lines out (not `code()`: a `//` inside a string such as "http://" is no comment); tests (after
        // `#[cfg(test)]`) may show the old style as an example.
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let text: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .map(|l| if l.trim_start().starts_with("//") { "" } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        let s = text.as_bytes();
        for (at, _) in text.match_indices("#[error(") {
            let open = at + "#[error".len();
            let close = group_end(s, open);
            let attr = &text[open + 1..close.saturating_sub(1)];
            if attr.trim() == "transparent" {
                continue;
            }
            // The item after the attribute and any others: `struct Name body` or `Variant body`.
            let mut rest = text[close..].trim_start_matches(']').trim_start();
            while rest.starts_with("#[") {
                let end = group_end(rest.as_bytes(), 1);
                rest = rest[end..].trim_start_matches(']').trim_start();
            }
            let rest = rest.trim_start_matches("pub ").trim_start_matches("struct ").trim_start();
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let after = rest[name.len()..].trim_start();
            let body = match after.chars().next() {
                Some('(') | Some('{') => &after[1..group_end(after.as_bytes(), 0) - 1],
                _ => "",
            };
            let tuple = after.starts_with('(');
            for (i, field) in top_level_split(body).into_iter().enumerate() {
                let field = field.trim();
                let marked = field.contains("#[source]") || field.contains("#[from]");
                let bare = field.rsplit(']').next().unwrap_or(field).trim().trim_start_matches("pub ").trim();
                let fname = if tuple { i.to_string() } else { bare.split(':').next().unwrap_or("").trim().to_string() };
                if (marked || (!tuple && fname == "source")) && names_field(attr, &fname) {
                    out.push(format!("{rel}: {name}"));
                }
            }
        }
    }
    out
}

#[test]
fn sources_are_not_interpolated_in_error_messages() {
    let found = interpolated_sources(&workspace().join("agent/src"));
    assert!(
        found.is_empty(),
        "a thiserror message prints its own source, so the chain (model::error_chain) prints that \
         cause twice: say only the operation and what it was applied to, and leave the cause to #[source]/#[from] \
         (or #[error(transparent)] for a wrapper with nothing of its own to say):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_source_check_catches_each_way_of_printing_a_source() {
    let dir = std::env::temp_dir().join(format!("rw-tidy-source-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sys")).unwrap();
    std::fs::write(
        dir.join("sys/a.rs"),
        r#"//! a
#[derive(Debug, thiserror::Error)]
pub enum E {
    #[error("opening {path}: {source}")]
    Named { path: PathBuf, source: std::io::Error },
    #[error("reading: {0}")]
    From(#[from] std::io::Error),
    #[error("http://x {0:?}")]
    Marked(#[source] Box<Other<A, B>>),
    #[error("{}", .inner.len())]
    Field {
        #[source]
        inner: Inner,
    },
    // #[error("{0}")] in a comment
    #[error("opening {path}")]
    Fine { path: PathBuf, source: std::io::Error },
    #[error("{0} and {1}")]
    NotASource(String, u32),
    #[error(transparent)]
    Wrapper(#[from] Inner),
}

#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct S {
    call: &'static str,
    source: std::io::Error,
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("an example of the old style: {0}")]
    struct Old(#[from] std::io::Error);
}
"#,
    )
    .unwrap();
    let found = interpolated_sources(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found, ["sys/a.rs: Named", "sys/a.rs: From", "sys/a.rs: Marked", "sys/a.rs: Field", "sys/a.rs: S"]);
}
