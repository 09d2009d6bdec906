//! The report as a few lines a tired operator can read at 3 a.m.

use std::fmt::Write;

use crate::model::SourceStatus;
use crate::report::{ProxyKind, ProxyMode, Report, ServiceProxy, Severity, Verdict};

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "routewarden on {}: {}", r.node, headline(r));

    let kp = &r.dataplane.kube_proxy;
    let kp_line = match kp.mode {
        ProxyMode::None if !kp.pids.is_empty() => format!(
            "no Service rules, but a kube-proxy process runs (pid {})",
            kp.pids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        ),
        ProxyMode::None => "none".to_string(),
        ProxyMode::Unknown => "unknown (a source failed or is disabled)".to_string(),
        mode => {
            let mut parts = vec![format!("{} mode", mode.as_str())];
            if let Some(b) = &kp.backend {
                parts.push(format!("{b} backend"));
            }
            parts.push(format!("{} services", kp.services));
            parts.push(match kp.running {
                Some(true) if kp.pids.is_empty() => "running (embedded)".into(),
                Some(true) => {
                    format!("running, pid {}", kp.pids.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
                }
                Some(false) => "NOT running".into(),
                None => "process state unknown".into(),
            });
            if let Some(m) = &kp.reported_mode {
                parts.push(format!("/proxyMode says {m}"));
            }
            parts.join(", ")
        }
    };
    let _ = writeln!(s, "  kube-proxy: {kp_line}");

    let c = &r.dataplane.cilium;
    let cil_line = match c.present {
        None => "unknown (a source failed or is disabled)".to_string(),
        Some(false) => "not present".to_string(),
        Some(true) => {
            let kpr = match c.kube_proxy_replacement {
                Some(true) => {
                    let mut how = Vec::new();
                    if c.socket_lb == Some(true) {
                        how.push("socket-LB");
                    }
                    if c.bpf_nodeport == Some(true) {
                        how.push("BPF NodePort");
                    }
                    if c.xdp_nodeport == Some(true) {
                        how.push("XDP NodePort");
                    }
                    if let Some(m) = &c.configured_kpr {
                        how.push(if m == "True" || m == "Strict" {
                            "configured in the agent"
                        } else {
                            "per agent features"
                        });
                    }
                    format!("kube-proxy replacement ON ({})", how.join(", "))
                }
                Some(false) => "kube-proxy replacement off".into(),
                None => "kube-proxy replacement unknown".into(),
            };
            let svcs = c.services.map(|n| format!(", {n} services in BPF maps")).unwrap_or_default();
            let agent = match c.agent_running {
                Some(true) => ", agent running",
                Some(false) => ", agent NOT running",
                None => "",
            };
            let datapath: Vec<String> = [
                c.attach_mode.map(|m| format!("{} attach", m.as_str())),
                c.device_mode.map(|m| format!("{} devices", m.as_str())),
            ]
            .into_iter()
            .flatten()
            .collect();
            let datapath = if datapath.is_empty() { String::new() } else { format!(", {}", datapath.join(", ")) };
            format!("{kpr}{svcs}{agent}{datapath}")
        }
    };
    let _ = writeln!(s, "  cilium:     {cil_line}");
    // One line for each other Service proxy (kube-proxy and Cilium have theirs above).
    for p in r.dataplane.proxies.iter().filter(|p| !matches!(p.proxy, ProxyKind::KubeProxy | ProxyKind::Cilium)) {
        let _ = writeln!(s, "  proxy:      {}", proxy_line(p));
    }
    if let Some(cni) = &r.dataplane.cni {
        let _ = writeln!(s, "  cni:        {} ({})", cni.owner, cni.file);
    }

    if let Some(g) = &r.node_gate {
        use crate::report::GateState;
        let state = match g.state {
            GateState::Met => "met".to_string(),
            GateState::Unmet => format!("UNMET ({})", g.why.join("; ")),
            GateState::Unknown => format!("unknown ({})", g.why.join("; ")),
        };
        let taint = g.taint.as_deref().map(|t| format!("; taint {t}")).unwrap_or_default();
        let _ = writeln!(s, "  node gate:  {state}{taint}");
    }

    let failed: Vec<_> =
        r.sources.iter().filter(|(_, v)| v.status == SourceStatus::Failed).map(|(k, _)| k.as_str()).collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "  sources failed: {}", failed.join(", "));
    }

    if r.findings.is_empty() {
        let _ = writeln!(s, "\nNo findings: one dataplane programs Service routing.");
    }
    findings(&mut s, &r.findings);
    s
}

/// The first line's word, as the exit code means it: `UNKNOWN (could not inspect: ...)` when a source failed and
/// nothing critical was found (exit 3), not the `WARNING` of the failed source's finding.
fn headline(r: &Report) -> String {
    if r.exit_code() == 3 {
        let failed: Vec<&str> =
            r.sources.iter().filter(|(_, v)| v.status == SourceStatus::Failed).map(|(k, _)| k.as_str()).collect();
        let n = failed.len();
        return format!("UNKNOWN (could not inspect: {n} source{} failed)", if n == 1 { "" } else { "s" });
    }
    match r.verdict {
        Verdict::Ok => "OK",
        Verdict::Warning => "WARNING",
        Verdict::Critical => "CRITICAL",
    }
    .to_string()
}

/// "calico-ebpf (ebpf mode, 3 services): balances cluster-ip-from-pods, external; agent running".
fn proxy_line(p: &ServiceProxy) -> String {
    let services = p.services.map(|n| format!(", {n} services")).unwrap_or_default();
    let balances = p.balances.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
    let agent = match p.agent_running {
        Some(true) => "agent running",
        Some(false) => "agent NOT running",
        None => "agent state unknown",
    };
    format!("{} ({} mode{services}): balances {balances}; {agent}", p.proxy.as_str(), p.mode.as_str())
}

/// A journal scan: matches per rule, then the findings.
pub fn scan(sc: &crate::report::JournalScan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} journal entries read{}{}",
        sc.entries,
        if sc.bad_lines > 0 { format!(", {} lines were not journal entries", sc.bad_lines) } else { String::new() },
        if sc.overlong_lines > 0 {
            format!(", {} lines longer than {} bytes were skipped", sc.overlong_lines, crate::model::journal::MAX_LINE)
        } else {
            String::new()
        }
    );
    let _ = writeln!(s, "API server endpoint: {}", sc.api_server);
    let _ = writeln!(s, "matches per rule:");
    for (rule, n) in &sc.counts {
        let _ = writeln!(s, "  {n:>8}  {rule}");
    }
    if sc.episodes.is_empty() {
        let _ = writeln!(s, "\nNo episodes.");
    } else {
        let _ = writeln!(s, "\nepisodes, in time order:");
        for e in &sc.episodes {
            let sev = match e.severity {
                Severity::Info => "INFO",
                Severity::Warning => "WARNING",
                Severity::Critical => "CRITICAL",
            };
            let end = if e.ongoing { format!("{} (ongoing)", e.end) } else { e.end.to_string() };
            let _ = writeln!(s, "  {} .. {}  {sev} {} ({} lines)", e.start, end, e.id, e.count);
            let _ = writeln!(s, "      {}", e.sample);
        }
        if sc.episodes_dropped > 0 {
            let _ = writeln!(s, "  ({} older episodes left out)", sc.episodes_dropped);
        }
    }
    if sc.findings.is_empty() {
        let _ = writeln!(s, "\nNo findings at the journal's end.");
    } else {
        let _ = writeln!(s, "\nactive at the journal's end:");
    }
    findings(&mut s, &sc.findings);
    s
}

/// Each finding: severity, id and summary, then its evidence and remedy. Sources that failed the same way share one
/// remedy naming them all: it is printed once, under the last of them.
fn findings(s: &mut String, list: &[crate::report::Finding]) {
    use crate::report::FindingId;
    for (i, f) in list.iter().enumerate() {
        let shared_later = f.id == FindingId::SourceFailed
            && list[i + 1..].iter().any(|g| g.id == FindingId::SourceFailed && g.remedy == f.remedy);
        let sev = match f.severity {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        };
        let _ = writeln!(s, "\n{sev} {}: {}", f.id, f.summary);
        for e in &f.evidence {
            let _ = writeln!(s, "  evidence: {e}");
        }
        if !shared_later {
            let _ = writeln!(s, "  remedy: {}", f.remedy);
        }
    }
}

/// `routewarden status`'s first line: whom it asked (`target`) and the age of the daemon's last collection.
pub fn daemon_header(target: &str, r: &Report, now_unix: f64) -> String {
    let last = r.daemon.as_ref().map_or(0.0, |d| d.last_collection_unix);
    format!("asked the daemon on {target} (last collection {})\n", ago(now_unix, last))
}

/// What only the running daemon knows, for `routewarden status` (after [`render`]): its collections and their age,
/// kube-proxy rule churn, the journal follower's counters and the Kubernetes exporter's state. `now_unix` is the
/// reader's clock.
pub fn daemon_state(r: &Report, now_unix: f64) -> String {
    let mut s = String::from("\ndaemon:\n");
    let Some(d) = &r.daemon else {
        s.push_str("  sent no counters (a daemon older than this routewarden)\n");
        return s;
    };
    let _ = writeln!(
        s,
        "  collections: {} since start, the last {}; kube-proxy chains added or removed since start: {}",
        d.collections,
        ago(now_unix, d.last_collection_unix),
        d.rule_changes
    );
    match &d.journal {
        None => s.push_str("  journal:    not followed (journal.enabled = false, or the follower has not started)\n"),
        Some(j) => {
            let lines: u64 = j.lines.values().sum();
            let per_unit = j.lines.iter().map(|(u, n)| format!("{u} {n}")).collect::<Vec<_>>().join(", ");
            let _ = writeln!(
                s,
                "  journal:    {lines} entries read{}, {:.1} s behind the clock",
                if per_unit.is_empty() { String::new() } else { format!(" ({per_unit})") },
                j.lag_seconds
            );
            let matched: Vec<_> = j.matches.iter().filter(|(_, n)| **n > 0).map(|(r, n)| format!("{r} {n}")).collect();
            let _ = writeln!(
                s,
                "              matches: {}",
                if matched.is_empty() { "none".to_string() } else { matched.join(", ") }
            );
            if j.not_entries + j.overlong_lines > 0 {
                let _ = writeln!(
                    s,
                    "              skipped: {} lines that were not journal entries, {} over the line bound",
                    j.not_entries, j.overlong_lines
                );
            }
        }
    }
    match &d.kubernetes {
        None => s.push_str("  kubernetes: exporter off ([kubernetes] enabled = false)\n"),
        Some(k) => {
            let node = if k.node.is_empty() { "Node not resolved yet".to_string() } else { format!("Node {}", k.node) };
            let state = match (k.up, &k.last_error) {
                (None, _) => "no exchange with the API server yet".to_string(),
                (Some(true), _) => format!(
                    "API server reached, last success {}",
                    k.last_success_unix.map_or("never".to_string(), |t| ago(now_unix, t))
                ),
                (Some(false), e) => format!("API server NOT reached: {}", e.as_deref().unwrap_or("no error text")),
            };
            let taint = k.taint.map(|t| format!("; taint {}", t.as_str())).unwrap_or_default();
            let _ = writeln!(
                s,
                "  kubernetes: {node}, {state}; requests {} ok, {} failed; {} events dropped{taint}",
                k.requests_ok, k.requests_failed, k.events_dropped
            );
        }
    }
    if let Some(a) = &d.metrics_auth {
        let _ = writeln!(
            s,
            "  basic auth: {} accepted, {} refused, {} busy, {} rate-limited; {} clients limited now",
            a.accepted, a.refused, a.busy, a.rate_limited, a.limited_clients
        );
    }
    s
}

/// "12s ago" from two unix times (never negative; "never" for 0).
fn ago(now_unix: f64, then_unix: f64) -> String {
    if then_unix <= 0.0 {
        return "never".to_string();
    }
    let secs = (now_unix - then_unix).max(0.0).round() as u64;
    format!("{} ago", humantime::format_duration(std::time::Duration::from_secs(secs)))
}
