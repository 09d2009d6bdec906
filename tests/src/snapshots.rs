//! Recorded snapshots: a world whose decision matters saves the `routewarden snapshot` it gives, normalised, as
//! `agent/tests/data/snapshots/<name>.json`. The agent crate's unprivileged integration test analyses every
//! recording and compares the decision with `<name>.expected.txt`, so every decision is checked on any machine;
//! the world tests here prove that the recordings are what a real kernel gives.
//!
//! Without `UPDATE_SNAPSHOTS=1` a fresh snapshot that differs from its recording fails with a diff; with it, the
//! recording is (re)written.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where the recordings live (in the agent crate, whose unprivileged tests read them).
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("/")).join("agent/tests/data/snapshots")
}

/// Set to `1` to (re)write the recordings instead of comparing with them.
pub const UPDATE_ENV: &str = "UPDATE_SNAPSHOTS";

/// The node name every recording carries.
pub const NODE: &str = "node-1";

/// The collection time every recording carries (time-dependent rules judge a snapshot at this time).
pub const COLLECTED_AT: &str = "2026-01-01T00:00:00Z";

/// First pid and first BPF program id given out by the normalisation.
const FIRST_PID: u64 = 101;
const FIRST_PROG_ID: u64 = 1;

/// Makes a snapshot of a world comparable with one of the same world taken on another run or machine:
///
/// - `node` becomes [`NODE`], `collected_at` [`COLLECTED_AT`], every `duration_ms` 0;
/// - BPF programs: only those the snapshot references (cgroup hooks, XDP, tc/tcx) are kept, since the list holds
///   every program on the host (other tests' too); their ids become 1, 2, ... in the order of the real ids,
///   everywhere they appear, and their tags (a hash of the compiled code) become empty;
/// - link indexes become 0;
/// - process pids become 101, 102, ... in the snapshot's order; their `origin` is left out;
/// - in every string, each `(from, to)` of `replace` is applied in order (the world's temporary directory and
///   name, which contain random characters and the test's pid).
///
/// Idempotent: a normalised snapshot normalises to itself.
pub fn normalise(snap: &mut Value, replace: &[(String, String)]) {
    if let Some(node) = snap.get_mut("node") {
        *node = NODE.into();
    }
    if let Some(at) = snap.get_mut("collected_at") {
        *at = COLLECTED_AT.into();
    }
    zero_durations(snap);

    // BPF program ids, renumbered wherever a program is referenced.
    let mut ids: BTreeMap<u64, u64> = BTreeMap::new();
    for hook in array(&snap["bpf"]["data"]["cgroups"]).iter().flat_map(|c| array(&c["hooks"])) {
        ids.extend(array(&hook[1]).iter().filter_map(Value::as_u64).map(|id| (id, 0)));
    }
    for link in array(&snap["links"]["data"]["links"]) {
        ids.extend(link["xdp_prog_id"].as_u64().map(|id| (id, 0)));
        ids.extend(array(&link["programs"]).iter().filter_map(|p| p["prog_id"].as_u64()).map(|id| (id, 0)));
    }
    for (new, old) in ids.values_mut().zip(FIRST_PROG_ID..) {
        *new = old;
    }
    let renumber = |v: &mut Value| {
        if let Some(new) = v.as_u64().and_then(|id| ids.get(&id)) {
            *v = (*new).into();
        }
    };
    if let Some(programs) = snap.pointer_mut("/bpf/data/programs").and_then(Value::as_array_mut) {
        programs.retain(|p| p["id"].as_u64().is_some_and(|id| ids.contains_key(&id)));
        for p in programs.iter_mut() {
            renumber(&mut p["id"]);
            p["tag"] = "".into();
        }
    }
    if let Some(cgroups) = snap.pointer_mut("/bpf/data/cgroups").and_then(Value::as_array_mut) {
        for hook in cgroups.iter_mut().flat_map(|c| c["hooks"].as_array_mut().into_iter().flatten()) {
            for id in hook.get_mut(1).and_then(Value::as_array_mut).into_iter().flatten() {
                renumber(id);
            }
        }
    }
    if let Some(links) = snap.pointer_mut("/links/data/links").and_then(Value::as_array_mut) {
        for link in links {
            link["index"] = 0.into();
            if let Some(xdp) = link.get_mut("xdp_prog_id") {
                renumber(xdp);
            }
            for p in link.get_mut("programs").and_then(Value::as_array_mut).into_iter().flatten() {
                renumber(&mut p["prog_id"]);
            }
        }
    }

    // Where each process came from names the runner's cgroup layout (`/unified/...` on a host with cgroup v2
    // alone) and the world's directory: the decisions read only which processes count, so recordings leave it out
    // (the system tests on processes check it).
    for list in ["/processes/data/processes", "/processes/data/ignored"] {
        for p in snap.pointer_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(p) = p.as_object_mut() {
                p.remove("origin");
            }
        }
    }
    let mut pids = Vec::new();
    if let Some(procs) = snap.pointer_mut("/processes/data/processes").and_then(Value::as_array_mut) {
        for (p, pid) in procs.iter_mut().zip(FIRST_PID..) {
            pids.push((format!("pid {} (", p["pid"]), format!("pid {pid} (")));
            p["pid"] = pid.into();
        }
    }
    // The owner of kube-proxy's socket names its pid: the same renumbering.
    if let Some(owner) = snap.pointer_mut("/kube_proxy_api/data/owner") {
        if let Some(text) = owner.as_str() {
            let renumbered = pids.iter().find(|(old, _)| text.starts_with(old.as_str())).map_or_else(
                || "pid 0 (".to_string() + text.split_once(" (").map_or("", |(_, rest)| rest),
                |(old, new)| text.replacen(old.as_str(), new, 1),
            );
            *owner = renumbered.into();
        }
    }
    // The process holding kube-proxy's health port: the same renumbering (0 when it is not one of the listed).
    if let Some(pid) = snap.pointer_mut("/processes/data/healthz_port/pid") {
        if let Some(raw) = pid.as_u64() {
            let old = format!("pid {raw} (");
            let new = pids
                .iter()
                .find(|(o, _)| *o == old)
                .and_then(|(_, n)| n.trim_start_matches("pid ").trim_end_matches(" (").parse::<u64>().ok());
            *pid = new.unwrap_or(0).into();
        }
    }

    replace_strings(snap, replace);
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn zero_durations(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if k == "duration_ms" {
                    *v = 0.into();
                } else {
                    zero_durations(v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(zero_durations),
        _ => {}
    }
}

fn replace_strings(v: &mut Value, replace: &[(String, String)]) {
    match v {
        Value::String(s) => {
            for (from, to) in replace {
                if !from.is_empty() && s.contains(from.as_str()) {
                    *s = s.replace(from.as_str(), to);
                }
            }
        }
        Value::Object(m) => m.values_mut().for_each(|v| replace_strings(v, replace)),
        Value::Array(a) => a.iter_mut().for_each(|v| replace_strings(v, replace)),
        _ => {}
    }
}

/// The recording's path for `name`.
pub fn path(name: &str) -> PathBuf {
    dir().join(format!("{name}.json"))
}

/// Compares a normalised snapshot with the recording `name`, panicking with a diff when they differ; with
/// `UPDATE_SNAPSHOTS=1`, writes it as the recording instead.
pub fn check_recorded(name: &str, fresh: &Value) {
    let file = path(name);
    let text = serde_json::to_string_pretty(fresh).unwrap() + "\n";
    if std::env::var(UPDATE_ENV).as_deref() == Ok("1") {
        if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&file, &text).unwrap();
            eprintln!("recorded {}", file.display());
        }
        return;
    }
    let recorded = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!("no recorded snapshot {} ({e}): record it by running this test with {UPDATE_ENV}=1", file.display())
    });
    let recorded_value: Value = serde_json::from_str(&recorded)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): re-record it with {UPDATE_ENV}=1", file.display()));
    if &recorded_value != fresh {
        let old = serde_json::to_string_pretty(&recorded_value).unwrap();
        panic!(
            "the snapshot of this world differs from the recording {} (after normalisation); if the change is \
             intended, re-record with {UPDATE_ENV}=1 and review the decision in {name}.expected.txt \
             (UPDATE_EXPECT=1 cargo test -p routewarden --test integration)\n--- recorded\n+++ fresh\n{}",
            file.display(),
            line_diff(&old, text.trim_end())
        );
    }
}

/// A line diff of `old` and `new` (longest common subsequence), changed lines with two lines of context.
pub fn line_diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 2;
    let near_change =
        |k: usize| ops[k.saturating_sub(CONTEXT)..(k + CONTEXT + 1).min(ops.len())].iter().any(|(c, _)| *c != ' ');
    let mut out = String::new();
    let mut skipped = false;
    for (k, (c, line)) in ops.iter().enumerate() {
        if near_change(k) {
            if skipped {
                out.push_str("  ...\n");
                skipped = false;
            }
            let _ = writeln!(out, "{c} {line}");
        } else {
            skipped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        serde_json::json!({
            "schema_version": 1,
            "node": "build-host-17",
            "collected_at": "2026-12-01T20:08:58Z",
            "links": {"status": "ok", "duration_ms": 3, "data": {"links": [
                {"index": 1, "name": "lo"},
                {"index": 7, "name": "eth1", "kind": "veth",
                 "programs": [{"direction": "ingress", "mechanism": "tcx", "prog_id": 912, "name": "cil_from_netdev"}]},
                {"index": 8, "name": "eth0", "xdp_prog_id": 905}
            ]}},
            "bpf": {"status": "ok", "duration_ms": 1, "data": {
                "programs": [
                    {"id": 17, "type": "cgroup_skb", "name": "sd_fw_egress", "tag": "6deef7357e7b4530"},
                    {"id": 900, "type": "cgroup_sock_addr", "name": "cil_sock4_conne", "tag": "aa"},
                    {"id": 905, "type": "xdp", "name": "cil_xdp_entry", "tag": "bb"},
                    {"id": 912, "type": "sched_cls", "name": "cil_from_netdev", "tag": "cc"}
                ],
                "cgroups": [{"path": "/sys/fs/cgroup/unified/rw-kpr-alone-4242", "hooks": [["connect4", [900]]]}],
                "lb_maps": [{"path": "/sys/fs/bpf/rw-kpr-alone-4242/tc/globals/cilium_lb4_services_v2", "entries": 2}]
            }},
            "processes": {"status": "ok", "duration_ms": 0, "data": {"processes": [
                {"pid": 7, "comm": "kube-proxy"}, {"pid": 12, "comm": "cilium-agent"}
            ]}},
            "iptables_legacy": {"status": "failed", "duration_ms": 1003,
                "error": "/tmp/.tmpAbC123/hanging-save did not finish within 1s"}
        })
    }

    fn replacements() -> Vec<(String, String)> {
        vec![("/tmp/.tmpAbC123".into(), "/tmp/WORLD".into()), ("rw-kpr-alone-4242".into(), "WORLD".into())]
    }

    #[test]
    fn normalisation_blanks_what_varies_and_keeps_references() {
        let mut s = sample();
        normalise(&mut s, &replacements());
        assert_eq!(s["node"], NODE);
        assert_eq!(s["collected_at"], COLLECTED_AT);
        assert_eq!(
            (s["links"]["duration_ms"].as_u64(), s["iptables_legacy"]["duration_ms"].as_u64()),
            (Some(0), Some(0))
        );
        let progs = s["bpf"]["data"]["programs"].as_array().unwrap();
        let names: Vec<(&str, u64, &str)> = progs
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["id"].as_u64().unwrap(), p["tag"].as_str().unwrap()))
            .collect();
        assert_eq!(names, vec![("cil_sock4_conne", 1, ""), ("cil_xdp_entry", 2, ""), ("cil_from_netdev", 3, "")]);
        assert_eq!(s["bpf"]["data"]["cgroups"][0]["hooks"][0][1][0], 1);
        assert_eq!(s["bpf"]["data"]["cgroups"][0]["path"], "/sys/fs/cgroup/unified/WORLD");
        assert_eq!(s["bpf"]["data"]["lb_maps"][0]["path"], "/sys/fs/bpf/WORLD/tc/globals/cilium_lb4_services_v2");
        let links = &s["links"]["data"]["links"];
        assert_eq!((links[1]["programs"][0]["prog_id"].as_u64(), links[2]["xdp_prog_id"].as_u64()), (Some(3), Some(2)));
        assert!(links.as_array().unwrap().iter().all(|l| l["index"] == 0));
        let pids: Vec<u64> = s["processes"]["data"]["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pid"].as_u64().unwrap())
            .collect();
        assert_eq!(pids, vec![101, 102]);
        assert_eq!(s["iptables_legacy"]["error"], "/tmp/WORLD/hanging-save did not finish within 1s");
    }

    #[test]
    fn normalisation_is_idempotent() {
        let mut once = sample();
        normalise(&mut once, &replacements());
        let mut twice = once.clone();
        normalise(&mut twice, &replacements());
        assert_eq!(once, twice);
    }

    #[test]
    fn the_diff_shows_changed_lines_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj";
        let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk";
        assert_eq!(line_diff(old, new), "  ...\n  b\n  c\n- d\n+ D\n  e\n  f\n  ...\n  i\n  j\n+ k\n");
    }
}
