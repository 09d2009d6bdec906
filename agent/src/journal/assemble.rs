//! Record assembly: journald stores every physical line a writer prints on stdout/stderr as its own entry, so one
//! klog message with a multi-line value (`err=<` … ` >`), a gRPC address dump (`failed to connect to {` … `}`) or a
//! `Trace[id]:` block arrives as several entries. They are joined (with newlines) into one record before the rules
//! see it: same writer and `_PID`, consecutive, each line of the shape its opener announced, bounded in lines,
//! bytes and time so that a runaway writer costs nothing. Everything else passes through untouched. Pure.

use super::entry::Entry;

/// At most this many physical lines in one record.
pub const MAX_LINES: u32 = 200;
/// At most this many bytes in one record.
pub const MAX_BYTES: usize = 64 * 1024;
/// Each continuation must follow the previous line within this time (µs).
pub const MAX_GAP_USEC: u64 = 1_000_000;

/// What the opening line announced.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// klog's multi-line value: `key=<`, lines indented by a tab, closed by ` >`.
    KlogBlock,
    /// A dump ending in `{`: lines indented by two spaces, closed by a line starting with `}`.
    Braces,
    /// klog's `utiltrace` block: lines starting with `Trace[id]:`, the last one ending in `END`.
    Trace(String),
}

#[derive(Debug)]
struct Pending {
    entry: Entry,
    shape: Shape,
    lines: u32,
    last_usec: u64,
}

/// Joins continuation entries into their records.
#[derive(Debug, Default)]
pub struct Assembler {
    pending: Option<Pending>,
    /// Records that reached a bound and were cut there.
    pub cut: u64,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// Feeds one entry; calls `out` with every record that is complete.
    pub fn push(&mut self, e: Entry, mut out: impl FnMut(Entry)) {
        if let Some(p) = &mut self.pending {
            let same = e.unit == p.entry.unit
                && e.pid == p.entry.pid
                && e.realtime_usec >= p.last_usec
                && e.realtime_usec - p.last_usec <= MAX_GAP_USEC;
            if same && continues(&p.shape, &e.message) {
                if p.lines >= MAX_LINES || p.entry.message.len() + 1 + e.message.len() > MAX_BYTES {
                    self.cut += 1;
                } else {
                    p.entry.message.push('\n');
                    p.entry.message.push_str(&e.message);
                    p.entry.cursor = e.cursor;
                    p.lines += 1;
                    p.last_usec = e.realtime_usec;
                    if closes(&p.shape, &e.message) {
                        // A closing line that opens another block (` > more=<`) keeps the record open.
                        match opens(&e.message) {
                            Some(shape) => p.shape = shape,
                            None => self.flush(&mut out),
                        }
                    }
                    return;
                }
            }
            self.flush(&mut out);
        }
        match opens(&e.message) {
            Some(shape) => self.pending = Some(Pending { last_usec: e.realtime_usec, entry: e, shape, lines: 1 }),
            None => out(e),
        }
    }

    /// Emits the record held, if any: at the end of the input, or when no more entries are waiting to be read.
    pub fn flush(&mut self, mut out: impl FnMut(Entry)) {
        if let Some(p) = self.pending.take() {
            out(p.entry);
        }
    }

    /// Whether a record is held back.
    pub fn holds(&self) -> bool {
        self.pending.is_some()
    }
}

/// The shape a line announces, if it opens a multi-line record.
fn opens(m: &str) -> Option<Shape> {
    let t = m.trim_end();
    if t.ends_with("=<") {
        return Some(Shape::KlogBlock);
    }
    if t.ends_with('{') {
        return Some(Shape::Braces);
    }
    if t.ends_with("):") {
        let i = t.find("Trace[")?;
        let end = t[i..].find("]:")?;
        return Some(Shape::Trace(t[i..i + end + 2].to_string()));
    }
    None
}

fn continues(shape: &Shape, m: &str) -> bool {
    match shape {
        Shape::KlogBlock => m.starts_with('\t') || m.starts_with(" >") || m.is_empty(),
        Shape::Braces => m.starts_with("  ") || m.starts_with('}'),
        Shape::Trace(prefix) => m.trim_start().starts_with(prefix.as_str()),
    }
}

fn closes(shape: &Shape, m: &str) -> bool {
    match shape {
        Shape::KlogBlock => m.starts_with(" >"),
        Shape::Braces => m.starts_with('}'),
        Shape::Trace(_) => m.trim_end().ends_with("END"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ms: u64, unit: &str, pid: u32, m: &str) -> Entry {
        Entry {
            cursor: format!("c{ms}"),
            realtime_usec: 1_790_000_000_000_000 + ms * 1000,
            unit: unit.into(),
            pid,
            message: m.into(),
        }
    }

    fn run(entries: Vec<Entry>) -> Vec<Entry> {
        let mut a = Assembler::new();
        let mut out = Vec::new();
        for x in entries {
            a.push(x, |r| out.push(r));
        }
        a.flush(|r| out.push(r));
        out
    }

    const K: &str = "kube-proxy.service";

    #[test]
    fn a_klog_block_becomes_one_record_with_the_last_cursor() {
        let out = run(vec![
            e(0, K, 1, r#"E0710 14:33:53.863126       1 proxier.go:994] "Failed to list nftables elements" err=<"#),
            e(1, K, 1, "\tfailed to run nft: JSON support not compiled-in"),
            e(2, K, 1, r#" > ipFamily="IPv4" containerName="cluster-ips""#),
            e(3, K, 1, "I0710 14:33:54.000000       1 proxier.go:1097] next"),
        ]);
        assert_eq!(out.len(), 2);
        assert!(out[0].message.contains("err=<\n\tfailed to run nft") && out[0].message.ends_with("\"cluster-ips\""));
        assert_eq!((out[0].realtime_usec, out[0].cursor.as_str()), (1_790_000_000_000_000, "c2"));
    }

    #[test]
    fn grpc_dumps_and_traces_are_joined() {
        let out = run(vec![
            e(
                0,
                "kubelet.service",
                7,
                "W0303 logging.go:59] [core] grpc: addrConn.createTransport failed to connect to {",
            ),
            e(1, "kubelet.service", 7, r#"  "Addr": "/run/containerd/containerd.sock","#),
            e(
                2,
                "kubelet.service",
                7,
                r#"}. Err: connection error: desc = "transport: Error while dialing dial unix /run/containerd/containerd.sock: connect: connection refused""#,
            ),
            e(
                3,
                K,
                1,
                r#"I1011 06:24:00.822985       1 trace.go:116] Trace[409041330]: "iptables restore" (started: 2019-10-11 06:23:58.822429637 +0000 UTC m=+286.637350522) (total time: 2.000481866s):"#,
            ),
            e(4, K, 1, "Trace[409041330]: [2.000481866s] [2.000481866s] END"),
        ]);
        assert_eq!(out.len(), 2, "{out:#?}");
        assert_eq!(out[0].message.lines().count(), 3);
        assert!(out[1].message.ends_with("END"));
    }

    #[test]
    fn other_writers_pids_gaps_and_shapes_break_a_record() {
        let open = r#"E1 proxier.go:1] "Failed" err=<"#;
        // Another process, another unit, a late line, a line of another shape: each ends the record.
        for next in [e(1, K, 2, "\tx"), e(1, "kubelet.service", 1, "\tx"), e(2000, K, 1, "\tx"), e(1, K, 1, "I0101 x")]
        {
            let out = run(vec![e(0, K, 1, open), next]);
            assert_eq!(out.len(), 2, "{out:#?}");
            assert_eq!(out[0].message, open);
        }
        // Lines that open nothing pass straight through, without waiting.
        let mut a = Assembler::new();
        let mut n = 0;
        a.push(e(0, K, 1, "I0101 plain"), |_| n += 1);
        assert_eq!((n, a.holds()), (1, false));
    }

    #[test]
    fn a_runaway_writer_is_cut_at_the_bounds() {
        let mut v = vec![e(0, K, 1, "E1 x] \"Failed\" err=<")];
        v.extend((0..1000).map(|i| e(i / 10, K, 1, "\tline of a block that never closes")));
        let mut a = Assembler::new();
        let mut out = Vec::new();
        for x in v {
            a.push(x, |r| out.push(r));
        }
        a.flush(|r| out.push(r));
        assert_eq!(out[0].message.lines().count(), MAX_LINES as usize);
        assert!(out.iter().all(|r| r.message.len() <= MAX_BYTES) && a.cut > 0);
        let mut v = vec![e(0, K, 1, "E1 x] \"Failed\" err=<")];
        v.extend((0..10).map(|_| e(0, K, 1, &format!("\t{}", "y".repeat(20_000)))));
        let out = run(v);
        assert!(out[0].message.len() <= MAX_BYTES && out.len() > 1);
    }
}
