//! Helpers shared by the integration test modules.

/// The real rule dumps (see `INDEX.md` there for where each comes from).
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fixtures");

/// Whether `tool` is installed; prints a skip reason when not, and fails under CI=true.
pub fn tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).chain(["/usr/sbin".into(), "/sbin".into()]).any(|d| d.join(tool).exists()))
        .unwrap_or(false);
    if found {
        return true;
    }
    let msg = format!("skipping: {tool} is not installed");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg} (CI=true turns this skip into a failure)");
    }
    // Straight to stderr: libtest captures `eprintln!` of passing tests, and the skip would go unseen.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{msg}\n").as_bytes());
    false
}

/// The report's finding `id`; panics with the report when there is none.
pub fn finding<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {report:#}"))
}
