//! Where `check`'s memory goes on a large iptables-nft node, without root: a counting global allocator measures the
//! live heap and its high-water mark while the nftables dump of N Services (kube-proxy's names, 5 endpoints each,
//! streamed through the source's `Grouper` as the netlink reader hands them over) is grouped into the snapshot,
//! analysed (`rules::analyse`) and rendered as JSON. The snapshot's other sources come from a recorded world
//! (`kube_proxy_alone_is_healthy_with_mode_backend_and_services`). Numbers go to BENCHMARKS.md.
//!
//! cargo bench --bench check_memory -- [--services 10000,50000]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

#[path = "support.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use routewarden::model::{Snapshot, Source};
use routewarden::sources::nftables::Grouper;
use routewarden::sys::nfnetlink::NftSink;

/// The system allocator, counting live bytes and their peak.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Relaxed);
            let now = LIVE.fetch_add(new, Relaxed) + new;
            PEAK.fetch_max(now, Relaxed);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Resets the peak to the live heap and returns the live heap.
fn mark() -> usize {
    let live = LIVE.load(Relaxed);
    PEAK.store(live, Relaxed);
    live
}

/// Kube-proxy-like chain names of `n` Services, as the nftables dump of an iptables-nft node reports them.
fn dump(n: usize, sink: &mut impl NftSink) {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let suffix = |kind: u64, i: usize| {
        let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ kind;
        (0..16)
            .map(|_| {
                let c = ALPHA[(x % 32) as usize] as char;
                x = x / 32 + kind * 7 + 1;
                c
            })
            .collect::<String>()
    };
    for t in ["filter", "nat"] {
        sink.object(2, t, "", false);
    }
    for c in ["INPUT", "FORWARD", "OUTPUT", "KUBE-SERVICES", "KUBE-FORWARD", "KUBE-PROXY-CANARY", "KUBE-FIREWALL"] {
        sink.object(2, "filter", c, c.len() < 8);
    }
    for c in ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"] {
        sink.object(2, "nat", c, !c.starts_with("KUBE"));
    }
    for i in 0..n {
        sink.object(2, "nat", &format!("KUBE-SVC-{}", suffix(1, i)), false);
        for e in 0..5 {
            sink.object(2, "nat", &format!("KUBE-SEP-{}", suffix(2, i * 5 + e)), false);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !support::benchmarking(&args) {
        return;
    }
    let sizes: Vec<usize> =
        support::opt(&args, "--services", "10000,50000").split(',').map(|s| s.parse().unwrap()).collect();
    let recorded =
        include_str!("../tests/data/snapshots/kube_proxy_alone_is_healthy_with_mode_backend_and_services.json");
    println!("| Services | chains | snapshot MiB | grouping peak MiB | analyse peak over snapshot MiB | JSON peak over snapshot MiB | services |");
    println!("|---|---|---|---|---|---|---|");
    for n in sizes {
        let mut snap: Snapshot = serde_json::from_str(recorded).unwrap();
        snap.nftables = Source::disabled();
        let base = mark();
        let mut g = Grouper::default();
        dump(n, &mut g);
        let state = g.finish();
        let grouping = PEAK.load(Relaxed) - base;
        let chains: usize = state.tables.iter().map(|t| t.chains.len()).sum();
        snap.nftables = Source::ok(state, 0);
        let held = mark() - base;
        let report = routewarden::rules::analyse(&snap, snap.collected_at);
        let analyse = PEAK.load(Relaxed) - base - held;
        mark();
        let json = routewarden::outputs::json(&report);
        let render = PEAK.load(Relaxed) - base - held;
        assert!(json.len() > 100);
        println!(
            "| {n} | {chains} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            mib(held),
            mib(grouping),
            mib(analyse),
            mib(render),
            report.dataplane.kube_proxy.services
        );
    }
}
