//! The optional Kubernetes exporter (`[kubernetes]`): the report's findings as the Node's conditions and as
//! Events, so `kubectl describe node` shows them. Never in the way: it is its own tokio task, fed the published
//! report through a watch channel (only the latest is kept; sending never blocks the daemon loop), retrying
//! with capped exponential backoff (randomly jittered; the connection kept when the API server answered). The daemon reads its [`ExporterStatus`] when it builds the next report, as
//! it reads the journal follower's view; `/status`, `/metrics`, the gate and READY never wait for it.
//!
//! `conditions` and `events` are pure (what to send); `client` talks to the API server (kube-rs, rustls with
//! the ring provider); `backoff` spaces the retries.

pub mod backoff;
pub mod client;
pub mod conditions;
pub mod events;
pub mod settings;
pub mod taint;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::model::kubernetes::{ExporterStatus, TaintState};
use crate::report::Report;
use crate::rules::gate::NodeGate;
use backoff::Backoff;
use client::{ApiClient, ClientError};
use conditions::Conditions;
use events::{Action, Dedup, EventKey, Origin, RateLimit, Standing};
pub use settings::{ExporterSettings, NodeName, TaintKey};

/// Events waiting for the API server; older ones are dropped beyond this.
pub const MAX_QUEUED_EVENTS: usize = 64;
/// The first retry after a failure, and the longest wait between retries.
pub const RETRY_INITIAL: Duration = Duration::from_secs(1);
pub const RETRY_CAP: Duration = Duration::from_secs(30);
/// The error of the `kubernetes` source once the exporter's task has ended.
pub const TASK_ENDED: &str = "exporter task ended: Node conditions and Events are no longer sent (restart the daemon)";
/// One round (connect, read the Node, patch, send Events) ends by then whatever the server does.
pub const ROUND_DEADLINE: Duration = Duration::from_secs(45);

/// A report as handed to the exporter, and whether the journal follower had finished its replay (see
/// [`conditions::desired`]).
type Published = (Arc<Report>, bool, NodeGate);

/// The daemon's handle on the exporter task.
pub struct Exporter {
    reports: watch::Sender<Option<Published>>,
    status: Arc<Mutex<ExporterStatus>>,
    /// The exporter task; a watcher task awaits its end (a panic too) and asks for a re-render.
    task: tokio::task::AbortHandle,
}

impl Exporter {
    /// Starts the exporter on the current tokio runtime.
    /// `changed` is called (from the task) when its up/down state or error changes, so the daemon re-renders.
    pub fn start(settings: &ExporterSettings, changed: impl Fn() + Send + Sync + 'static) -> Exporter {
        // kube's rustls client uses the process's provider: ring, never aws-lc-rs (a second install is a no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let changed: Arc<dyn Fn() + Send + Sync> = Arc::new(changed);
        let (reports, rx) = watch::channel(None);
        let status = Arc::new(Mutex::new(ExporterStatus {
            taint: settings.taint.then_some(TaintState::Unknown),
            ..ExporterStatus::default()
        }));
        let task = Task {
            path: client::kubeconfig_path(&settings.kubeconfigs),
            host_root: settings.host_root.clone(),
            node_setting: settings.node_name.clone(),
            heartbeat: settings.heartbeat,
            taint_key: settings.managed_taint().map(|k| k.as_str().to_string()),
            gate: None,
            node_taints: None,
            status: Arc::clone(&status),
            changed: Arc::clone(&changed),
            api: None,
            origin: None,
            conditions: Conditions::default(),
            node_read: false,
            desired: None,
            standing: None,
            queue: VecDeque::new(),
            dedup: Dedup::default(),
            limit: RateLimit::new(crate::sys::now_unix()),
            seq: 0,
        };
        let task = tokio::spawn(task.run(rx));
        let handle = task.abort_handle();
        tokio::spawn(async move {
            if let Err(e) = task.await {
                if e.is_panic() {
                    log::error!(source = "kubernetes"; "{TASK_ENDED}: it panicked");
                }
            }
            changed();
        });
        Exporter { reports, status, task: handle }
    }

    /// Hands the exporter the latest report (replacing one it has not taken yet); never waits. `journal_settled`:
    /// the journal source is ok and has finished replaying after a restart; `gate`: the node gate, which decides
    /// the taint.
    pub fn publish(&self, report: &Report, journal_settled: bool, gate: &NodeGate) {
        self.reports.send_replace(Some((Arc::new(report.clone()), journal_settled, gate.clone())));
    }

    /// The exporter's state now. A task that ended (it never returns while the daemon holds this handle, so a
    /// panic or an abort) shows as the source failed, never as its last state frozen.
    pub fn status(&self) -> ExporterStatus {
        let mut s = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        if self.task.is_finished() {
            s.up = Some(false);
            s.last_error = Some(TASK_ENDED.to_string());
        }
        s
    }

    /// Ends the task, as a panic in it would (tests of what the daemon then shows).
    #[cfg(test)]
    fn kill_task(&self) {
        self.task.abort();
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Everything the exporter task owns.
struct Task {
    path: PathBuf,
    host_root: PathBuf,
    node_setting: Option<NodeName>,
    heartbeat: Duration,
    /// With `[kubernetes] taint`: the taint's key.
    taint_key: Option<String>,
    /// The node gate of the latest report.
    gate: Option<NodeGate>,
    /// The Node's taints as last read or written on this connection.
    node_taints: Option<taint::NodeTaints>,
    status: Arc<Mutex<ExporterStatus>>,
    changed: Arc<dyn Fn() + Send + Sync>,
    api: Option<ApiClient>,
    origin: Option<Origin>,
    conditions: Conditions,
    /// The Node (its uid and the conditions a previous run left) was read on this connection.
    node_read: bool,
    desired: Option<std::collections::BTreeMap<conditions::ConditionType, conditions::Desired>>,
    standing: Option<Standing>,
    queue: VecDeque<EventKey>,
    dedup: Dedup,
    limit: RateLimit,
    seq: u64,
}

impl Task {
    async fn run(mut self, mut rx: watch::Receiver<Option<Published>>) {
        let mut backoff = Backoff::new(RETRY_INITIAL, RETRY_CAP);
        let mut retry_at: Option<Instant> = None;
        let mut heartbeat_at = later(self.heartbeat);
        // Something to send: a new report, or the first connection.
        let mut dirty = true;
        loop {
            let now = Instant::now();
            let due = match retry_at {
                Some(t) => t,
                None if dirty => now,
                None => heartbeat_at,
            };
            if due > now {
                tokio::select! {
                    changed = rx.changed() => {
                        if changed.is_err() {
                            return; // the daemon is gone
                        }
                        let report = rx.borrow_and_update().clone();
                        if let Some((r, settled, gate)) = report {
                            self.observe(&r, settled);
                            self.gate = Some(gate);
                            dirty = true;
                        }
                        continue;
                    }
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
            let beat = Instant::now() >= heartbeat_at;
            if beat && self.taint_key.is_some() {
                // Taints others changed (an operator's `kubectl taint`) are seen at least once a heartbeat.
                self.node_read = false;
            }
            let result = match tokio::time::timeout(ROUND_DEADLINE, self.round(beat)).await {
                Ok(r) => r,
                Err(_) => {
                    Err(ClientError::Deadline { op: "a round with the API server", secs: ROUND_DEADLINE.as_secs() })
                }
            };
            match result {
                Ok(()) => {
                    backoff.succeed();
                    retry_at = None;
                    dirty = false;
                    if beat {
                        heartbeat_at = later(self.heartbeat);
                    }
                    let mut news = false;
                    self.set_status(|s| {
                        if s.up != Some(true) {
                            log::info!(source = "kubernetes"; "API server reached: Node {} conditions and Events are up to date", s.node);
                            news = true;
                        }
                        s.up = Some(true);
                        s.last_success_unix = Some(crate::sys::now_unix());
                        s.last_error = None;
                    });
                    if news {
                        (self.changed)();
                    }
                }
                Err(e) => {
                    let wait = backoff.fail(backoff::random_unit());
                    retry_at = Some(later(wait));
                    // The API server answered (403, 409, 5xx, ...): the connection is kept, no new TLS handshake
                    // and Node read for every retry. Otherwise a new connection re-reads the kubeconfig (rotated
                    // certificates and tokens) and the Node.
                    if !e.keeps_connection() {
                        self.api = None;
                        self.node_read = false;
                    }
                    let text = e.to_string();
                    let mut news = false;
                    self.set_status(|s| {
                        if s.up != Some(false) || s.last_error.as_deref() != Some(text.as_str()) {
                            log::warn!(source = "kubernetes"; "Kubernetes API: {text}; retrying in {} ms", wait.as_millis());
                            news = true;
                        }
                        s.up = Some(false);
                        s.last_error = Some(text);
                    });
                    if news {
                        (self.changed)();
                    }
                }
            }
        }
    }

    fn set_status(&self, f: impl FnOnce(&mut ExporterStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// Takes a new report: the conditions it asks for, and Events for its transitions (rate-limited, queued).
    fn observe(&mut self, report: &Report, journal_settled: bool) {
        self.desired = Some(conditions::desired(report, journal_settled));
        let now = events::standing(report);
        let before = self.standing.take().unwrap_or_default();
        for key in events::transitions(&before, &now) {
            if !self.limit.admit(crate::sys::now_unix()) {
                self.set_status(|s| s.events_dropped += 1);
                continue;
            }
            if self.queue.len() >= MAX_QUEUED_EVENTS {
                self.queue.pop_front();
                self.set_status(|s| s.events_dropped += 1);
            }
            self.queue.push_back(key);
        }
        self.standing = Some(now);
    }

    /// One exchange: connect if needed, read the Node once per connection, patch what changed (everything on a
    /// heartbeat), send queued Events. Stops at the first failure (the caller backs off).
    async fn round(&mut self, heartbeat: bool) -> Result<(), ClientError> {
        if self.api.is_none() {
            let (path, root) = (self.path.clone(), self.host_root.clone());
            // Reading files blocks: off the runtime's worker threads.
            let loaded = tokio::task::spawn_blocking(move || client::load_or_in_cluster(&path, &root)).await.map_err(
                |e| ClientError::Kubeconfig {
                    path: self.path.clone(),
                    what: format!("reading it did not finish: {e}"),
                },
            )??;
            let host = crate::sys::host::hostname();
            let configured = self.node_setting.as_ref().map(NodeName::as_str);
            let node = client::node_name(configured, loaded.kubelet_node.as_deref(), &host);
            let api = ApiClient::connect(loaded, &self.path).await?;
            self.set_status(|s| s.node = node.clone());
            self.origin = Some(Origin { node, uid: None });
            self.api = Some(api);
        }
        let (Some(api), Some(origin)) = (self.api.as_ref(), self.origin.as_mut()) else { return Ok(()) };
        if !self.node_read {
            let view = api.get_node(&origin.node).await;
            count(&self.status, view.is_ok());
            let view = view?;
            origin.uid = view.uid;
            self.conditions.adopt(&view.conditions);
            if let Some(key) = &self.taint_key {
                let state = view.taints.state(key);
                with_status(&self.status, |s| s.taint = Some(state));
            }
            self.node_taints = Some(view.taints);
            self.node_read = true;
        }
        let now = crate::model::Timestamp::from_unix(crate::sys::now_unix_secs()).to_string();
        if let Some(desired) = &self.desired {
            let plan = self.conditions.plan(desired, &now, heartbeat);
            if !plan.is_empty() {
                let r = api.patch_conditions(&origin.node, &conditions::patch_body(&plan)).await;
                count(&self.status, r.is_ok());
                // The write gave the Node a new resourceVersion: the taint's precondition follows it.
                self.node_taints = Some(r?);
                self.conditions.applied(&plan);
            }
        }
        // The taint before the Events (its own goes out in this round) but its failure after them: an identity
        // that may not change taints (a kubelet's, under NodeRestriction) holds up neither conditions nor Events.
        let taint = match (self.taint_key.as_deref(), &self.gate) {
            (Some(key), Some(gate)) => {
                let (taints, read) = (&mut self.node_taints, &mut self.node_read);
                apply_taint(api, &origin.node, (key, gate), taints, read, &self.status).await
            }
            _ => Ok(None),
        };
        if let Ok(Some(event)) = &taint {
            if self.limit.admit(crate::sys::now_unix()) {
                self.queue.push_back(event.clone());
            } else {
                with_status(&self.status, |s| s.events_dropped += 1);
            }
        }
        while let Some(key) = self.queue.front().cloned() {
            let seq = next_seq(&mut self.seq);
            let action = self.dedup.action(origin, &key, &now, seq);
            let r = match &action {
                Action::Create { body, .. } => api.create_event(body).await,
                Action::Bump { name, body, .. } => match api.bump_event(name, body).await {
                    Ok(true) => Ok(()),
                    Ok(false) => {
                        // Expired on the server: a new Event next time round.
                        self.dedup.forget(&key);
                        count(&self.status, true);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            count(&self.status, r.is_ok());
            if let Err(e) = &r {
                if e.refuses_for_good() {
                    // Dropped and counted, not retried: it would hold up every Event after it, and the
                    // conditions are not at fault.
                    log::warn!(source = "kubernetes"; "Event {} dropped: {e}", key.reason);
                    if let Ok(mut s) = self.status.lock() {
                        s.events_dropped += 1;
                    }
                    // The daemon re-renders, so /metrics shows the drop now, not at the next collection.
                    (self.changed)();
                    self.queue.pop_front();
                    continue;
                }
            }
            r?;
            self.dedup.sent(&key, &action, &now);
            self.queue.pop_front();
        }
        taint.map(|_| ())
    }
}

/// Adds or removes the taint as the gate asks; the Event to send for a change. A 409 (the Node changed since it
/// was read) has the Node read again before the next try.
async fn apply_taint(
    api: &ApiClient,
    node: &str,
    (key, gate): (&str, &NodeGate),
    current: &mut Option<taint::NodeTaints>,
    node_read: &mut bool,
    status: &Mutex<ExporterStatus>,
) -> Result<Option<EventKey>, ClientError> {
    let Some(body) = current.as_ref().and_then(|c| taint::patch(c, key, taint::wanted(gate)?)) else {
        return Ok(None);
    };
    let r = api.patch_taints(node, &body).await;
    count(status, r.is_ok());
    let written = r.inspect_err(|e| {
        if matches!(e, ClientError::Status { code: 409, .. }) {
            *node_read = false;
        }
    })?;
    let state = written.state(key);
    let done = if state == TaintState::Present { "added" } else { "removed" };
    log::info!(source = "kubernetes"; "Node {node}: taint {key}:{} {done}", taint::EFFECT);
    with_status(status, |s| {
        s.taint = Some(state);
        s.taint_transitions += 1;
    });
    *current = Some(written);
    Ok(Some(taint::event(state == TaintState::Present, key, gate)))
}

/// What `routewarden untaint` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untainted {
    Removed { node: String },
    NotThere { node: String },
}

/// Removes routewarden's taint from the Node now, whatever the gate says (`routewarden untaint`, for an operator
/// who stopped or removed routewarden): the same kubeconfig, node name and merge patch as the exporter, retried
/// on 409. Blocking: runs its own runtime, each exchange within the client's deadlines.
pub fn untaint(settings: &ExporterSettings) -> Result<Untainted, ClientError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Api { op: "starting the client's runtime", what: e.to_string() })?;
    let path = client::kubeconfig_path(&settings.kubeconfigs);
    rt.block_on(async {
        let loaded = client::load_or_in_cluster(&path, &settings.host_root)?;
        let configured = settings.node_name.as_ref().map(NodeName::as_str);
        let node = client::node_name(configured, loaded.kubelet_node.as_deref(), &crate::sys::host::hostname());
        let api = ApiClient::connect(loaded, &path).await?;
        let mut tries = 0;
        loop {
            let view = api.get_node(&node).await?;
            let Some(body) = taint::patch(&view.taints, settings.taint_key.as_str(), false) else {
                return Ok(Untainted::NotThere { node });
            };
            match api.patch_taints(&node, &body).await {
                Ok(_) => return Ok(Untainted::Removed { node }),
                Err(ClientError::Status { code: 409, .. }) if tries < 3 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    })
}

fn with_status(status: &Mutex<ExporterStatus>, f: impl FnOnce(&mut ExporterStatus)) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

/// `Instant::now() + wait`, without an overflow panic: an unrepresentable time is a day from now (settings bound
/// every wait to a day).
fn later(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait).or_else(|| now.checked_add(Duration::from_secs(86_400))).unwrap_or(now)
}

/// A number for a new Event's name.
fn next_seq(seq: &mut u64) -> u64 {
    *seq += 1;
    // Unique across restarts too: nanoseconds since the epoch, as the kubelet's names are.
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    nanos.wrapping_add(*seq)
}

fn count(status: &Mutex<ExporterStatus>, ok: bool) {
    if let Ok(mut s) = status.lock() {
        if ok {
            s.requests_ok += 1;
        } else {
            s.requests_failed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{FindingId, Severity};

    /// Settings naming a kubeconfig that is not there, under `root`.
    fn absent_kubeconfig(root: &std::path::Path) -> ExporterSettings {
        ExporterSettings {
            kubeconfigs: [root.join("etc/kubernetes/absent.conf"), root.join("var/lib/kubelet/kubeconfig")],
            host_root: root.to_path_buf(),
            node_name: NodeName::parse("node-a"),
            heartbeat: Duration::from_secs(300),
            taint: false,
            taint_key: TaintKey::parse(crate::config::DEFAULT_TAINT_KEY).unwrap(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_kubeconfig_it_reports_failed_and_publishing_never_waits() {
        let root = tempfile::tempdir().unwrap();
        let cfg = absent_kubeconfig(root.path());
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let e = Exporter::start(&cfg, move || {
            let _ = tx.try_send(());
        });
        let report = conditions::tests::report(&[(
            FindingId::ServiceRoutingConflict,
            Severity::Critical,
            "kube-proxy and cilium",
        )]);
        let start = std::time::Instant::now();
        for _ in 0..10_000 {
            e.publish(&report, true, &NodeGate::Met);
        }
        assert!(start.elapsed() < Duration::from_secs(2), "publishing waited: {:?}", start.elapsed());
        tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap();
        let s = e.status();
        assert_eq!(s.up, Some(false));
        let err = s.last_error.unwrap_or_default();
        assert!(err.contains("absent.conf"), "the error names the kubeconfig (under the host root): {err}");
        assert_eq!(s.requests_ok + s.requests_failed, 0, "no request without a kubeconfig");
    }

    #[test]
    fn a_wait_past_what_an_instant_holds_is_no_panic() {
        let now = Instant::now();
        assert!(later(Duration::MAX) >= now);
        assert!(later(Duration::from_secs(5)) >= now + Duration::from_secs(5));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ended_exporter_task_shows_as_the_source_failed() {
        let root = tempfile::tempdir().unwrap();
        let cfg = absent_kubeconfig(root.path());
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let e = Exporter::start(&cfg, move || {
            let _ = tx.try_send(());
        });
        e.kill_task();
        let start = std::time::Instant::now();
        while e.status().last_error.as_deref() != Some(TASK_ENDED) {
            assert!(start.elapsed() < Duration::from_secs(5), "the ended task went unnoticed: {:?}", e.status());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(e.status().up, Some(false));
        // The daemon is asked to re-render, so the failure shows without waiting for the next collection.
        tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap();
        e.publish(&conditions::tests::report(&[]), true, &NodeGate::Met);
    }
}
