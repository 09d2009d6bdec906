//! Logging: to the journal (with structured fields) when stderr is connected to it, else plain lines on stderr.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if self.enabled(r.metadata()) {
            let level = match r.level() {
                Level::Error => "error",
                Level::Warn => "warning",
                Level::Info => "info",
                Level::Debug => "debug",
                Level::Trace => "trace",
            };
            eprintln!("routewarden: {level}: {}", r.args());
        }
    }

    fn flush(&self) {}
}

static STDERR: Stderr = Stderr;

/// Installs the journal logger when running under systemd with the journal on stderr, else the stderr logger.
pub fn init(level: LevelFilter) {
    log::set_max_level(level);
    if systemd_journal_logger::connected_to_journal() {
        if let Ok(journal) = systemd_journal_logger::JournalLog::new() {
            if journal.with_syslog_identifier("routewarden".into()).install().is_ok() {
                return;
            }
        }
    }
    let _ = log::set_logger(&STDERR);
}
