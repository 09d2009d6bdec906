//! Jumps between chains as `iptables-save` prints them (`-j CHAIN` / `-g CHAIN` to a chain the table declares),
//! to compare with the jumps the kernel-blob decoder finds. Shared with the system tests through `#[path]`.

/// (table, from chain, to chain, goto) for every rule of `save` that jumps to a user chain, sorted.
pub fn save_jumps(save: &str) -> Vec<(String, String, String, bool)> {
    let mut table = "filter".to_string();
    let mut declared = std::collections::HashSet::new();
    let mut rules: Vec<(String, String, String, bool)> = Vec::new();
    for line in save.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_string();
        } else if let Some(c) = line.strip_prefix(':') {
            declared.insert((table.clone(), c.split_whitespace().next().unwrap_or("").to_string()));
        } else if line.starts_with("-A ") {
            let tokens = tokens(line);
            let from = tokens.get(1).cloned().unwrap_or_default();
            for w in tokens.windows(2) {
                if w[0] == "-j" || w[0] == "-g" {
                    rules.push((table.clone(), from.clone(), w[1].clone(), w[0] == "-g"));
                }
            }
        }
    }
    const BUILTIN: &[&str] = &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];
    let mut jumps: Vec<_> = rules
        .into_iter()
        .filter(|(t, _, to, _)| declared.contains(&(t.clone(), to.clone())) && !BUILTIN.contains(&to.as_str()))
        .collect();
    jumps.sort();
    jumps
}

/// Whitespace-separated tokens, a double-quoted string (with `\"` escapes) being one token.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for c in line.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
            any = true;
        } else if c.is_whitespace() && !quoted {
            if any || !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            any = false;
        } else {
            cur.push(c);
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}
