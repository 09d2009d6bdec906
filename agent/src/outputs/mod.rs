//! Outputs: how a report leaves the process. Text for people at a terminal, JSON for tools.

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
