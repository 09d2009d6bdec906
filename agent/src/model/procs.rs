//! Processes routewarden watches, by pid and comm.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessState {
    pub processes: Vec<Process>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
}

impl ProcessState {
    /// Pids of processes named `comm`.
    pub fn pids(&self, comm: &str) -> Vec<u32> {
        self.processes.iter().filter(|p| p.comm == comm).map(|p| p.pid).collect()
    }
}
