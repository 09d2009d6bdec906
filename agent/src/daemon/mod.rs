//! `routewarden serve`: keeps the report fresh and serves it. The main loop (as rust-analyzer's) is a state
//! struct, [`Daemon`], and a closed set of [`Event`]s: it waits for the next event, handles it, and publishes.
//! Collection runs as a spawned task whose result comes back as an event, so SIGTERM, SIGHUP and the watchdog
//! never wait for a slow source. Collects on start, on kernel change events (debounced) and on a periodic resync;
//! publishes pre-rendered outputs; speaks sd_notify (READY, STATUS, WATCHDOG, RELOADING, STOPPING).

mod activation;
mod notify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::journal::reader::{FollowOptions, Follower, Input, JournalView};
use crate::journal::state::Change;
use crate::kubernetes::Exporter;
use crate::model::{Snapshot, SourceId, SourceStatus};
use crate::outputs::http::{self, Limits};
use crate::outputs::metrics::Metrics;
use crate::outputs::metrics_listener;
use crate::outputs::state::{Published, Shared};
use crate::report::{FindingId, JournalCounters, Report, Severity};
use crate::rules::churn::Churn;
use crate::rules::gate::{self, Check};
use crate::settings::Settings;
use crate::sys::events::EventSocket;
use crate::sys::now_unix;
use crate::{rules, sources};
use activation::Role;
use notify::Notifier;

/// What `serve` was started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration file to re-read on SIGHUP (`None`: the default path, if it exists).
    pub config_path: Option<PathBuf>,
    /// Overrides `daemon.listen`.
    pub listen: Option<std::net::SocketAddr>,
}

/// A kernel object class that announces its changes over netlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Links,
    Nftables,
}

/// Everything the main loop reacts to.
#[derive(Debug)]
pub enum Event {
    /// Time to collect: the periodic resync (or the gate's poll) or the end of a change burst.
    Resync,
    /// A link or nftables change: collect once the burst is over.
    Kernel(Kernel),
    /// The journal follower's findings or health may have changed: re-render once the burst is over.
    Journal,
    /// The end of a journal burst: re-render with the follower's findings, without collecting.
    Render,
    /// The Kubernetes exporter's state changed (up, down, another error): re-render once the burst is over.
    Exporter,
    /// Tell systemd the loop is alive.
    Watchdog,
    /// Retry saving the journal cursor if a save failed and its backoff has passed (renders save it otherwise).
    SaveCursor,
    /// SIGHUP.
    Reload,
    /// SIGTERM or SIGINT.
    Stop,
    /// A collection finished (or its task panicked: the message says why).
    Collected(Result<Box<Snapshot>, Panicked>),
}

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
    /// `why` is the OS error and, when the port is taken, who holds it: said once (no `source` chain repeating it).
    #[error("binding the HTTP listener {addr}: {why}")]
    Listen { addr: String, why: String },
    #[error("binding unix socket {path}")]
    Unix { path: PathBuf, source: std::io::Error },
    #[error("unix socket {path}: the path exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("installing the {signal} handler")]
    Signal { signal: &'static str, source: std::io::Error },
    #[error("socket activation")]
    Inherited(#[from] activation::InheritedError),
    #[error(
        "socket activation: the inherited {role} socket listens on {addr}, which is not loopback; {allow} \
         (or change ListenStream= in routewarden.socket)"
    )]
    InheritedRemote { role: activation::Role, addr: std::net::SocketAddr, allow: &'static str },
    #[error("socket activation: the inherited {role} socket")]
    InheritedSocket { role: activation::Role, source: std::io::Error },
}

pub fn run(opts: Options, settings: Settings) -> Result<(), ServeError> {
    // Before any thread starts: the descriptors are made close-on-exec and LISTEN_* leave the environment before a
    // tool could inherit them.
    let inherited = activation::take()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let result = rt.block_on(run_async(opts, settings, inherited));
    // A collection still running (a hanging tool) must not hold up the exit: its own timeouts end it.
    rt.shutdown_timeout(Duration::from_millis(500));
    result
}

/// A collection that panicked: the panic's message when it had one.
#[derive(Debug, thiserror::Error)]
#[error("{}", .message.as_deref().unwrap_or("a collection task panicked"))]
pub struct Panicked {
    message: Option<String>,
}

/// Why a reload was refused (the running configuration is kept).
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    /// The configuration file's own text says it all.
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    /// The journal rules (rules.d and inline), as `Settings` keeps them.
    #[error(transparent)]
    Rules(crate::settings::JournalRulesError),
}

/// How long naming the holder of a taken port may take (a walk of `/proc/*/fd`).
const HOLDER_DEADLINE: Duration = Duration::from_secs(2);

/// A failed bind, said once; when the port is taken, with the processes (pid, name, user) whose sockets hold it,
/// from procfs.
fn bind_error(addr: std::net::SocketAddr, e: std::io::Error) -> ServeError {
    let mut why = e.to_string();
    if e.kind() == std::io::ErrorKind::AddrInUse {
        why.push_str(&holders_of(Path::new("/proc"), addr));
    }
    ServeError::Listen { addr: addr.to_string(), why }
}

/// "; held by pid 12 (nc) of uid 1000 (alice)" for each listening socket a bind to `addr` collides with.
fn holders_of(proc_dir: &Path, addr: std::net::SocketAddr) -> String {
    use crate::sources::sockets;
    let taken: Vec<sockets::Listener> = sockets::listeners(proc_dir)
        .filter(|l| l.accepts(addr) || (addr.ip().is_unspecified() && l.port == addr.port()))
        .take(16)
        .collect();
    if taken.is_empty() {
        return String::new();
    }
    let inodes: Vec<u64> = taken.iter().map(|l| l.inode).collect();
    let held = sockets::holders(proc_dir, &inodes, std::time::Instant::now() + HOLDER_DEADLINE, 16);
    let mut out = Vec::new();
    for l in &taken {
        let user = user_name(l.uid).map(|n| format!(" ({n})")).unwrap_or_default();
        let procs: Vec<String> =
            held.iter().filter(|h| h.inode == l.inode).map(|h| format!("pid {} ({})", h.pid, h.comm)).collect();
        let who = if procs.is_empty() { "a process".to_string() } else { procs.join(", ") };
        out.push(format!("{who} of uid {}{user} listening on {}:{}", l.uid, l.addr, l.port));
    }
    format!("; held by {}", out.join("; "))
}

/// The name of `uid` in /etc/passwd (read bounded), if any.
fn user_name(uid: u32) -> Option<String> {
    let text = crate::sys::host::read_regular(Path::new("/etc/passwd"), 4 << 20).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid.to_string()).then(|| name.to_string())
    })
}

/// An inherited TCP listener for `role`, checked against the configuration `(key, address)`: one that is not
/// loopback is refused unless `remote_ok` (`allow` says how to allow it), as the configured address would be; one
/// on another address is served all the same (it is the socket systemd holds, and binding the configured one
/// instead would race any local user for it), with a warning naming both.
fn adopt_tcp(
    l: std::net::TcpListener,
    role: Role,
    (key, configured): (&str, std::net::SocketAddr),
    remote_ok: bool,
    allow: &'static str,
) -> Result<tokio::net::TcpListener, ServeError> {
    let err = |source| ServeError::InheritedSocket { role, source };
    let addr = l.local_addr().map_err(err)?;
    if !addr.ip().is_loopback() && !remote_ok {
        return Err(ServeError::InheritedRemote { role, addr, allow });
    }
    if addr == configured {
        log::info!("socket activation: serving the inherited {role} socket on {addr}");
    } else {
        log::warn!(
            "socket activation: the inherited {role} socket listens on {addr}, not on {key} {configured}: serving \
             {addr}, the socket systemd holds; make ListenStream= in routewarden.socket and {key} agree"
        );
    }
    l.set_nonblocking(true).map_err(err)?;
    tokio::net::TcpListener::from_std(l).map_err(err)
}

/// An inherited unix socket listener, checked against `daemon.unix_socket` as [`adopt_tcp`] checks an address.
fn adopt_unix(
    l: std::os::unix::net::UnixListener,
    configured: Option<&Path>,
) -> Result<tokio::net::UnixListener, ServeError> {
    let err = |source| ServeError::InheritedSocket { role: Role::Unix, source };
    let addr = l.local_addr().map_err(err)?;
    let path = addr.as_pathname().map(Path::to_path_buf);
    let shown = path.as_ref().map_or_else(|| "an unnamed socket".to_string(), |p| p.display().to_string());
    match configured {
        Some(c) if path.as_deref() == Some(c) => {
            log::info!("socket activation: serving on the inherited unix socket {shown}")
        }
        Some(c) => log::warn!(
            "socket activation: the inherited unix socket is {shown}, not daemon.unix_socket {}: serving {shown}, \
             the socket systemd holds; make ListenStream= in routewarden.socket and daemon.unix_socket agree",
            c.display()
        ),
        None => log::info!(
            "socket activation: serving on the inherited unix socket {shown} (daemon.unix_socket is not set)"
        ),
    }
    l.set_nonblocking(true).map_err(err)?;
    tokio::net::UnixListener::from_std(l).map_err(err)
}

/// Binds the unix socket listener: a stale socket left by an earlier run is replaced, any other file is refused
/// (a typo in `unix_socket` must not delete a file).
fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, ServeError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let unix_err = |source| ServeError::Unix { path: path.to_path_buf(), source };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path).map_err(unix_err)?,
        Ok(_) => return Err(ServeError::NotASocket { path: path.to_path_buf() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(unix_err(e)),
    }
    let unix = tokio::net::UnixListener::bind(path).map_err(unix_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(unix_err)?;
    Ok(unix)
}

/// Removes the unix socket on stop, if it is still a socket (never another file put there meanwhile).
fn remove_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        if let Err(e) = std::fs::remove_file(path) {
            log::warn!("removing unix socket {}: {e}", path.display());
        }
    }
}

/// Seconds the loop may go without progress (or a collection may run) before it counts as stalled.
fn stall_after(s: &Settings) -> u64 {
    s.config.daemon.resync_secs * 2 + s.config.command_timeout_secs * 8 + 10
}

/// The last collection: its report (from the snapshot alone), the kube-proxy chains that churned, the gate
/// requirements it left unmet, and the node gate.
struct Base {
    report: Report,
    flips: Vec<String>,
    missing: Vec<String>,
    /// The node gate (`[kubernetes] taint`, `/readyz?gate=1`), checked at every collection.
    node_gate: gate::NodeGate,
}

/// The daemon's counters since the start, which the report carries to `/status` and `/metrics`.
#[derive(Default)]
struct Counters {
    collections: u64,
    rule_changes: u64,
    last_collection_unix: f64,
}

/// The daemon's state: everything the loop owns.
struct Daemon {
    opts: Options,
    settings: Settings,
    shared: Arc<Shared>,
    metrics: Metrics,
    notifier: Notifier,
    churn: Churn,
    /// The last nftables read and its generation, so a resync with no nftables transaction since skips the dump.
    nft: Arc<std::sync::Mutex<sources::nftables::Reuse>>,
    journal: JournalWatch,
    /// The Kubernetes exporter, with `[kubernetes] enabled`.
    exporter: Option<Exporter>,
    /// The network metrics listener's basic auth, with users in its web configuration.
    metrics_auth: Option<Arc<crate::outputs::web_config::BasicAuth>>,
    watchdog: Option<Duration>,
    last_sources: BTreeMap<SourceId, SourceStatus>,
    last_findings: BTreeMap<FindingId, Severity>,
    reload_error: Option<String>,
    base: Option<Base>,
    counters: Counters,
    /// When the running collection started; `None` when none runs.
    collecting: Option<Instant>,
    /// A change arrived while collecting: collect again once it is done.
    pending: bool,
    collect_at: Instant,
    render_at: Option<Instant>,
    collected_tx: mpsc::Sender<Result<Box<Snapshot>, Panicked>>,
}

/// Where events come from.
struct Inbox {
    kernel: mpsc::Receiver<Kernel>,
    journal: mpsc::Receiver<()>,
    exporter: mpsc::Receiver<()>,
    collected: mpsc::Receiver<Result<Box<Snapshot>, Panicked>>,
    watchdog: tokio::time::Interval,
    cursor: tokio::time::Interval,
    sigterm: Signal,
    sigint: Signal,
    sighup: Signal,
}

async fn run_async(opts: Options, settings: Settings, mut inherited: activation::Inherited) -> Result<(), ServeError> {
    if let Some(e) = &inherited.not_ours {
        log::warn!("socket activation: {e}; ignoring them and binding the configured addresses");
    }
    for fd in &inherited.ignored {
        log::warn!("socket activation: ignoring inherited {fd}: no listener serves that family");
    }
    let listen = opts.listen.unwrap_or(settings.listen);
    let listener = match inherited.http.take() {
        Some(l) => {
            let key = if opts.listen.is_some() { "--listen" } else { "daemon.listen" };
            let remote_ok = settings.config.daemon.allow_remote;
            adopt_tcp(l, Role::Http, (key, listen), remote_ok, "set daemon.allow_remote = true to serve it anyway")?
        }
        None => tokio::net::TcpListener::bind(listen).await.map_err(|e| bind_error(listen, e))?,
    };
    let local = listener.local_addr().map_err(|e| bind_error(listen, e))?;
    let shared = Shared::new(stall_after(&settings));
    let router = http::router(Arc::clone(&shared));
    let limits = Limits {
        max_connections: settings.config.daemon.max_connections,
        request_timeout: Duration::from_secs(settings.config.daemon.request_timeout_secs),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let loopback = http::refuse_unknown_hosts(router.clone());
    let mut servers = vec![tokio::spawn(http::serve(listener, loopback, limits, stop_rx.clone()))];
    log::info!("serving http://{local}/status and /metrics");
    let mut metrics_auth = None;
    match (&settings.metrics, inherited.metrics.take()) {
        (None, Some(_)) => {
            log::warn!("socket activation: ignoring the inherited metrics socket: [metrics] listen is not set")
        }
        (None, None) => {}
        (Some(m), held) => {
            let tls = m.web.as_ref().is_some_and(|w| w.tls.is_some());
            let tcp = match held {
                Some(l) => adopt_tcp(
                    l,
                    Role::Metrics,
                    ("metrics.listen", m.listen),
                    tls || settings.config.metrics.allow_plaintext,
                    "set metrics.web_config with tls_server_config (or metrics.allow_plaintext = true)",
                )?,
                None => tokio::net::TcpListener::bind(m.listen).await.map_err(|e| bind_error(m.listen, e))?,
            };
            let local = tcp.local_addr().map_err(|e| bind_error(m.listen, e))?;
            let auth = m.web.as_ref().and_then(|w| w.auth.clone());
            let users = if auth.is_some() { "basic auth" } else { "no basic auth" };
            metrics_auth.clone_from(&auth);
            let metrics = http::metrics_router(Arc::clone(&shared), auth);
            match m.web.as_ref().and_then(|w| w.tls.clone()) {
                Some(tls) => {
                    servers.push(tokio::spawn(metrics_listener::serve_tls(tcp, tls, metrics, limits, stop_rx.clone())));
                    log::info!("serving https://{local}/metrics ({users})");
                }
                None => {
                    servers.push(tokio::spawn(http::serve(tcp, metrics, limits, stop_rx.clone())));
                    log::info!("serving http://{local}/metrics without TLS ({users})");
                }
            }
        }
    }
    // Removed at exit only when this process made it: an inherited socket is systemd's (it outlives restarts).
    let unix_socket = match (inherited.unix.take(), &settings.config.daemon.unix_socket) {
        (Some(held), configured) => {
            let unix = adopt_unix(held, configured.as_deref())?;
            servers.push(tokio::spawn(http::serve(unix, router, limits, stop_rx.clone())));
            None
        }
        (None, Some(path)) => {
            let unix = bind_unix(path)?;
            servers.push(tokio::spawn(http::serve(unix, router, limits, stop_rx.clone())));
            log::info!("serving on unix socket {}", path.display());
            Some(path.clone())
        }
        (None, None) => None,
    };

    let (kernel_tx, kernel) = mpsc::channel::<Kernel>(4);
    for (sock, what) in [(EventSocket::links(), Kernel::Links), (EventSocket::nftables(), Kernel::Nftables)] {
        match sock {
            Ok(sock) => {
                let tx = kernel_tx.clone();
                std::thread::spawn(move || loop {
                    if let Err(e) = sock.wait() {
                        let e = crate::model::error_chain(&e);
                        log::warn!("{} events stopped: {e}; relying on the periodic resync", sock.what);
                        return;
                    }
                    // A full queue already holds a pending change, which will pick this one up.
                    let _ = tx.try_send(what);
                });
            }
            Err(e) => log::warn!("{}; relying on the periodic resync", crate::model::error_chain(&e)),
        }
    }
    let (journal_tx, journal) = mpsc::channel::<()>(1);
    let (exporter_tx, exporter_rx) = mpsc::channel::<()>(1);
    let (collected_tx, collected) = mpsc::channel::<Result<Box<Snapshot>, Panicked>>(1);
    let watchdog = sd_notify::watchdog_enabled();
    // One persistent timer each: a timer re-created on every pass would never fire while other events keep coming.
    let mut watchdog_tick = tokio::time::interval(watchdog.map(|d| d / 2).unwrap_or(Duration::from_secs(3600)));
    watchdog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inbox = Inbox {
        kernel,
        journal,
        exporter: exporter_rx,
        collected,
        watchdog: watchdog_tick,
        cursor: tokio::time::interval(Duration::from_secs(1)),
        sigterm: handler(SignalKind::terminate(), "SIGTERM")?,
        sigint: handler(SignalKind::interrupt(), "SIGINT")?,
        sighup: handler(SignalKind::hangup(), "SIGHUP")?,
    };

    let journal = JournalWatch::start(&settings, journal_tx);
    let mut metrics = Metrics::new();
    if settings.config.kubernetes.enabled {
        metrics.enable_kubernetes(settings.config.kubernetes.taint);
    }
    if metrics_auth.is_some() {
        metrics.enable_metrics_auth();
    }
    let exporter = settings.config.kubernetes.enabled.then(|| {
        log::info!("exporting findings to the Kubernetes API as Node conditions and Events");
        Exporter::start(&settings.kubernetes, move || {
            // A full queue already holds a pending re-render.
            let _ = exporter_tx.try_send(());
        })
    });
    let mut daemon = Daemon {
        opts,
        settings,
        shared,
        metrics,
        notifier: Notifier::start(),
        churn: Churn::default(),
        nft: Arc::default(),
        journal,
        exporter,
        metrics_auth,
        watchdog,
        last_sources: BTreeMap::new(),
        last_findings: BTreeMap::new(),
        reload_error: None,
        base: None,
        counters: Counters::default(),
        collecting: None,
        pending: false,
        collect_at: Instant::now(),
        render_at: None,
        collected_tx,
    };
    loop {
        let event = daemon.next_event(&mut inbox).await;
        log::trace!("event {}", event.name());
        if let Event::Stop = event {
            daemon.journal.save_now();
            daemon.notifier.send(&[NotifyState::Stopping]);
            daemon.notifier.flush(Duration::from_secs(1)).await;
            log::info!("stopping");
            let _ = stop_tx.send(true);
            for s in servers.drain(..) {
                let _ = tokio::time::timeout(Duration::from_secs(3), s).await;
            }
            if let Some(path) = &unix_socket {
                remove_socket(path);
            }
            return Ok(());
        }
        daemon.handle(event);
    }
}

impl Event {
    /// The variant's name, for logs (a collected snapshot is too large to print).
    fn name(&self) -> &'static str {
        match self {
            Event::Resync => "resync",
            Event::Kernel(Kernel::Links) => "kernel links",
            Event::Kernel(Kernel::Nftables) => "kernel nftables",
            Event::Journal => "journal",
            Event::Render => "render",
            Event::Exporter => "exporter",
            Event::Watchdog => "watchdog",
            Event::SaveCursor => "save-cursor",
            Event::Reload => "reload",
            Event::Stop => "stop",
            Event::Collected(Ok(_)) => "collected",
            Event::Collected(Err(_)) => "collection failed",
        }
    }
}

fn handler(kind: SignalKind, name: &'static str) -> Result<Signal, ServeError> {
    signal(kind).map_err(|source| ServeError::Signal { signal: name, source })
}

impl Daemon {
    async fn next_event(&self, inbox: &mut Inbox) -> Event {
        let render_at = self.render_at.unwrap_or_else(Instant::now);
        tokio::select! {
            _ = inbox.sigterm.recv() => Event::Stop,
            _ = inbox.sigint.recv() => Event::Stop,
            _ = inbox.sighup.recv() => Event::Reload,
            Some(snap) = inbox.collected.recv() => Event::Collected(snap),
            _ = tokio::time::sleep_until(self.collect_at), if self.collecting.is_none() => Event::Resync,
            _ = tokio::time::sleep_until(render_at), if self.render_at.is_some() => Event::Render,
            Some(k) = inbox.kernel.recv() => Event::Kernel(k),
            Some(()) = inbox.journal.recv() => Event::Journal,
            Some(()) = inbox.exporter.recv() => Event::Exporter,
            _ = inbox.watchdog.tick(), if self.watchdog.is_some() => Event::Watchdog,
            _ = inbox.cursor.tick() => Event::SaveCursor,
        }
    }

    fn handle(&mut self, event: Event) {
        let debounce = Duration::from_millis(self.settings.config.daemon.debounce_ms);
        match event {
            Event::Resync => self.start_collection(),
            Event::Kernel(k) => {
                log::debug!("{k:?} changed; collecting after {} ms", debounce.as_millis());
                if self.collecting.is_some() {
                    self.pending = true;
                } else {
                    self.collect_at = self.collect_at.min(Instant::now() + debounce);
                }
            }
            Event::Journal | Event::Exporter => {
                let at = Instant::now() + debounce;
                self.render_at = Some(self.render_at.map_or(at, |r| r.min(at)));
            }
            Event::Render => {
                self.render_at = None;
                self.publish();
            }
            Event::Watchdog => {
                if self.stalled() {
                    log::warn!("a collection has run for more than {} s; not telling the watchdog", self.stall_after());
                } else {
                    self.shared.progress();
                    self.notifier.send(&[NotifyState::Watchdog]);
                    if !self.shared.is_ready() {
                        self.notifier.send(&[NotifyState::ExtendTimeoutUsec(self.extend_usec())]);
                    }
                }
            }
            Event::SaveCursor => {
                if self.journal.retry_save() {
                    self.publish();
                }
            }
            Event::Reload => self.reload(),
            Event::Collected(Ok(snap)) => self.collected(*snap),
            Event::Collected(Err(why)) => {
                log::error!("collection failed: {why}; retrying in 1 s");
                self.collecting = None;
                self.collect_at = Instant::now() + Duration::from_secs(1);
            }
            // Handled by the loop, which owns the servers.
            Event::Stop => {}
        }
    }

    fn stall_after(&self) -> u64 {
        stall_after(&self.settings)
    }

    /// How far each EXTEND_TIMEOUT_USEC pushes systemd's start timeout while the gate is closed: as long as a
    /// collection may take before the loop counts as stalled (`sd_notify` carries it as a u32 of microseconds).
    fn extend_usec(&self) -> u32 {
        u32::try_from(self.stall_after().saturating_mul(1_000_000)).unwrap_or(u32::MAX)
    }

    /// Whether the running collection has overrun the stall limit.
    fn stalled(&self) -> bool {
        self.collecting.is_some_and(|since| since.elapsed().as_secs() > self.stall_after())
    }

    fn start_collection(&mut self) {
        self.collecting = Some(Instant::now());
        self.pending = false;
        let config = self.settings.config.clone();
        let tx = self.collected_tx.clone();
        let nft = Arc::clone(&self.nft);
        tokio::task::spawn_blocking(move || {
            // A panic in a source must not leave the loop waiting for a result that never comes.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // Poisoned by a collection that panicked mid-read: forget what it kept.
                let mut reuse = nft.lock().unwrap_or_else(|poisoned| {
                    let mut r = poisoned.into_inner();
                    *r = Default::default();
                    r
                });
                let before = reuse.reused;
                let snap = sources::collect_reusing(&config, &mut reuse);
                if reuse.reused > before {
                    log::debug!("nftables generation {:?} unchanged: reused the last read", reuse.generation());
                }
                snap
            }))
            .map(Box::new)
            .map_err(|e| Panicked {
                message: e
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| e.downcast_ref::<String>().cloned()),
            });
            let _ = tx.blocking_send(result);
        });
    }

    fn collected(&mut self, snap: Snapshot) {
        self.collecting = None;
        self.render_at = None;
        let report = rules::analyse(&snap, crate::model::Timestamp::from_unix(crate::sys::now_unix_secs()));
        self.counters.rule_changes += self.churn.observe(rules::churn::kube_proxy_chains(&snap));
        self.counters.collections += 1;
        self.counters.last_collection_unix = now_unix();
        let flips = self.churn.recent_flips().into_iter().map(str::to_string).collect();
        let missing = if self.shared.is_ready() { Vec::new() } else { gate_missing(&self.settings, &snap, &report) };
        let node_gate = gate::node_gate(&gate::node_gate_requirements(&self.settings.gate), &snap, &report);
        self.base = Some(Base { report, flips, missing, node_gate });
        drop(snap);
        crate::sys::release_memory();
        let d = &self.settings.config;
        let next = if self.pending {
            Duration::from_millis(d.daemon.debounce_ms)
        } else if self.shared.is_ready() {
            Duration::from_secs(d.daemon.resync_secs)
        } else {
            Duration::from_secs(d.gate.poll_secs)
        };
        self.collect_at = Instant::now() + next;
        self.publish();
    }

    /// Gathers what the report needs besides the last collection, has the rules assemble it, renders every output
    /// from it and tells systemd. The only place a published report is built.
    fn publish(&mut self) {
        let Some(base) = self.base.as_ref() else { return };
        let gate_open = self.shared.is_ready() || base.missing.is_empty();
        let missing = base.missing.join("; ");
        let node_gate = base.node_gate.clone();
        let (journal, journal_settled) = self.journal.input();
        let report = rules::assemble::assemble(
            &base.report,
            rules::assemble::Inputs {
                churn_flips: &base.flips,
                journal,
                exporter: self.exporter.as_ref().map(Exporter::status),
                node_gate: &node_gate,
                collections: self.counters.collections,
                rule_changes: self.counters.rule_changes,
                last_collection_unix: self.counters.last_collection_unix,
                metrics_auth: self.metrics_auth.as_ref().map(|a| a.counters()),
                now_unix: now_unix(),
            },
        );
        self.metrics.update(&report);
        self.metrics.update_process(&crate::sys::process::self_stats());
        log_changes(&report, &mut self.last_sources, &mut self.last_findings);
        let mut summary = summary(&report, self.reload_error.as_deref());
        if !gate_open {
            summary = format!("waiting for {missing}");
            self.shared.set_not_ready(&summary);
        }
        if let Some(e) = &self.exporter {
            e.publish(&report, journal_settled, &node_gate);
        }
        let mut published = Published::render(report, &self.metrics);
        published.node_gate = Some(node_gate);
        self.shared.publish(published);
        // A journal re-render while a collection hangs is no sign of a healthy loop.
        let alive = !self.stalled();
        if alive {
            self.shared.progress();
        }
        if !self.shared.is_ready() && gate_open {
            self.shared.set_ready();
            self.notifier.send(&[NotifyState::Ready, NotifyState::Status(&summary)]);
            log::info!("ready: {summary}");
        } else if !gate_open && alive {
            // The gate holds the start job (and the units ordered after it) open as long as the loop lives:
            // systemd's start timeout must never fire for an unmet gate, only for a daemon that stopped working.
            self.notifier.send(&[NotifyState::ExtendTimeoutUsec(self.extend_usec()), NotifyState::Status(&summary)]);
        } else {
            self.notifier.send(&[NotifyState::Status(&summary)]);
        }
        if self.watchdog.is_some() && alive {
            self.notifier.send(&[NotifyState::Watchdog]);
        }
    }

    fn reload(&mut self) {
        // Before the unit is ready, RELOADING/READY would tell systemd it started: units ordered after it (the
        // gate) must keep waiting.
        let ready = self.shared.is_ready();
        if ready {
            self.notifier.send(&[NotifyState::Reloading]);
        }
        // A broken rules.d file is a failed reload too: `config validate` would refuse the next start.
        let loaded = Settings::load(self.opts.config_path.as_deref()).map_err(ReloadError::from).and_then(|new| {
            match &new.journal_rules {
                Err(e) => Err(ReloadError::Rules(e.clone())),
                Ok(_) => Ok(new),
            }
        });
        match loaded {
            Ok(new) => {
                log::info!(
                    "configuration reloaded (listen address, HTTP limits and journal settings apply on restart)"
                );
                self.shared.stall_after_secs.store(stall_after(&new), std::sync::atomic::Ordering::Relaxed);
                self.settings = new;
                self.reload_error = None;
            }
            Err(e) => {
                let e = crate::model::error_chain(&e);
                log::error!("configuration reload failed, keeping the running configuration: {e}");
                self.reload_error = Some(e);
            }
        }
        if ready {
            self.notifier.send(&[NotifyState::Ready]);
        }
        if self.collecting.is_some() {
            self.pending = true;
        } else {
            self.collect_at = Instant::now();
        }
    }
}

/// The gate's requirements that do not hold yet, each with what was seen instead.
fn gate_missing(settings: &Settings, snap: &Snapshot, report: &Report) -> Vec<String> {
    settings
        .gate
        .iter()
        .filter_map(|r| match gate::check(r, snap, report) {
            Check::Met(_) => None,
            Check::Missing(d) | Check::Unknown(d) => Some(format!("{r}: {d}")),
        })
        .collect()
}

/// The journal follower, or why there is none.
enum JournalWatch {
    Disabled,
    Failed(String),
    Running(Follower),
}

impl JournalWatch {
    /// Starts following the journal when enabled; a failure to start is reported as the journal source failing.
    fn start(settings: &Settings, tx: mpsc::Sender<()>) -> JournalWatch {
        let config = &settings.config;
        if !config.journal.enabled {
            return JournalWatch::Disabled;
        }
        let rules = match settings.node_journal_rules(None) {
            Ok((r, unusable)) => {
                for e in unusable {
                    log::warn!("the kubelet's API server endpoint: {}", crate::model::error_chain(&e));
                }
                log::info!("journal rules: API server endpoint {}", r.api_server.describe());
                r
            }
            Err(e) => return JournalWatch::Failed(crate::model::error_chain(&e)),
        };
        let state = settings.state_dir();
        let input = match &config.journal.directory {
            Some(d) => Input::Directory(d.clone()),
            // In a container with the host mounted at host_root, read the host's journal, not the container's.
            None if config.host_root != std::path::Path::new("/") => Input::Root(config.host_root.clone()),
            None => Input::System,
        };
        let opts = FollowOptions {
            journalctl: config.journal.journalctl.clone(),
            input,
            units: settings.journal_units(),
            cursor_file: state.join("journal.cursor"),
            lookback_secs: config.journal.lookback_secs,
            hang_check: Duration::from_secs(config.journal.hang_check_secs),
        };
        let mut follower = Follower::start(opts, rules, move || {
            // A full queue already holds a pending change, which will pick this one up.
            let _ = tx.try_send(());
        });
        // An unusable state directory is found at once (and retried), not only once an entry has been read.
        let empty = JournalView::default();
        let change = follower.persist(&empty, true);
        log_save(follower.cursor_file(), &change);
        JournalWatch::Running(follower)
    }

    /// Retries a failed save of the cursor when due; true when that changed the journal source's state.
    fn retry_save(&mut self) -> bool {
        match self {
            JournalWatch::Running(f) if f.retry_due() => {
                let view = f.view((now_unix() * 1e6) as u64);
                let change = f.persist(&view, false);
                log_save(f.cursor_file(), &change);
                change != Change::None
            }
            _ => false,
        }
    }

    /// Saves the cursor of what was published last, at once (on stop).
    fn save_now(&mut self) {
        if let JournalWatch::Running(f) = self {
            let view = f.view((now_unix() * 1e6) as u64);
            let change = f.persist(&view, true);
            log_save(f.cursor_file(), &change);
        }
    }

    /// The journal as the report takes it (its state, findings as of now and counters), after saving the cursor
    /// those counters describe (so a restart neither loses nor counts again what they hold). True when the
    /// follower runs and has finished replaying what a previous run read (its findings are those of now).
    fn input(&mut self) -> (rules::assemble::Journal, bool) {
        match self {
            JournalWatch::Disabled => (rules::assemble::Journal::Disabled, false),
            JournalWatch::Failed(e) => (rules::assemble::Journal::Failed(e.clone()), false),
            JournalWatch::Running(f) => {
                let mut view = f.view((now_unix() * 1e6) as u64);
                let change = f.persist(&view, false);
                log_save(f.cursor_file(), &change);
                if change != Change::None {
                    // The save's outcome changed the source's state: take it into this render.
                    view.error = f.view((now_unix() * 1e6) as u64).error;
                }
                let settled = !view.replaying;
                let counters = JournalCounters {
                    matches: view.matches,
                    lines: view.lines,
                    lag_seconds: view.lag_seconds,
                    not_entries: view.not_entries,
                    overlong_lines: view.overlong_lines,
                };
                let running = rules::assemble::Journal::Running {
                    error: view.error,
                    note: view.cursor_note,
                    findings: view.findings,
                    counters,
                };
                (running, settled)
            }
        }
    }
}

/// Logs a change in saving the cursor, once per change (a full state directory is one warning, not one a second).
fn log_save(path: &std::path::Path, change: &Change) {
    match change {
        Change::None => {}
        Change::Failed(e) => log::warn!(source = "journal"; "{e}; retrying with backoff"),
        Change::Recovered => log::info!(source = "journal"; "the journal cursor is saved to {} again", path.display()),
    }
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
    // STATUS= is one line: a multi-line error (TOML's) is folded.
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_errors_say_their_context_and_the_cause_once() {
        let io = std::io::Error::from_raw_os_error;
        let chain = |e: ServeError| crate::model::strict_chain(&e);
        assert_eq!(
            chain(ServeError::Unix { path: "/run/rw.sock".into(), source: io(libc::EADDRINUSE) }),
            "binding unix socket /run/rw.sock: Address already in use (os error 98)"
        );
        assert_eq!(
            chain(ServeError::Runtime(io(libc::EMFILE))),
            "starting the async runtime: Too many open files (os error 24)"
        );
        assert_eq!(
            chain(ServeError::Signal { signal: "SIGHUP", source: io(libc::EINVAL) }),
            "installing the SIGHUP handler: Invalid argument (os error 22)"
        );
        let fd = activation::InheritedError::Io { fd: 3, name: "http".into(), source: io(libc::EBADF) };
        assert_eq!(
            chain(ServeError::from(fd)),
            "socket activation: inherited descriptor 3 (\"http\"): Bad file descriptor (os error 9)"
        );
        assert_eq!(
            chain(ServeError::InheritedSocket { role: Role::Unix, source: io(libc::ENOTSOCK) }),
            "socket activation: the inherited unix socket (daemon.unix_socket) socket: Socket operation on non-socket (os error 88)"
        );
        assert_eq!(Panicked { message: Some("boom".into()) }.to_string(), "boom");
        assert_eq!(Panicked { message: None }.to_string(), "a collection task panicked");
    }

    #[test]
    fn a_refused_reload_says_the_files_mistake_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[daemon]\nlisten = \"nowhere\"\n").unwrap();
        let e = Settings::load(Some(&path)).map_err(ReloadError::from).unwrap_err();
        let before = match &e {
            ReloadError::Settings(s) => s.to_string(),
            ReloadError::Rules(_) => unreachable!(),
        };
        assert_eq!(crate::model::strict_chain(&e), before);
        assert!(before.contains("daemon.listen \"nowhere\""), "{before}");
        let bad = crate::journal::rules::RulesError::Invalid { id: "x".into(), why: "bad".into() };
        let e = ReloadError::Rules(crate::settings::JournalRulesError(std::sync::Arc::new(bad)));
        assert_eq!(crate::model::strict_chain(&e), "journal rules: rule x: bad");
    }

    #[test]
    fn a_taken_port_is_reported_once_with_the_process_and_user_holding_it() {
        let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = squatter.local_addr().unwrap();
        let e = std::net::TcpListener::bind(addr).unwrap_err();
        let text = crate::model::strict_chain(&bind_error(addr, e));
        let me = format!("pid {} (", std::process::id());
        let uid = format!("uid {}", own_uid());
        assert!(text.contains(&me) && text.contains(&uid) && text.contains(&addr.to_string()), "{text}");
        assert_eq!(text.matches("in use").count(), 1, "the OS error is said once: {text}");
        // Any address on that port collides with the wildcard one.
        let wild = std::net::SocketAddr::from(([0, 0, 0, 0], addr.port()));
        assert!(holders_of(Path::new("/proc"), wild).contains(&me));
        drop(squatter);
        assert_eq!(holders_of(Path::new("/proc"), addr), "", "nobody holds it any more");
    }

    /// The test's own uid, from procfs (no libc call in a test).
    fn own_uid() -> String {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        line.split_whitespace().nth(1).unwrap().to_string()
    }
}
