//! routewarden as a library: the pipeline sources -> snapshot -> rules -> report -> outputs.
//!
//! Layers, each importing only the ones below it (checked by the tidy test in `xtask/src/tidy.rs`):
//! 1. `model` (the snapshot and its state types), `sys` (the OS);
//! 2. `config` (plain serde data in the model's terms), `report` (the JSON contract);
//! 3. `sources` (I/O into the model), `journal` (the kubelet journal), `catalogue` (what each finding id means, for
//!    the generated references, and the decision table's finding texts);
//! 4. `rules` (pure analysis and the gate check);
//! 5. `outputs` (text, JSON, metrics, HTTP), `kubernetes` (Node conditions and Events through the API server);
//! 6. `settings` (validated configuration: each subsystem checks its own part);
//! 7. `daemon`, `wait`, `status`, `cli`, `logging` (what the binary runs).
//!
//! The binary (`main.rs`) is a thin CLI over these modules; benches and tests use them directly.

pub mod catalogue;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod journal;
pub mod kubernetes;
pub mod logging;
pub mod model;
pub mod outputs;
pub mod report;
pub mod rules;
pub mod settings;
pub mod sources;
pub mod status;
pub mod sys;
pub mod wait;
