//! `routewarden serve`: keeps the report fresh and serves it. Collects on start, on kernel change events
//! (debounced) and on a periodic resync; publishes pre-rendered outputs; speaks sd_notify (READY, STATUS,
//! WATCHDOG, RELOADING, STOPPING); reloads its configuration on SIGHUP and exits cleanly on SIGTERM.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::model::{SourceId, SourceStatus};
use crate::outputs::http::{self, Limits};
use crate::outputs::metrics::Metrics;
use crate::outputs::state::{Published, Shared};
use crate::report::FindingId;
use crate::report::{verdict, Finding, Report, Severity};
use crate::rules::churn::{kube_proxy_chains, Churn};
use crate::settings::Settings;
use crate::sys::events::EventSocket;
use crate::sys::now_unix;
use crate::{outputs, rules, sources};

/// What `serve` was started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration file to re-read on SIGHUP (`None`: the default path, if it exists).
    pub config_path: Option<PathBuf>,
    /// Overrides `daemon.listen`.
    pub listen: Option<String>,
}

pub fn run(opts: Options, settings: Settings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(opts, settings))
}

/// Messages to systemd, sent from their own thread: a notify socket nobody reads (a full datagram queue) must
/// never block the collection loop. When even the hand-off queue is full, a message is dropped.
struct Notifier {
    tx: std::sync::mpsc::SyncSender<String>,
    pending: Arc<std::sync::atomic::AtomicUsize>,
}

impl Notifier {
    fn start() -> Notifier {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(16);
        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let left = Arc::clone(&pending);
        std::thread::spawn(move || {
            for msg in rx {
                if let Err(e) = sd_notify::notify(&[NotifyState::Custom(&msg)]) {
                    log::debug!("sd_notify: {e}");
                }
                left.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        Notifier { tx, pending }
    }

    fn send(&self, states: &[NotifyState]) {
        let msg = states.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        self.pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.tx.try_send(msg).is_err() {
            self.pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            log::debug!("sd_notify: the notify socket is not being read; message dropped");
        }
    }

    /// Waits (at most `limit`) until every queued message went out: used before exiting.
    async fn flush(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending.load(std::sync::atomic::Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn stall_after(s: &Settings) -> u64 {
    s.config.daemon.resync_secs * 2 + s.config.command_timeout_secs * 8 + 10
}

async fn run_async(opts: Options, mut settings: Settings) -> anyhow::Result<()> {
    let listen = opts.listen.clone().unwrap_or_else(|| settings.config.daemon.listen.clone());
    let listener =
        tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("binding the HTTP listener {listen}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let shared = Shared::new(stall_after(&settings));
    let router = http::router(Arc::clone(&shared));
    let limits = Limits {
        max_connections: settings.config.daemon.max_connections,
        request_timeout: Duration::from_secs(settings.config.daemon.request_timeout_secs),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = vec![tokio::spawn(http::serve(listener, router.clone(), limits, stop_rx.clone()))];
    log::info!("serving http://{local}/status and /metrics");
    if let Some(path) = settings.config.daemon.unix_socket.clone() {
        let _ = std::fs::remove_file(&path);
        let unix =
            tokio::net::UnixListener::bind(&path).with_context(|| format!("binding unix socket {}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
            .with_context(|| format!("setting mode 0660 on {}", path.display()))?;
        servers.push(tokio::spawn(http::serve(unix, router, limits, stop_rx.clone())));
        log::info!("serving on unix socket {}", path.display());
    }

    let (ev_tx, mut ev_rx) = mpsc::channel::<&'static str>(1);
    for sock in [EventSocket::links(), EventSocket::nftables()] {
        match sock {
            Ok(sock) => {
                let tx = ev_tx.clone();
                std::thread::spawn(move || loop {
                    if let Err(e) = sock.wait() {
                        log::warn!("{} events stopped: {e}; relying on the periodic resync", sock.what);
                        return;
                    }
                    let _ = tx.try_send(sock.what);
                });
            }
            Err(e) => log::warn!("{e}; relying on the periodic resync"),
        }
    }

    let mut journal = start_journal(&settings, ev_tx.clone());
    let mut cursor_tick = tokio::time::interval(Duration::from_secs(1));

    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let watchdog = sd_notify::watchdog_enabled();
    let notifier = Notifier::start();
    let metrics = Metrics::new();
    let mut churn = Churn::default();
    let mut last_sources: BTreeMap<SourceId, SourceStatus> = BTreeMap::new();
    let mut last_findings: BTreeMap<FindingId, Severity> = BTreeMap::new();
    let mut reload_error: Option<String> = None;

    // One persistent timer each: a timer re-created on every pass of the select would never fire while other
    // branches (the cursor tick) keep ending passes.
    let mut watchdog_tick = tokio::time::interval(watchdog.map(|d| d / 2).unwrap_or(Duration::from_secs(3600)));
    watchdog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The last collection's report (without journal findings) and the gate requirements it left unmet.
    let mut base: Option<(Report, Vec<String>)> = None;
    let mut collect = true;
    let mut next_resync = tokio::time::Instant::now();

    loop {
        let mut changes = 0;
        let collected = collect || base.is_none();
        if collected {
            let s = settings.config.clone();
            let snap = match tokio::task::spawn_blocking(move || sources::collect(&s)).await {
                Ok(snap) => snap,
                Err(e) => {
                    log::error!("collection task failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut report =
                rules::analyse(&snap, humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
            changes = churn.observe(kube_proxy_chains(&snap));
            add_churn(&mut report, &churn.recent_flips());
            let missing = if shared.is_ready() { Vec::new() } else { gate_missing(&settings, &snap, &report) };
            base = Some((report, missing));
            drop(snap);
            release_memory();
            let next =
                if shared.is_ready() { settings.config.daemon.resync_secs } else { settings.config.gate.poll_secs };
            next_resync = tokio::time::Instant::now() + Duration::from_secs(next);
        }
        let Some((base_report, missing)) = base.as_ref() else { continue };
        // Journal findings are merged into the last collection's report; a journal match alone re-renders, it
        // does not collect again.
        let mut report = base_report.clone();
        add_journal(&mut report, &journal, &metrics);
        metrics.update(&report, changes, collected, now_unix());
        log_changes(&report, &mut last_sources, &mut last_findings);
        let mut summary = summary(&report, reload_error.as_deref());
        let gate_open = shared.is_ready() || missing.is_empty();
        if !gate_open {
            summary = format!("waiting for {}", missing.join("; "));
            shared.set_not_ready(&summary);
        }
        shared.publish(render(report, &metrics));
        shared.progress();
        if !shared.is_ready() && gate_open {
            shared.set_ready();
            notifier.send(&[NotifyState::Ready, NotifyState::Status(&summary)]);
            log::info!("ready: {summary}");
        } else {
            notifier.send(&[NotifyState::Status(&summary)]);
        }
        if watchdog.is_some() {
            notifier.send(&[NotifyState::Watchdog]);
        }

        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_resync) => {
                    collect = true;
                    break;
                }
                Some(what) = ev_rx.recv() => {
                    log::debug!("{what} changed; publishing after {} ms", settings.config.daemon.debounce_ms);
                    tokio::time::sleep(Duration::from_millis(settings.config.daemon.debounce_ms)).await;
                    collect = what != "journal";
                    while let Ok(more) = ev_rx.try_recv() {
                        collect |= more != "journal";
                    }
                    break;
                }
                _ = watchdog_tick.tick(), if watchdog.is_some() => {
                    shared.progress();
                    notifier.send(&[NotifyState::Watchdog]);
                }
                _ = sighup.recv() => {
                    notifier.send(&[NotifyState::Reloading]);
                    match Settings::load(opts.config_path.as_deref()) {
                        Ok(new) => {
                            log::info!(
                                "configuration reloaded (listen address, HTTP limits and journal settings apply on restart)"
                            );
                            shared.stall_after_secs.store(stall_after(&new), std::sync::atomic::Ordering::Relaxed);
                            settings = new;
                            reload_error = None;
                        }
                        Err(e) => {
                            log::error!("configuration reload failed, keeping the running configuration: {e}");
                            reload_error = Some(e.to_string());
                        }
                    }
                    notifier.send(&[NotifyState::Ready]);
                    collect = true;
                    break;
                }
                _ = cursor_tick.tick() => journal.save_cursor(),
                _ = sigterm.recv() => {
                    journal.save_cursor();
                    return stop(stop_tx, servers, &notifier).await;
                }
                _ = sigint.recv() => {
                    journal.save_cursor();
                    return stop(stop_tx, servers, &notifier).await;
                }
            }
        }
    }
}

/// The gate's requirements that do not hold yet, each with what was seen instead.
fn gate_missing(settings: &Settings, snap: &crate::model::Snapshot, report: &Report) -> Vec<String> {
    settings
        .gate
        .iter()
        .filter_map(|r| match crate::rules::gate::check(r, snap, report) {
            crate::rules::gate::Check::Met(_) => None,
            crate::rules::gate::Check::Missing(d) | crate::rules::gate::Check::Unknown(d) => Some(format!("{r}: {d}")),
        })
        .collect()
}

/// Hands freed collection memory back to the kernel: glibc keeps it in per-thread arenas otherwise, and the
/// daemon's RSS would sit at the peak of the largest collection.
fn release_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn stop(
    stop_tx: watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    notifier: &Notifier,
) -> anyhow::Result<()> {
    notifier.send(&[NotifyState::Stopping]);
    notifier.flush(Duration::from_secs(1)).await;
    log::info!("stopping");
    let _ = stop_tx.send(true);
    for s in servers {
        let _ = tokio::time::timeout(Duration::from_secs(3), s).await;
    }
    Ok(())
}

/// The journal follower's state, or why there is none.
enum JournalWatch {
    Disabled,
    Failed(String),
    Running { shared: Arc<std::sync::Mutex<crate::journal::reader::Followed>>, cursor_file: PathBuf, saved: String },
}

impl JournalWatch {
    /// Persists the newest cursor when it moved, so a restart neither loses nor double-counts entries.
    fn save_cursor(&mut self) {
        if let JournalWatch::Running { shared, cursor_file, saved } = self {
            let cursor = shared.lock().map(|s| s.cursor.clone()).unwrap_or_default();
            if !cursor.is_empty() && cursor != *saved {
                match crate::journal::reader::save_cursor(cursor_file, &cursor) {
                    Ok(()) => *saved = cursor,
                    Err(e) => log::warn!("saving the journal cursor to {}: {e}", cursor_file.display()),
                }
            }
        }
    }
}

/// Starts following the journal when enabled; a failure to start is reported as the journal source failing.
fn start_journal(settings: &Settings, ev_tx: mpsc::Sender<&'static str>) -> JournalWatch {
    use crate::journal::reader::{follow, FollowOptions, Followed, Input};
    if !settings.config.journal.enabled {
        return JournalWatch::Disabled;
    }
    let rules = settings.journal_rules.clone();
    let state = settings.state_dir();
    if let Err(e) = std::fs::create_dir_all(&state).and_then(|_| {
        let probe = state.join(".write-test");
        std::fs::write(&probe, b"").and_then(|_| std::fs::remove_file(&probe))
    }) {
        let msg = format!("state directory {} is not writable (the journal cursor lives there): {e}", state.display());
        log::error!("{msg}");
        return JournalWatch::Failed(msg);
    }
    let units = settings.journal_units();
    let input = match &settings.config.journal.directory {
        Some(d) => Input::Directory(d.clone()),
        // In a container with the host mounted at host_root, read the host's journal, not the container's.
        None if settings.config.host_root != std::path::Path::new("/") => {
            Input::Root(settings.config.host_root.clone())
        }
        None => Input::System,
    };
    let cursor_file = state.join("journal.cursor");
    let opts = FollowOptions {
        journalctl: settings.config.journal.journalctl.clone(),
        input,
        units,
        cursor_file: cursor_file.clone(),
        lookback_secs: settings.config.journal.lookback_secs,
        hang_check: Duration::from_secs(settings.config.journal.hang_check_secs),
    };
    let shared = Arc::new(std::sync::Mutex::new(Followed {
        engine: crate::journal::Engine::new(rules),
        error: None,
        lag_seconds: 0.0,
        cursor: String::new(),
        changes: 0,
    }));
    follow(opts, Arc::clone(&shared), move || {
        // A full queue already holds a pending change, which will pick this one up.
        let _ = ev_tx.try_send("journal");
    });
    JournalWatch::Running { shared, cursor_file, saved: String::new() }
}

/// Adds the journal source, its findings (as of now) and its counters to the report and metrics.
fn add_journal(report: &mut Report, journal: &JournalWatch, metrics: &Metrics) {
    use crate::report::SourceReport;
    let (status, error) = match journal {
        JournalWatch::Disabled => (SourceStatus::Disabled, None),
        JournalWatch::Failed(e) => (SourceStatus::Failed, Some(e.clone())),
        JournalWatch::Running { shared, .. } => match shared.lock() {
            Ok(mut j) => {
                j.engine.advance((now_unix() * 1e6) as u64);
                report.findings.extend(j.engine.findings());
                metrics.update_journal(&crate::outputs::metrics::JournalStats {
                    matches: &j.engine.counts,
                    lines: &j.engine.lines,
                    lag_seconds: j.lag_seconds,
                });
                match &j.error {
                    None => (SourceStatus::Ok, None),
                    Some(e) => (SourceStatus::Failed, Some(e.clone())),
                }
            }
            Err(_) => (SourceStatus::Failed, Some("journal state poisoned".into())),
        },
    };
    if status == SourceStatus::Failed {
        report.findings.push(crate::report::source_failed(
            SourceId::Journal,
            error.as_deref().unwrap_or(""),
            "check that journalctl runs and that the state directory is writable",
        ));
    }
    report.sources.insert(SourceId::Journal, SourceReport { status, error, duration_ms: 0 });
    report.verdict = verdict(&report.findings);
}

/// Adds rule-churn evidence: chains deleted and re-created between scans mean two owners fight.
fn add_churn(report: &mut Report, flips: &[&str]) {
    if flips.is_empty() {
        return;
    }
    let evidence = format!(
        "{} kube-proxy chains were deleted and re-created between scans (e.g. {})",
        flips.len(),
        flips.iter().take(3).copied().collect::<Vec<_>>().join(", ")
    );
    if let Some(f) = report.findings.iter_mut().find(|f| f.id == FindingId::ServiceRoutingConflict) {
        f.evidence.push(evidence);
    } else {
        report.findings.push(Finding {
            id: FindingId::ServiceRoutingChurn,
            severity: Severity::Warning,
            summary: "kube-proxy's chains keep disappearing and coming back: something else flushes or rewrites them"
                .into(),
            evidence: vec![evidence],
            remedy: "look for a second writer of iptables on this node (another proxy, a CNI cleanup job, \
                     `iptables-save | grep -v KUBE | iptables-restore` in a script)"
                .into(),
        });
    }
    report.verdict = verdict(&report.findings);
}

/// Logs sources that changed state, and findings that appeared or cleared, each once per change (with
/// `SOURCE=`/`FINDING_ID=` journal fields).
fn log_changes(
    report: &Report,
    last: &mut BTreeMap<SourceId, SourceStatus>,
    findings: &mut BTreeMap<FindingId, Severity>,
) {
    let now: BTreeMap<FindingId, Severity> = report.findings.iter().map(|f| (f.id.clone(), f.severity)).collect();
    for f in &report.findings {
        if findings.get(&f.id) != Some(&f.severity) {
            let level = match f.severity {
                Severity::Critical => log::Level::Error,
                Severity::Warning => log::Level::Warn,
                Severity::Info => log::Level::Info,
            };
            log::log!(level, finding_id = f.id.as_str(); "{}: {}", f.id, f.summary);
        }
    }
    for id in findings.keys().filter(|id| !now.contains_key(*id)) {
        log::info!(finding_id = id.as_str(); "{id} cleared");
    }
    *findings = now;
    for (name, s) in &report.sources {
        if last.get(name) != Some(&s.status) {
            match s.status {
                SourceStatus::Failed => {
                    log::warn!(source = name.as_str(); "source {name} failed: {}", s.error.as_deref().unwrap_or(""))
                }
                _ if last.contains_key(name) => {
                    log::info!(source = name.as_str(); "source {name} is {:?} again", s.status)
                }
                _ => {}
            }
            last.insert(*name, s.status);
        }
    }
}

fn summary(r: &Report, reload_error: Option<&str>) -> String {
    let kp = &r.dataplane.kube_proxy;
    let mut s = format!(
        "{:?}: kube-proxy {:?}, cilium kpr {}, {} findings",
        r.verdict,
        kp.mode,
        match r.dataplane.cilium.kube_proxy_replacement {
            Some(true) => "on",
            Some(false) => "off",
            None => "unknown",
        },
        r.findings.len()
    )
    .to_lowercase();
    if let Some(e) = reload_error {
        s.push_str(&format!("; config reload failed: {e}"));
    }
    s
}

fn render(report: Report, metrics: &Metrics) -> Published {
    let (openmetrics, prometheus_text) = metrics.render();
    Published {
        status: serde_json::to_string(&report).unwrap_or_default() + "\n",
        status_pretty: outputs::json(&report) + "\n",
        findings: serde_json::to_string_pretty(&report.findings).unwrap_or_default() + "\n",
        openmetrics,
        prometheus_text,
        report: Some(report),
    }
}
