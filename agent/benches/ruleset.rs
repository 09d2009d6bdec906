//! Generated kube-proxy iptables-mode rulesets of N ClusterIP Services x 5 endpoints, as restore text: used by
//! the detector benchmark and, through `#[path]`, by the legacy reader's system test.

use std::fmt::Write as _;

pub const ENDPOINTS: usize = 5;

/// A 16-character base32-looking suffix, like kube-proxy's hashed chain names.
fn suffix(kind: u8, i: usize) -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(kind);
    let mut s = String::with_capacity(16);
    for _ in 0..16 {
        s.push(ALPHA[(x % 32) as usize] as char);
        x = x / 32 + u64::from(kind) * 7 + 1;
    }
    s
}

/// kube-proxy iptables-mode restore text for `n` ClusterIP Services with ENDPOINTS endpoints each.
pub fn ruleset(n: usize) -> String {
    let mut s = String::with_capacity(n * 1200);
    s.push_str("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    s.push_str(
        ":KUBE-SERVICES - [0:0]\n:KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FORWARD - [0:0]\n:KUBE-NODEPORTS - [0:0]\n",
    );
    s.push_str(":KUBE-PROXY-FIREWALL - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\n:KUBE-FIREWALL - [0:0]\n");
    s.push_str("-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n");
    s.push_str(
        "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    s.push_str("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n");
    s.push_str(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n",
    );
    s.push_str(":KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n");
    s.push_str(":KUBE-PROXY-CANARY - [0:0]\n");
    for i in 0..n {
        let _ = writeln!(s, ":KUBE-SVC-{} - [0:0]", suffix(1, i));
        for e in 0..ENDPOINTS {
            let _ = writeln!(s, ":KUBE-SEP-{} - [0:0]", suffix(2, i * ENDPOINTS + e));
        }
    }
    s.push_str("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
    s.push_str("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
    s.push_str("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n");
    s.push_str("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n");
    s.push_str("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n");
    for i in 0..n {
        let (a, b) = (10 + i / 65536, i % 65536);
        let ip = format!("10.{a}.{}.{}", b / 256, b % 256);
        let _ = writeln!(
            s,
            "-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment \"ns{i}/svc{i}:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-{}",
            suffix(1, i)
        );
    }
    s.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
    for i in 0..n {
        let svc = suffix(1, i);
        let _ = writeln!(s, "-A KUBE-SVC-{svc} ! -s 10.0.0.0/8 -p tcp -m comment --comment \"ns{i}/svc{i}:http cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ");
        for e in 0..ENDPOINTS {
            let sep = suffix(2, i * ENDPOINTS + e);
            let left = ENDPOINTS - e;
            if left > 1 {
                let _ = writeln!(s, "-A KUBE-SVC-{svc} -m comment --comment \"ns{i}/svc{i}:http -> ep{e}\" -m statistic --mode random --probability {:.11} -j KUBE-SEP-{sep}", 1.0 / left as f64);
            } else {
                let _ = writeln!(
                    s,
                    "-A KUBE-SVC-{svc} -m comment --comment \"ns{i}/svc{i}:http -> ep{e}\" -j KUBE-SEP-{sep}"
                );
            }
            let j = i * ENDPOINTS + e;
            let ep = format!("172.{}.{}.{}", 16 + j / 65536 % 16, j / 256 % 256, j % 256);
            let _ = writeln!(
                s,
                "-A KUBE-SEP-{sep} -s {ep}/32 -m comment --comment \"ns{i}/svc{i}:http\" -j KUBE-MARK-MASQ"
            );
            let _ = writeln!(s, "-A KUBE-SEP-{sep} -p tcp -m comment --comment \"ns{i}/svc{i}:http\" -m tcp -j DNAT --to-destination {ep}:8080");
        }
    }
    s.push_str("COMMIT\n");
    s
}
