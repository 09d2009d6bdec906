//! Outputs: how a report leaves the process. `text` for people at a terminal (and `routewarden status`'s daemon
//! part), JSON through serde, `metrics` (the families as a table, fed by `Metrics::update(&Report)`), `http` the
//! loopback and unix-socket endpoints and the one accept loop, `metrics_listener` the TLS fleet listener with
//! `web_config`'s TLS and basic auth, `state` the pre-rendered report the handlers read, `reference` the generated
//! docs (findings pages, man page, metrics and configuration references).

pub mod http;
pub mod metrics;
pub mod metrics_listener;
pub mod reference;
pub mod state;
pub mod text;
pub mod web_config;

use crate::report::Report;

/// The report as pretty JSON (the contract in docs/report.md).
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"serialising the report: {e}\"}}"))
}
