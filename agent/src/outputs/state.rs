//! What the daemon publishes: the last report pre-rendered in every form the endpoints serve, swapped in whole
//! after each collection so requests never collect or render anything.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::outputs::metrics::Metrics;
use crate::report::Report;

/// One collection's outputs, ready to send.
#[derive(Debug, Default)]
pub struct Published {
    pub report: Option<Report>,
    pub status: String,
    pub status_pretty: String,
    pub findings: String,
    pub openmetrics: String,
    pub prometheus_text: String,
    /// The node gate of the collection behind the report (`/readyz?gate=1`); `None` before the first.
    pub node_gate: Option<crate::rules::gate::NodeGate>,
}

impl Published {
    /// Renders `report` and the metrics in every form the endpoints serve.
    pub fn render(report: Report, metrics: &Metrics) -> Published {
        let (openmetrics, prometheus_text) = metrics.render();
        Published {
            status: serde_json::to_string(&report).unwrap_or_default() + "\n",
            status_pretty: super::json(&report) + "\n",
            findings: serde_json::to_string_pretty(&report.findings).unwrap_or_default() + "\n",
            openmetrics,
            prometheus_text,
            report: Some(report),
            node_gate: None,
        }
    }
}

/// Shared between the collection loop (writer) and the HTTP handlers (readers).
#[derive(Debug, Default)]
pub struct Shared {
    published: RwLock<Arc<Published>>,
    /// Readiness latch: set once, never cleared.
    ready: AtomicBool,
    /// Why the daemon is not ready yet (first collection pending, gate not satisfied).
    not_ready_reason: RwLock<String>,
    /// Unix seconds of the last completed collection loop iteration.
    last_progress: AtomicU64,
    /// Longest silence of the loop that still counts as healthy, in seconds.
    pub stall_after_secs: AtomicU64,
}

impl Shared {
    pub fn new(stall_after_secs: u64) -> Arc<Shared> {
        let s = Shared::default();
        s.stall_after_secs.store(stall_after_secs, Ordering::Relaxed);
        s.set_not_ready("the first collection has not finished");
        s.progress();
        Arc::new(s)
    }

    pub fn current(&self) -> Arc<Published> {
        self.published.read().map(|p| Arc::clone(&p)).unwrap_or_default()
    }

    pub fn publish(&self, p: Published) {
        if let Ok(mut cur) = self.published.write() {
            *cur = Arc::new(p);
        }
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn set_not_ready(&self, why: &str) {
        if let Ok(mut r) = self.not_ready_reason.write() {
            *r = why.to_string();
        }
    }

    pub fn not_ready_reason(&self) -> String {
        self.not_ready_reason.read().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn progress(&self) {
        self.last_progress.store(crate::sys::now_unix() as u64, Ordering::SeqCst);
    }

    /// Seconds since the collection loop last made progress.
    pub fn stalled_for(&self) -> u64 {
        (crate::sys::now_unix() as u64).saturating_sub(self.last_progress.load(Ordering::SeqCst))
    }

    pub fn healthy(&self) -> bool {
        self.stalled_for() <= self.stall_after_secs.load(Ordering::Relaxed)
    }
}
