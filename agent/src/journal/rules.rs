//! Journal rules: their TOML form, the shipped defaults, and the compiled set (one `RegexSet` over every pattern,
//! so each line is scanned once).

use std::collections::BTreeMap;

use regex::bytes::{RegexSet, RegexSetBuilder};
use regex::Regex;

/// The lazy DFA's cache for the whole rule set: with the default (2 MiB) the combined automaton of some 30
/// patterns thrashes and falls back to a slower engine (10x slower per line).
const DFA_CACHE: usize = 32 << 20;

/// The set matches bytes with ASCII classes (`(?-u)`: `\S`, `\d`, `.` are bytes, not UTF-8 sequences), which keeps
/// the combined automaton small; the logs are ASCII where it matters. A pattern that needs Unicode (a non-ASCII
/// literal) keeps it.
fn ascii(p: &str) -> String {
    let a = format!("(?-u){p}");
    if regex::bytes::Regex::new(&a).is_ok() {
        a
    } else {
        p.to_string()
    }
}

use crate::model::journal::{ApiServer, Rule, RulesFile};

/// In a pattern, stands for the kubelet's API server endpoint (host and port as a `dial tcp` target or a URL has
/// them): the `server:` of its kubeconfig, or, without one, [`crate::model::journal::FALLBACK_API_SERVER`].
pub const API_SERVER_TOKEN: &str = "{apiserver}";

/// The default rules, as shipped.
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// A rule set that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{origin}")]
    Parse { origin: String, source: Box<toml::de::Error> },
    #[error("rule {id}: invalid {what}")]
    Regex { id: String, what: &'static str, source: Box<regex::Error> },
    #[error("rule {id}: {why}")]
    Invalid { id: String, why: String },
}

/// Parses a rules file; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Rule>, RulesError> {
    let f: RulesFile =
        toml::from_str(text).map_err(|source| RulesError::Parse { origin: origin.into(), source: Box::new(source) })?;
    Ok(f.rules)
}

/// Defaults merged with user rules: a user rule with a default's id replaces it.
pub fn merge(defaults: Vec<Rule>, user: Vec<Rule>) -> Vec<Rule> {
    let mut by_id: BTreeMap<String, Rule> = BTreeMap::new();
    let mut order = Vec::new();
    for r in defaults.into_iter().chain(user) {
        if !by_id.contains_key(&r.id) {
            order.push(r.id.clone());
        }
        by_id.insert(r.id.clone(), r);
    }
    order.into_iter().filter_map(|id| by_id.remove(&id)).collect()
}

/// Log level as the component wrote it (klog letter or logfmt `level=`), not journald's PRIORITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
    Fatal,
    Unknown,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Fatal => "fatal",
            Level::Unknown => "unknown",
        }
    }
}

/// Reads the level from a klog header (`E1121 12:00:00.000000 ...`) or a logfmt `level=...` field.
pub fn level(message: &str) -> Level {
    let b = message.as_bytes();
    if b.len() > 5 && b[1..5].iter().all(u8::is_ascii_digit) && b.get(5) == Some(&b' ') {
        return match b[0] {
            b'I' => Level::Info,
            b'W' => Level::Warning,
            b'E' => Level::Error,
            b'F' => Level::Fatal,
            _ => Level::Unknown,
        };
    }
    if let Some(i) = message.find("level=") {
        let v = message[i + 6..].trim_start_matches('"');
        return match v.as_bytes().first() {
            Some(b'i' | b'd' | b't') => Level::Info,
            Some(b'w') => Level::Warning,
            Some(b'e') => Level::Error,
            Some(b'f' | b'p') => Level::Fatal,
            _ => Level::Unknown,
        };
    }
    Level::Unknown
}

/// A rule ready to match.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub rule: Rule,
    /// The patterns with a `subject` group, again, for captures on matching lines only.
    pub capture: Vec<Regex>,
    pub clear: Option<Regex>,
    /// `unless`: a matching line that also matches this does not count.
    pub unless: Option<regex::bytes::Regex>,
    /// Indices of the rules in `all_of`.
    pub parts: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Compiled>,
    set: RegexSet,
    /// For each pattern of `set`, the rule it belongs to.
    set_rule: Vec<usize>,
    /// For each pattern of `set`, whether it matches at every level: it names the API server endpoint read from
    /// the kubelet's kubeconfig, which no probe or other peer of the kubelet shares.
    set_any_level: Vec<bool>,
    clears: RegexSet,
    clear_rule: Vec<usize>,
    /// What `{apiserver}` stood for.
    pub api_server: ApiServer,
}

impl RuleSet {
    pub fn compile(rules: Vec<Rule>) -> Result<RuleSet, RulesError> {
        RuleSet::compile_for(rules, &ApiServer::Unknown)
    }

    /// Compiles `rules` with `{apiserver}` standing for `api`.
    pub fn compile_for(rules: Vec<Rule>, api: &ApiServer) -> Result<RuleSet, RulesError> {
        let api_regex = api.regex();
        let known = matches!(api, ApiServer::Known { .. });
        let mut patterns = Vec::new();
        let mut set_rule = Vec::new();
        let mut set_any_level = Vec::new();
        let mut clear_patterns = Vec::new();
        let mut clear_rule = Vec::new();
        let ids: Vec<String> = rules.iter().map(|r| r.id.clone()).collect();
        let mut compiled = Vec::new();
        for (i, rule) in rules.into_iter().enumerate() {
            let bad = |why: String| RulesError::Invalid { id: rule.id.clone(), why };
            if rule.matches_lines() != rule.all_of.is_empty() {
                return Err(bad("needs exactly one of `pattern` (or `patterns`) and `all_of`".into()));
            }
            if rule.threshold == 0 || rule.window_secs == 0 {
                return Err(bad("threshold and window_secs must be at least 1".into()));
            }
            const MONTH: u64 = 31 * 86_400;
            let secs = [rule.window_secs, rule.for_secs, rule.clear_after_secs.unwrap_or(0), rule.recur_secs()];
            if secs.iter().any(|&s| s > MONTH) {
                return Err(bad(format!(
                    "window_secs, for_secs, recur_secs and clear_after_secs must be at most {MONTH} (31 days)"
                )));
            }
            if rule.recur_secs() == 0 {
                return Err(bad("recur_secs must be at least 1".into()));
            }
            for u in &rule.units {
                if u.is_empty() || u.starts_with("docker/") && u.len() == "docker/".len() {
                    return Err(bad(format!("unit {u:?} names no unit (docker/<container> for docker's log driver)")));
                }
            }
            for l in &rule.levels {
                if !["info", "warning", "error", "fatal", "unknown"].contains(&l.as_str()) {
                    return Err(bad(format!("unknown level {l:?} (info, warning, error, fatal, unknown)")));
                }
            }
            let mut parts = Vec::new();
            for part in &rule.all_of {
                match ids.iter().position(|id| id == part) {
                    Some(p) if p != i => parts.push(p),
                    _ => return Err(bad(format!("all_of names unknown rule {part:?}"))),
                }
            }
            let regex = |what, p: &str| {
                Regex::new(p).map_err(|source| RulesError::Regex {
                    id: rule.id.clone(),
                    what,
                    source: Box::new(source),
                })
            };
            let mut capture = Vec::new();
            for p in rule.all_patterns() {
                let named = p.contains(API_SERVER_TOKEN);
                let p = &p.replace(API_SERVER_TOKEN, &api_regex);
                let re = regex("pattern", p)?;
                patterns.push(p.clone());
                set_rule.push(i);
                set_any_level.push(named && known);
                if re.capture_names().flatten().any(|n| n == "subject") {
                    capture.push(re);
                }
            }
            let clear = match &rule.clear_pattern {
                Some(p) => {
                    let re = regex("clear_pattern", p)?;
                    clear_patterns.push(p.clone());
                    clear_rule.push(i);
                    Some(re)
                }
                None => None,
            };
            let unless = match &rule.unless {
                Some(p) => Some(regex::bytes::Regex::new(&ascii(p)).map_err(|source| RulesError::Regex {
                    id: rule.id.clone(),
                    what: "unless",
                    source: Box::new(source),
                })?),
                None => None,
            };
            compiled.push(Compiled { rule, capture, clear, unless, parts });
        }
        let set = RegexSetBuilder::new(patterns.iter().map(|p| ascii(p))).dfa_size_limit(DFA_CACHE).build().map_err(
            |source| RulesError::Regex { id: "(all)".into(), what: "pattern set", source: Box::new(source) },
        )?;
        let clears = RegexSet::new(clear_patterns.iter().map(|p| ascii(p))).map_err(|source| RulesError::Regex {
            id: "(all)".into(),
            what: "clear set",
            source: Box::new(source),
        })?;
        Ok(RuleSet { rules: compiled, set, set_rule, set_any_level, clears, clear_rule, api_server: api.clone() })
    }

    /// The same rules again with `{apiserver}` standing for `api`.
    pub fn for_api_server(&self, api: &ApiServer) -> Result<RuleSet, RulesError> {
        RuleSet::compile_for(self.rules.iter().map(|c| c.rule.clone()).collect(), api)
    }

    /// The default rules plus `user`.
    pub fn with_defaults(user: Vec<Rule>) -> Result<RuleSet, RulesError> {
        RuleSet::compile(merge(parse(DEFAULT_RULES, "default rules")?, user))
    }

    /// Rules whose pattern matches a line of `unit`, with the line's level checked (pure, allocation-free when
    /// nothing matches).
    pub fn matches(&self, unit: &str, message: &str, out: &mut Vec<usize>) {
        out.clear();
        // `is_match` stops at the first match and allocates nothing; most lines match no rule.
        if !self.set.is_match(message.as_bytes()) {
            return;
        }
        let hits = self.set.matches(message.as_bytes());
        let lvl = level(message);
        for p in hits.iter() {
            let i = self.set_rule[p];
            // A rule's patterns are consecutive in the set: several matching count once.
            if out.last() == Some(&i) {
                continue;
            }
            let c = &self.rules[i];
            let r = &c.rule;
            if (r.units.is_empty() || r.units.iter().any(|u| u == unit))
                && (self.set_any_level[p] || r.levels.is_empty() || r.levels.iter().any(|l| l == lvl.name()))
                && !c.unless.as_ref().is_some_and(|u| u.is_match(message.as_bytes()))
            {
                out.push(i);
            }
        }
    }

    /// Rules whose clear pattern matches a line of `unit`.
    pub fn clears(&self, unit: &str, message: &str) -> Vec<usize> {
        if self.clear_rule.is_empty() || !self.clears.is_match(message.as_bytes()) {
            return Vec::new();
        }
        self.clears
            .matches(message.as_bytes())
            .iter()
            .map(|p| self.clear_rule[p])
            .filter(|&i| {
                let r = &self.rules[i].rule;
                r.units.is_empty() || r.units.iter().any(|u| u == unit)
            })
            .collect()
    }

    /// Every writer some rule names, as the rules name them (`docker/<container>` included, `kernel` excluded);
    /// empty when a rule watches all units.
    pub fn writers(&self) -> Vec<String> {
        let mut units: Vec<String> = Vec::new();
        for c in &self.rules {
            if c.rule.matches_lines() && c.rule.units.is_empty() {
                return Vec::new();
            }
            for u in &c.rule.units {
                if u != "kernel" && !units.contains(u) {
                    units.push(u.clone());
                }
            }
        }
        units
    }

    /// How far before a saved cursor the daemon replays the journal to rebuild its rules' state (seconds): the
    /// longest window, quiet period or `for_secs` plus `recur_secs` of any rule.
    pub fn replay_secs(&self) -> u64 {
        self.rules
            .iter()
            .map(|c| {
                let r = &c.rule;
                r.window_secs.max(r.clear_after_secs.unwrap_or(0)).max(r.for_secs + r.recur_secs())
            })
            .max()
            .unwrap_or(0)
    }

    /// The systemd units to follow (journalctl `_SYSTEMD_UNIT=` matches; kernel messages are always added):
    /// `docker/<container>` writers come from `docker.service`. Empty when a rule watches all units.
    pub fn units(&self) -> Vec<String> {
        let mut units: Vec<String> = Vec::new();
        for w in self.writers() {
            let u = if w.starts_with("docker/") { "docker.service".to_string() } else { w };
            if !units.contains(&u) {
                units.push(u);
            }
        }
        units
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_compile() {
        let rs = RuleSet::with_defaults(Vec::new()).unwrap();
        assert!(rs.rules.len() >= 8);
    }

    #[test]
    fn levels_come_from_klog_letters_and_logfmt() {
        assert_eq!(level("E1121 12:00:00.000000    1234 kubelet.go:2855] x"), Level::Error);
        assert_eq!(level("W0102 00:00:00.1 1 a.go:1] x"), Level::Warning);
        assert_eq!(level("time=\"2026\" level=error msg=\"x\""), Level::Error);
        assert_eq!(level("nfs: server 10.0.0.1 not responding"), Level::Unknown);
    }

    #[test]
    fn bad_rules_are_refused_with_their_id() {
        let r = |extra: &str| {
            parse(&format!("[[rules]]\nid = \"x\"\nseverity = \"warning\"\nsummary = \"s\"\n{extra}"), "t").unwrap()
        };
        let e = crate::model::strict_chain(&RuleSet::compile(r("pattern = \"(\"")).unwrap_err());
        assert!(e.contains("rule x") && e.contains("pattern"), "{e}");
        let e = crate::model::strict_chain(&RuleSet::compile(r("")).unwrap_err());
        assert!(e.contains("exactly one"), "{e}");
        let e = crate::model::strict_chain(&RuleSet::compile(r("all_of = [\"nope\"]")).unwrap_err());
        assert!(e.contains("\"nope\""), "{e}");
        let e = crate::model::strict_chain(&parse("[[rules]]\nid = 1\n", "rules.d/a.toml").unwrap_err());
        assert!(e.contains("rules.d/a.toml"), "{e}");
    }

    /// One group of labelled lines of `agent/tests/data/journal/`.
    #[derive(serde::Deserialize)]
    struct Group {
        source: String,
        version: String,
        unit: String,
        /// The kubelet's API server, when the group gives it: the rules are measured with `{apiserver}` standing
        /// for it.
        #[serde(default)]
        api_server: Option<String>,
        lines: Vec<(String, String)>,
    }

    #[derive(serde::Deserialize)]
    struct Corpus {
        group: Vec<Group>,
    }

    /// One corpus line.
    pub(crate) struct Line {
        pub unit: String,
        pub label: String,
        pub message: String,
        pub source: String,
        pub version: String,
        pub api_server: Option<String>,
        /// The corpus file it is in.
        pub file: &'static str,
    }

    /// Every corpus line.
    pub(crate) fn corpus() -> Vec<Line> {
        let files = [
            ("corpus-01-issues.toml", include_str!("../../tests/data/journal/corpus-01-issues.toml")),
            ("corpus-02-format.toml", include_str!("../../tests/data/journal/corpus-02-format.toml")),
            ("corpus-03-issue23.toml", include_str!("../../tests/data/journal/corpus-03-issue23.toml")),
        ];
        let mut out = Vec::new();
        for (file, f) in files {
            let c: Corpus = toml::from_str(f).unwrap();
            for g in c.group {
                for (label, message) in g.lines {
                    out.push(Line {
                        unit: g.unit.clone(),
                        label,
                        message,
                        source: g.source.clone(),
                        version: g.version.clone(),
                        api_server: g.api_server.clone(),
                        file,
                    });
                }
            }
        }
        out
    }

    /// Recall per rule (hits, lines), per rule and version (for "benign": lines that matched nothing, lines), the
    /// misses and the benign lines matched, with every
    /// group's `api_server` as `{apiserver}` (`with_endpoints`) or the fallback for all.
    #[allow(clippy::type_complexity)]
    fn measure(
        corpus: &[Line],
        with_endpoints: bool,
    ) -> (BTreeMap<String, (u32, u32)>, BTreeMap<(String, String), (u32, u32)>, Vec<String>, Vec<String>) {
        let fallback = RuleSet::with_defaults(Vec::new()).unwrap();
        let mut sets: BTreeMap<String, RuleSet> = BTreeMap::new();
        let (mut per_rule, mut per_version) = (BTreeMap::new(), BTreeMap::new());
        let (mut misses, mut benign_hits) = (Vec::new(), Vec::new());
        let mut out = Vec::new();
        for l in corpus {
            let rs = match (&l.api_server, with_endpoints) {
                (Some(url), true) => sets.entry(url.clone()).or_insert_with(|| {
                    let api = ApiServer::from_url(url, "corpus").unwrap();
                    fallback.for_api_server(&api).unwrap()
                }),
                _ => &fallback,
            };
            rs.matches(&l.unit, &l.message, &mut out);
            let got: Vec<&str> = out.iter().map(|&i| rs.rules[i].rule.id.as_str()).collect();
            if l.label == "benign" {
                // Benign lines per version count the ones that stayed clean.
                let e = per_version.entry(("benign".to_string(), l.version.clone())).or_insert((0, 0));
                e.0 += u32::from(got.is_empty());
                e.1 += 1;
                if !got.is_empty() {
                    benign_hits.push(format!("{got:?} on benign {}: {} ({})", l.unit, l.message, l.source));
                }
                continue;
            }
            assert!(rs.rules.iter().any(|c| c.rule.id == l.label), "unknown label {}", l.label);
            let hit = got.contains(&l.label.as_str());
            for e in [
                per_rule.entry(l.label.clone()).or_insert((0, 0)),
                per_version.entry((l.label.clone(), l.version.clone())).or_insert((0, 0)),
            ] {
                e.0 += u32::from(hit);
                e.1 += 1;
            }
            if !hit {
                misses.push(format!("{} missed {}: {} ({})", l.label, l.unit, l.message, l.source));
            }
        }
        (per_rule, per_version, misses, benign_hits)
    }

    /// Recall per rule and per rule and version (printed: `cargo test -p routewarden --lib corpus -- --nocapture`),
    /// and benign matches, over the whole corpus; at least 0.95 per rule and none benign.
    #[test]
    fn the_corpus_meets_recall_without_root() {
        let corpus = corpus();
        let (per_rule, per_version, misses, benign_hits) = measure(&corpus, true);
        let benign = corpus.iter().filter(|c| c.label == "benign").count();
        println!("corpus: {} lines, {benign} benign", corpus.len());
        for (rule, (hit, n)) in &per_rule {
            println!("{rule:32} recall {:.3} ({hit}/{n})", f64::from(*hit) / f64::from(*n));
        }
        for ((rule, version), (hit, n)) in &per_version {
            println!("  {rule:30} {version:80} {hit}/{n}");
        }
        println!("benign lines matched: {} of {benign}", benign_hits.len());
        // The same lines without the kubeconfig endpoints: what the fallback ports alone reach.
        let (fallback, _, fallback_misses, fallback_benign) = measure(&corpus, false);
        let api = |m: &BTreeMap<String, (u32, u32)>| m.get("apiserver.unreachable").copied().unwrap_or_default();
        println!(
            "apiserver.unreachable without the groups' kubeconfig endpoints: {}/{} ({} misses, {} benign matched)",
            api(&fallback).0,
            api(&fallback).1,
            fallback_misses.len(),
            fallback_benign.len()
        );
        let low: Vec<_> = per_rule.iter().filter(|(_, (h, n))| f64::from(*h) < 0.95 * f64::from(*n)).collect();
        assert!(
            low.is_empty() && benign_hits.is_empty(),
            "below 0.95: {low:?}\n{}\n{}",
            misses.join("\n"),
            benign_hits.join("\n")
        );
        assert!(corpus.len() >= 400 && benign >= 150);
    }

    #[test]
    fn issue_23s_kinds_all_match_and_the_endpoint_is_what_reaches_the_api_server_lines() {
        let corpus: Vec<Line> = corpus().into_iter().filter(|l| l.file == "corpus-03-issue23.toml").collect();
        let (per_rule, _, misses, benign_hits) = measure(&corpus, true);
        assert!(misses.is_empty() && benign_hits.is_empty(), "{}\n{}", misses.join("\n"), benign_hits.join("\n"));
        assert!(per_rule.contains_key("apiserver.unreachable"), "{per_rule:?}");
        // Without the endpoint, the load balancer's port 5000 and 6553 and the info-level lines are missed.
        let (fallback, _, _, _) = measure(&corpus, false);
        let (hit, n) = fallback["apiserver.unreachable"];
        assert!(hit + 5 <= n, "{hit}/{n}");
    }

    #[test]
    fn units_to_follow_map_docker_writers_to_docker_service() {
        let rs = RuleSet::with_defaults(Vec::new()).unwrap();
        let units = rs.units();
        assert!(units.contains(&"docker.service".to_string()) && !units.iter().any(|u| u.starts_with("docker/")));
        assert!(!units.contains(&"kernel".to_string()) && units.contains(&"kubelet.service".to_string()));
        assert!(rs.writers().contains(&"docker/kube-proxy".to_string()));
    }

    #[test]
    fn a_line_that_matches_unless_does_not_count() {
        let crio = "I0107 23:21:12.685783 7674 factory.go:219] Registration of the crio container factory failed: Get \"http://%2Fvar%2Frun%2Fcrio%2Fcrio.sock/info\": dial unix /var/run/crio/crio.sock: connect: no such file or directory";
        let down = r#"E0107 23:25:00.000001 7674 remote_runtime.go:633] "Status from runtime service failed" err="rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix /var/run/crio/crio.sock: connect: connection refused\"""#;
        let rs = RuleSet::with_defaults(Vec::new()).unwrap();
        let mut out = Vec::new();
        rs.matches("kubelet.service", crio, &mut out);
        assert!(out.is_empty(), "cAdvisor's probe of a runtime the node does not run");
        rs.matches("kubelet.service", down, &mut out);
        assert_eq!(out.len(), 1, "the runtime really down still counts");
        let bad = parse(
            "[[rules]]\nid = \"x\"\npattern = \"a\"\nunless = \"(\"\nseverity = \"warning\"\nsummary = \"s\"\n",
            "u",
        )
        .unwrap();
        let e = crate::model::strict_chain(&RuleSet::compile(bad).unwrap_err());
        assert!(e.contains("rule x") && e.contains("unless"), "{e}");
    }

    #[test]
    fn user_rules_replace_defaults_by_id() {
        let user = parse("[[rules]]\nid = \"iptables.lock-contention\"\npattern = \"xtables\"\nseverity = \"critical\"\nsummary = \"s\"\n", "u").unwrap();
        let rs = RuleSet::with_defaults(user).unwrap();
        let r = rs.rules.iter().find(|c| c.rule.id == "iptables.lock-contention").unwrap();
        assert_eq!(r.rule.severity, crate::model::Severity::Critical);
        assert_eq!(rs.rules.iter().filter(|c| c.rule.id == "iptables.lock-contention").count(), 1);
    }
}
