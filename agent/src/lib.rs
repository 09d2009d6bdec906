//! routewarden as a library: the pipeline sources -> snapshot -> rules -> report -> outputs.
//!
//! The binary (`main.rs`) is a thin CLI over these modules; benches and tests use them directly.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod gate;
pub mod journal;
pub mod logging;
pub mod outputs;
pub mod report;
pub mod rules;
pub mod snapshot;
pub mod sources;
pub mod sys;
pub mod wait;
