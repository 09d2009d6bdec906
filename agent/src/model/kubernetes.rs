//! The Kubernetes exporter's state as the daemon reads it into the report and the metrics: plain data, written
//! by the exporter's task (`crate::kubernetes`) and read when the daemon builds its next report.

use serde::{Deserialize, Serialize};

/// The exporter's health and counters since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExporterStatus {
    /// The Node reported on (empty until resolved).
    pub node: String,
    /// Whether the last exchange with the API server succeeded; `None` before the first one.
    pub up: Option<bool>,
    /// Unix time of the last successful exchange.
    pub last_success_unix: Option<f64>,
    /// The last failure (never a token or a key), cleared by a success.
    pub last_error: Option<String>,
    /// Requests answered with success.
    pub requests_ok: u64,
    /// Requests that failed (transport, TLS, authentication, API errors, deadlines).
    pub requests_failed: u64,
    /// Events not sent: over the rate limit, or dropped from a full queue while the API server was away.
    pub events_dropped: u64,
    /// With `[kubernetes] taint`: the taint on the Node as last read or written (`Unknown` before the Node was
    /// read); `None` without it.
    pub taint: Option<TaintState>,
    /// Times the exporter added or removed the taint.
    pub taint_transitions: u64,
}

/// Whether the Node carries routewarden's taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaintState {
    Present,
    Absent,
    #[default]
    Unknown,
}

impl TaintState {
    pub const ALL: [TaintState; 3] = [TaintState::Present, TaintState::Absent, TaintState::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            TaintState::Present => "present",
            TaintState::Absent => "absent",
            TaintState::Unknown => "unknown",
        }
    }
}
