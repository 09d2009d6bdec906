//! The generated references: one Markdown page per finding id (`docs/findings/`), `routewarden-findings(7)` from
//! the same text, and the metrics reference from the table that describes the daemon's registry. The built-in ids come from
//! `catalogue`, the journal's from the shipped default rules. The integration test `reference` compares them with
//! the committed files and rewrites those that drifted.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::catalogue::{self, FindingDoc};
use crate::model::journal::Rule;
use crate::model::Severity;
use crate::outputs::metrics::{Desc, Kind, FAMILIES};
use crate::report::FindingId;

/// Where the generated files say they come from.
pub const GENERATED_BY: &str = "cargo test -p routewarden --test integration reference";

/// One documented finding id: a built-in one (with the journal rule of the same id, if any) or a default journal
/// rule's.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub doc: Option<FindingDoc>,
    pub rule: Option<Rule>,
}

impl Entry {
    /// The alerts of `packaging/prometheus/routewarden-alerts.yaml` that fire on this id.
    pub fn alerts(&self) -> Vec<&'static str> {
        if let Some(d) = self.doc {
            return d.alerts.to_vec();
        }
        match self.id.as_str() {
            "cni-apiserver.deadlock" => vec!["RoutewardenCniApiserverDeadlock"],
            "pod.crash-loop" => vec!["RoutewardenPodCrashLoop"],
            "cni.not-ready" => vec!["RoutewardenCniNotReady"],
            _ if self.rule.as_ref().is_some_and(|r| r.severity == Severity::Critical) => {
                vec!["RoutewardenCriticalFinding"]
            }
            _ => Vec::new(),
        }
    }

    fn title(&self) -> String {
        match (&self.doc, &self.rule) {
            (Some(d), _) => d.title.to_string(),
            (None, Some(r)) => r.summary.split(':').next().unwrap_or(&r.summary).to_string(),
            (None, None) => String::new(),
        }
    }

    /// (heading, paragraph) sections, Markdown backticks kept.
    fn sections(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match (&self.doc, &self.rule) {
            (Some(d), rule) => {
                out.push(("Severity", d.severity.to_string()));
                let mut meaning = d.meaning.to_string();
                if let Some(r) = rule {
                    let _ = write!(
                        meaning,
                        " The default journal rule of the same id also raises it ({}): {}.",
                        severity_name(r.severity),
                        r.summary
                    );
                }
                out.push(("What it means", meaning));
                out.push(("Evidence", d.evidence.to_string()));
                out.push(("Remedy", d.remedy.text()));
            }
            (None, Some(r)) => {
                out.push(("Severity", severity_name(r.severity).to_string()));
                out.push((
                    "What it means",
                    format!("{} (a default journal rule of the kubelet journal).", capitalised(&r.summary)),
                ));
                out.push(("Evidence", rule_evidence(r)));
                out.push(("Remedy", if r.remedy.is_empty() { "See the evidence.".into() } else { r.remedy.clone() }));
            }
            (None, None) => {}
        }
        let alerts = self.alerts();
        out.push((
            "Alert",
            if alerts.is_empty() {
                "None of its own: it shows in `routewarden check`, `/status` and `routewarden_findings{id,severity}`."
                    .into()
            } else {
                alerts.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
            },
        ));
        out
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

fn rule_evidence(r: &Rule) -> String {
    let mut s = String::from("Sample journal lines that matched");
    if !r.units.is_empty() {
        let _ = write!(s, ", from {}", r.units.join(", "));
    }
    if !r.all_of.is_empty() {
        s = format!("The findings it correlates ({}), all still recurring", r.all_of.join(", "));
    }
    let _ = write!(s, "; raised after {} match(es) within {} s", r.threshold, r.window_secs);
    if r.for_secs > 0 {
        let _ = write!(s, ", once it has kept recurring for {} s", r.for_secs);
    }
    s.push('.');
    s
}

/// Every documented id, sorted: the built-in ones and the default journal rules'.
pub fn entries() -> Result<Vec<Entry>, crate::journal::rules::RulesError> {
    let rules = crate::journal::rules::parse(crate::journal::rules::DEFAULT_RULES, "default rules")?;
    let mut by_id: BTreeMap<String, Entry> = BTreeMap::new();
    for id in FindingId::BUILT_IN {
        let name = id.as_str().to_string();
        by_id.insert(name.clone(), Entry { id: name, doc: catalogue::doc(&id), rule: None });
    }
    for rule in rules {
        let entry =
            by_id.entry(rule.id.clone()).or_insert_with(|| Entry { id: rule.id.clone(), doc: None, rule: None });
        entry.rule = Some(rule);
    }
    Ok(by_id.into_values().collect())
}

/// The file name of an id's page under `docs/findings/`.
pub fn page_name(id: &str) -> String {
    format!("{id}.md")
}

/// An id's Markdown page.
pub fn finding_page(e: &Entry) -> String {
    let mut s = format!("<!-- Generated by `{GENERATED_BY}` from agent/src/catalogue.rs and the default journal rules: do not edit. -->\n\n");
    let _ = writeln!(s, "# `{}`: {}\n", e.id, e.title());
    for (heading, text) in e.sections() {
        let _ = writeln!(s, "## {heading}\n\n{text}\n");
    }
    s.push_str("See all findings in [README.md](README.md).\n");
    s
}

/// The index page `docs/findings/README.md`.
pub fn findings_index(entries: &[Entry]) -> String {
    let mut s = format!("<!-- Generated by `{GENERATED_BY}`: do not edit. -->\n\n# Findings\n\n");
    s.push_str(
        "Every finding routewarden reports, one page each: what it means, its evidence, the remedy and the alert that \
         fires. Built-in findings come from the rules; the others from the default kubelet journal rules \
         (`docs/journal.md`), to which your own rules may add ids. The same text is `man 7 routewarden-findings`.\n\n",
    );
    s.push_str("| id | what | severity | alert |\n| --- | --- | --- | --- |\n");
    for e in entries {
        let severity = e.sections().into_iter().find(|(h, _)| *h == "Severity").map(|(_, t)| t).unwrap_or_default();
        let severity = severity.split([',', ';', ' ']).next().unwrap_or_default().to_string();
        let alerts = e.alerts().join(", ");
        let _ = writeln!(s, "| [`{}`]({}) | {} | {severity} | {alerts} |", e.id, page_name(&e.id), e.title());
    }
    s
}

/// Roff text: escapes, and `code` in bold.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    let mut out = String::new();
    for (i, part) in escaped.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "\\fB{part}\\fR");
        } else {
            out.push_str(part);
        }
    }
    out.lines().map(|l| if l.starts_with(['.', '\'']) { format!("\\&{l}") } else { l.to_string() }).collect()
}

/// `routewarden-findings(7)`.
pub fn findings_man_page(entries: &[Entry]) -> String {
    let mut s = String::from(".TH ROUTEWARDEN-FINDINGS 7 \"\" \"routewarden\" \"routewarden\"\n");
    s.push_str(".SH NAME\nroutewarden-findings \\- what each routewarden finding means and what to do\n");
    s.push_str(
        ".SH DESCRIPTION\n\\fBroutewarden check\\fR, the daemon's \\fB/status\\fR and the metric \
         \\fBroutewarden_findings{id,severity}\\fR report findings by id. Each has a severity (info, warning, \
         critical), a summary, evidence lines and a remedy; this page says what each id means. Ids not listed here \
         come from journal rules added in \\fB/etc/routewarden/rules.d\\fR.\n.SH FINDINGS\n",
    );
    for e in entries {
        let _ = writeln!(s, ".TP\n.B {}\n{}", roff(&e.id), roff(&e.title()));
        for (heading, text) in e.sections() {
            let _ = writeln!(s, ".br\n\\fI{heading}:\\fR {}", roff(&text));
        }
    }
    s.push_str(".SH \"SEE ALSO\"\n\\fBroutewarden\\fR(8), \\fBroutewarden\\-check\\fR(8)\n");
    s
}

/// The metrics reference, from the table that describes every family the daemon serves
/// (`outputs::metrics::FAMILIES`): each family's sample name, type, labels and help, sorted by name.
pub fn metrics_reference() -> String {
    let mut families: Vec<(String, &Desc)> = FAMILIES.iter().map(|d| (d.full_name(), d)).collect();
    families.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = format!("<!-- Generated by `{GENERATED_BY}` from the daemon's registry (agent/src/outputs/metrics.rs): do not edit. -->\n\n");
    s.push_str(
        "# Metrics reference\n\nWhat `GET /metrics` serves (Prometheus text 0.0.4, or OpenMetrics when asked for \
         with `Accept: application/openmetrics-text`). The names are the sample names of the text format: a \
         counter `x` is sampled as `x_total`, an info metric `x` as `x_info` (value 1). The `kubernetes_*` series \
         exist only with `[kubernetes] enabled = true`. Labels are those the daemon sets.\n\n",
    );
    s.push_str("| metric | type | labels | what |\n| --- | --- | --- | --- |\n");
    for (name, d) in &families {
        let sample = match d.kind {
            Kind::Counter => format!("{name}_total"),
            Kind::Info => format!("{name}_info"),
            Kind::Gauge => name.clone(),
        };
        let mut labels: Vec<&str> = d.labels.to_vec();
        labels.sort_unstable();
        let labels = labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ");
        let help = d.help.trim_end_matches('.').replace('|', "\\|");
        let _ = writeln!(s, "| `{sample}` | {} | {labels} | {help} |", d.kind.as_str());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_has_a_title_and_a_remedy() {
        for e in entries().unwrap() {
            assert!(!e.title().is_empty(), "{}", e.id);
            assert!(e.sections().iter().any(|(h, t)| *h == "Remedy" && !t.is_empty()), "{}", e.id);
        }
    }

    #[test]
    fn roff_escapes_leading_dots_and_backslashes() {
        assert_eq!(roff(".x `a-b` \\"), "\\&.x \\fBa\\-b\\fR \\e");
    }
}
