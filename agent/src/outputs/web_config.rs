//! The network metrics listener's security, built from the web configuration `settings` read and validated
//! (`WebSettings`: the Prometheus exporter-toolkit file node_exporter reads, `tls_server_config` and bcrypt
//! `basic_auth_users`): a rustls `ServerConfig` (whose certificate and key are re-read when their files change)
//! and a basic-auth check with its middleware.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Files larger than this (a certificate, a key) are refused.
const MAX_FILE: u64 = 1 << 20;
/// Verified credentials kept (as SHA-256 digests) so a scrape does not pay bcrypt's cost every time.
const MAX_CACHED: usize = 64;

/// A web configuration as `settings` validated it: what the metrics listener serves with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    /// The file it came from.
    pub path: PathBuf,
    /// `tls_server_config`, when set.
    pub tls: Option<TlsSettings>,
    /// `basic_auth_users`: user name (not empty, without ':') to bcrypt hash.
    pub users: BTreeMap<String, BcryptHash>,
}

/// `tls_server_config`, validated: the files resolved against the web configuration's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_certs: ClientCerts,
    /// The protocol versions offered, `min_version` to `max_version` (min never above max).
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

/// Which client certificates the listener asks for; a certificate it accepts is always verified against the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCerts {
    /// `NoClientCert`.
    NotAsked,
    /// `VerifyClientCertIfGiven`: a client without one is let through (to basic auth, if any).
    VerifiedIfGiven { ca_file: PathBuf },
    /// `RequireAndVerifyClientCert`.
    Required { ca_file: PathBuf },
}

/// The TLS versions rustls speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// A bcrypt hash (`$2a$`, `$2b$` or `$2y$`), checked for its form.
#[derive(Clone, PartialEq, Eq)]
pub struct BcryptHash(String);

impl BcryptHash {
    /// `hash` when it has a bcrypt hash's form.
    pub fn parse(hash: &str) -> Result<BcryptHash, bcrypt::BcryptError> {
        hash.parse::<bcrypt::HashParts>()?;
        Ok(BcryptHash(hash.to_string()))
    }

    fn cost(&self) -> Option<u32> {
        self.0.parse::<bcrypt::HashParts>().ok().map(|h| h.get_cost())
    }
}

/// Never the hash itself.
impl std::fmt::Debug for BcryptHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BcryptHash(..)")
    }
}

/// A TLS server configuration that could not be built from valid settings: a file it names cannot be read or
/// used (the cause, when there is one, is the error's source).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}")]
    Read { path: PathBuf, source: crate::sys::host::FileError },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: PEM")]
    Pem { path: PathBuf, source: rustls_pki_types::pem::Error },
    #[error("{path}: client CA")]
    ClientCa { path: PathBuf, source: rustls::Error },
    #[error("{path}: client certificate verifier")]
    Verifier { path: PathBuf, source: rustls::server::VerifierBuilderError },
    #[error("{path}: TLS")]
    Tls { path: PathBuf, source: rustls::Error },
}

/// A loaded web configuration: the TLS server configuration (when `tls_server_config` is set) and the users.
#[derive(Clone)]
pub struct WebConfig {
    pub path: PathBuf,
    pub tls: Option<Arc<ServerConfig>>,
    /// Which client certificates are asked for (for logs and tests).
    pub client_certs: ClientCerts,
    pub auth: Option<Arc<BasicAuth>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .field("client_certs", &self.client_certs)
            .field("basic_auth_users", &self.auth.as_ref().map(|a| a.users.len()))
            .finish()
    }
}

/// Reads a file the web configuration names like every other user-named file: a regular file only (opened
/// non-blocking, so a FIFO put there is an error at once instead of a hang), at most [`MAX_FILE`] bytes.
fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    crate::sys::host::read_regular(path, MAX_FILE)
        .map(String::into_bytes)
        .map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

impl WebConfig {
    /// The listener's TLS (reading the certificate, key and client CA) and basic auth, from validated settings.
    pub fn build(settings: &WebSettings) -> Result<WebConfig, TlsError> {
        let (tls, client_certs) = match &settings.tls {
            None => (None, ClientCerts::NotAsked),
            Some(t) => (Some(Arc::new(server_config(t, &settings.path)?)), t.client_certs.clone()),
        };
        let auth = (!settings.users.is_empty()).then(|| Arc::new(BasicAuth::new(settings.users.clone())));
        Ok(WebConfig { path: settings.path.clone(), tls, client_certs, auth })
    }
}

fn server_config(t: &TlsSettings, path: &Path) -> Result<ServerConfig, TlsError> {
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(TlsVersion::Tls12, &rustls::version::TLS12), (TlsVersion::Tls13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (t.min_version..=t.max_version).contains(v))
            .map(|(_, s)| s)
            .collect();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = RotatingCert::load(t.cert_file.clone(), t.key_file.clone(), Arc::clone(&provider))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|source| TlsError::Tls { path: path.to_path_buf(), source })?;
    let builder = match &t.client_certs {
        ClientCerts::VerifiedIfGiven { ca_file } | ClientCerts::Required { ca_file } => {
            let mut roots = RootCertStore::empty();
            for c in certificates(ca_file)? {
                roots.add(c).map_err(|source| TlsError::ClientCa { path: ca_file.clone(), source })?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = match t.client_certs {
                ClientCerts::VerifiedIfGiven { .. } => v.allow_unauthenticated(),
                _ => v,
            };
            let v = v.build().map_err(|source| TlsError::Verifier { path: ca_file.clone(), source })?;
            builder.with_client_cert_verifier(v)
        }
        ClientCerts::NotAsked => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(cert));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The server's certificate chain and key, re-read when either file changes: certificates are renewed in place
/// (cert-manager, a Secret volume swapping its `..data` link, a renewal script), and exporter-toolkit takes a new
/// pair without a restart too. A pair that does not load (half written, key and certificate not matching) keeps
/// the last good one, with one warning per change of the files.
///
/// The files are looked at on a thread of their own, never in a handshake: a handshake (on a tokio worker) takes
/// the pair in hand and wakes the thread, which looks at most once per [`LOOK_EVERY`]. A file system that hangs
/// (a dead NFS server) holds up that thread only; handshakes go on with the last good pair.
#[derive(Debug)]
struct RotatingCert {
    pair: Arc<CertPair>,
    /// Wakes the thread; it ends when this goes (the `ServerConfig` dropped).
    wake: std::sync::mpsc::SyncSender<()>,
}

#[derive(Debug)]
struct CertPair {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<(Option<Stamp>, Arc<CertifiedKey>)>,
}

/// The files are looked at no more often than this.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// A version of the two files: inode, size and modification time of each (metadata follows symlinks).
type Stamp = [(u64, u64, Option<SystemTime>); 2];

fn stamp(cert: &Path, key: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.ino(), m.len(), m.modified().ok()));
    Some([one(cert)?, one(key)?])
}

impl RotatingCert {
    fn load(cert: PathBuf, key: PathBuf, provider: Arc<CryptoProvider>) -> Result<RotatingCert, TlsError> {
        let at = stamp(&cert, &key);
        let first = certified_key(&cert, &key, &provider)?;
        let pair = Arc::new(CertPair { cert, key, provider, current: Mutex::new((at, Arc::new(first))) });
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let watched = Arc::clone(&pair);
        let spawned = std::thread::Builder::new().name("rw-cert".into()).spawn(move || {
            while woken.recv().is_ok() {
                watched.look();
                std::thread::sleep(LOOK_EVERY);
            }
        });
        if let Err(e) = spawned {
            // Without the thread the first pair is served until a restart.
            log::warn!(
                "metrics listener: starting the certificate watcher: {e}; a renewed certificate needs a restart"
            );
        }
        Ok(RotatingCert { pair, wake })
    }
}

impl CertPair {
    /// Re-reads the pair when the files changed since the last look. Blocking: only on the watcher's thread.
    fn look(&self) {
        #[cfg(test)]
        let _stalled = tests::STALL.lock().unwrap_or_else(PoisonError::into_inner);
        let now = stamp(&self.cert, &self.key);
        let seen = self.current.lock().unwrap_or_else(PoisonError::into_inner).0;
        // A file missing for a moment (being replaced) keeps the pair and is looked at again next time.
        if now.is_none() || now == seen {
            return;
        }
        let loaded = certified_key(&self.cert, &self.key, &self.provider);
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        cur.0 = now;
        match loaded {
            Ok(pair) => {
                log::info!("metrics listener: certificate {} reloaded", self.cert.display());
                cur.1 = Arc::new(pair);
            }
            Err(e) => {
                log::warn!("metrics listener: keeping the previous certificate: {}", crate::model::error_chain(&e))
            }
        }
    }

    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.lock().unwrap_or_else(PoisonError::into_inner).1)
    }
}

impl ResolvesServerCert for RotatingCert {
    /// The pair in hand, at once; the watcher is told to look at the files (a wake already pending is enough).
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let _ = self.wake.try_send(());
        Some(self.pair.current())
    }
}

/// A certificate chain and its private key, which must match.
fn certified_key(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let certs = certificates(cert)?;
    let der = PrivateKeyDer::from_pem_slice(&read_bounded(key)?)
        .map_err(|source| TlsError::Pem { path: key.to_path_buf(), source })?;
    CertifiedKey::from_der(certs, der, provider).map_err(|source| TlsError::Tls { path: key.to_path_buf(), source })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(&read_bounded(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { path: path.to_path_buf(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

/// Basic auth against bcrypt hashes. A verified credential is remembered as a SHA-256 digest (bcrypt costs
/// tens of milliseconds by design; Prometheus sends the same credentials every scrape). An unknown user is
/// checked against a dummy hash so that the answer takes as long as for a known one.
pub struct BasicAuth {
    users: BTreeMap<String, BcryptHash>,
    dummy: Option<String>,
    verified: Mutex<HashSet<[u8; 32]>>,
    /// The verifiers' queue, started on first use.
    queue: Mutex<Option<std::sync::mpsc::SyncSender<Job>>>,
    /// Password checks running now, and the most ever at once.
    running: AtomicUsize,
    peak: AtomicUsize,
    /// Failed attempts left per client (see [`Strikes`]).
    strikes: Mutex<HashMap<IpAddr, Strikes>>,
    /// Requests accepted, refused, refused busy, refused for the client's failed attempts.
    counts: [AtomicU64; 4],
}

/// A client's allowance of failed attempts: a bucket of [`BURST`] that refills one every [`REFILL`]. A wrong
/// password takes one; a client whose bucket is empty is refused at once (429) without a verification. A scrape
/// with the wrong password every 15 s never runs out; a flood from one address costs at most one bcrypt check per
/// [`REFILL`] once its burst is spent. Remembered (already verified) credentials are accepted even then, so a
/// Prometheus sharing its address with a misconfigured one keeps scraping.
#[derive(Debug, Clone, Copy)]
struct Strikes {
    left: f64,
    at: Instant,
}

const BURST: f64 = 10.0;
const REFILL: Duration = Duration::from_secs(2);
/// Clients tracked at most; past it, those whose bucket is full again are forgotten, and if that is not enough,
/// all (the limit protects the verifiers; the verifiers' queue bounds the rest).
const MAX_CLIENTS: usize = 4096;

/// The key a client's failed attempts are counted under: its IPv4 address, its IPv6 /64 (one host's share).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl Strikes {
    /// The allowance now, refilled for the time since it was last looked at.
    fn refilled(self, now: Instant) -> Strikes {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        Strikes { left: (self.left + gained).min(BURST), at: now }
    }
}

/// At most this many bcrypt verifications run at once, each on a thread of its own pool: never on tokio's
/// blocking pool, which collection uses (issue 27: a flood of wrong passwords took it to 518 threads and stalled
/// collection). More wait in a queue of [`QUEUE`]; beyond that a request is refused at once (429).
const VERIFIERS: usize = 2;
const QUEUE: usize = 32;

/// A request's client address, which the listener hands each request (`http::PeerIp`): what failed attempts are
/// counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub IpAddr);

/// One password check waiting for a verifier; dropped unrun when its client has gone (`reply` closed).
struct Job {
    auth: Arc<BasicAuth>,
    value: Option<HeaderValue>,
    reply: tokio::sync::oneshot::Sender<bool>,
}

/// What became of a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Refused,
    /// The verifiers and their queue were full.
    Busy,
    /// The client has used up its failed attempts for now.
    Limited,
}

impl BasicAuth {
    fn new(users: BTreeMap<String, BcryptHash>) -> BasicAuth {
        let cost = users.values().filter_map(BcryptHash::cost).max();
        let dummy = cost.and_then(|c| bcrypt::hash("routewarden-dummy", c).ok());
        BasicAuth {
            users,
            dummy,
            verified: Mutex::new(HashSet::new()),
            queue: Mutex::new(None),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            strikes: Mutex::new(HashMap::new()),
            counts: Default::default(),
        }
    }

    /// What this check did since the start, for the report.
    pub fn counters(&self) -> crate::report::AuthCounters {
        let [accepted, refused, busy, rate_limited] = self.counts.each_ref().map(|c| c.load(Ordering::Relaxed));
        let now = Instant::now();
        let limited_clients =
            self.strikes.lock().map(|m| m.values().filter(|s| s.refilled(now).left < 1.0).count() as u64).unwrap_or(0);
        crate::report::AuthCounters {
            accepted,
            refused,
            busy,
            rate_limited,
            verifications_peak: self.peak.load(Ordering::Relaxed) as u64,
            limited_clients,
        }
    }

    /// Takes one failed attempt from `peer`'s allowance ahead of a verification; `false` when none is left.
    fn take_strike(&self, peer: IpAddr, now: Instant) -> bool {
        let mut m = self.strikes.lock().unwrap_or_else(PoisonError::into_inner);
        if m.len() >= MAX_CLIENTS && !m.contains_key(&client_key(peer)) {
            m.retain(|_, s| s.refilled(now).left < BURST);
            if m.len() >= MAX_CLIENTS {
                m.clear();
            }
        }
        let s = m.entry(client_key(peer)).or_insert(Strikes { left: BURST, at: now });
        *s = s.refilled(now);
        if s.left < 1.0 {
            return false;
        }
        s.left -= 1.0;
        true
    }

    /// Gives back the attempt taken for a verification that succeeded.
    fn return_strike(&self, peer: IpAddr) {
        let mut m = self.strikes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = m.get_mut(&client_key(peer)) {
            s.left = (s.left + 1.0).min(BURST);
        }
    }

    fn count(&self, v: Verdict) -> Verdict {
        let i = match v {
            Verdict::Accepted => 0,
            Verdict::Refused => 1,
            Verdict::Busy => 2,
            Verdict::Limited => 3,
        };
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        v
    }

    fn digest(user: &str, password: &[u8]) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(password);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// Checks credentials on the verifiers' own threads: a remembered credential at once, an unparsable header
    /// at once, the rest queued (or [`Verdict::Busy`] when the queue is full, [`Verdict::Limited`] when `peer` has
    /// used up its failed attempts). A check whose client has gone by the time a verifier is free is not run.
    pub async fn verify(self: &Arc<Self>, authorization: Option<HeaderValue>, peer: Option<IpAddr>) -> Verdict {
        let v = self.verify_uncounted(authorization, peer).await;
        self.count(v)
    }

    async fn verify_uncounted(self: &Arc<Self>, authorization: Option<HeaderValue>, peer: Option<IpAddr>) -> Verdict {
        let Some((user, password)) = authorization.as_ref().and_then(|v| parse_basic(v.as_bytes())) else {
            return Verdict::Refused;
        };
        if self.verified.lock().is_ok_and(|v| v.contains(&BasicAuth::digest(&user, &password))) {
            return Verdict::Accepted;
        }
        if let Some(ip) = peer {
            if !self.take_strike(ip, Instant::now()) {
                return Verdict::Limited;
            }
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job { auth: Arc::clone(self), value: authorization, reply };
        let sent = {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = q.get_or_insert_with(start_verifiers);
            tx.try_send(job)
        };
        let verdict = match sent {
            Ok(()) => match answer.await {
                Ok(true) => Verdict::Accepted,
                _ => Verdict::Refused,
            },
            Err(_) => Verdict::Busy,
        };
        if verdict != Verdict::Refused {
            // Only a wrong password counts against the client.
            if let Some(ip) = peer {
                self.return_strike(ip);
            }
        }
        verdict
    }

    /// The most password checks that ever ran at once.
    pub fn peak_running(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Whether an `Authorization` header value names a configured user with the right password. Blocking (bcrypt).
    pub fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(|v| parse_basic(v.as_bytes())) else { return false };
        let digest = BasicAuth::digest(&user, &password);
        if self.verified.lock().is_ok_and(|v| v.contains(&digest)) {
            return true;
        }
        let now = self.running.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        let ok = self.bcrypt(&user, &password);
        self.running.fetch_sub(1, Ordering::Relaxed);
        if ok {
            if let Ok(mut v) = self.verified.lock() {
                if v.len() >= MAX_CACHED {
                    v.clear();
                }
                v.insert(digest);
            }
        }
        ok
    }

    fn bcrypt(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, &hash.0).unwrap_or(false),
            None => {
                if let Some(d) = &self.dummy {
                    let _ = bcrypt::verify(password, d);
                }
                false
            }
        }
    }
}

/// Starts the [`VERIFIERS`] threads behind a queue of [`QUEUE`] jobs; they end when the queue's sender goes (the
/// `BasicAuth` replaced on reload). A thread that cannot start leaves the others (or, with none, every job
/// waits in the queue and times out with its connection).
fn start_verifiers() -> std::sync::mpsc::SyncSender<Job> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..VERIFIERS {
        let rx = Arc::clone(&rx);
        let spawned = std::thread::Builder::new().name(format!("rw-auth-{i}")).spawn(move || loop {
            let job = match rx.lock().unwrap_or_else(PoisonError::into_inner).recv() {
                Ok(job) => job,
                Err(_) => return,
            };
            if job.reply.is_closed() {
                continue;
            }
            let ok = job.auth.check(job.value.as_ref());
            let _ = job.reply.send(ok);
        });
        if let Err(e) = spawned {
            log::warn!("metrics listener: starting password verifier {i}: {e}");
        }
    }
    tx
}

/// `Basic base64(user:password)` to its parts.
fn parse_basic(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}

/// Middleware: a request without valid credentials gets 401 with a `WWW-Authenticate` challenge.
pub async fn require_basic_auth(State(auth): State<Arc<BasicAuth>>, req: Request, next: Next) -> Response {
    let value = req.headers().get(header::AUTHORIZATION).cloned();
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    let verdict = auth.verify(value, peer).await;
    if verdict == Verdict::Accepted {
        next.run(req).await
    } else if verdict == Verdict::Busy {
        (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, HeaderValue::from_static("1"))], "busy\n")
            .into_response()
    } else if verdict == Verdict::Limited {
        let wait = HeaderValue::from(REFILL.as_secs());
        (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, wait)], "too many failed attempts\n").into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"routewarden\""))],
            "unauthorized\n",
        )
            .into_response()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Held by a test to hold up every certificate watcher's look, as a hung file system would.
    pub(super) static STALL: Mutex<()> = Mutex::new(());

    pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A CA, a server certificate it signed, and the files; returns the directory.
    pub(crate) fn pki() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = signed_pair();
        write(dir.path(), "ca.pem", &ca);
        write(dir.path(), "tls.crt", &cert);
        write(dir.path(), "tls.key", &key);
        dir
    }

    /// TLS with `tls.crt` and `tls.key` in `dir`, no client certificates, no users.
    fn tls_only(dir: &Path) -> WebConfig {
        let tls = TlsSettings {
            cert_file: dir.join("tls.crt"),
            key_file: dir.join("tls.key"),
            client_certs: ClientCerts::NotAsked,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
        };
        WebConfig::build(&WebSettings { path: dir.join("web.yml"), tls: Some(tls), users: BTreeMap::new() }).unwrap()
    }

    /// Basic auth with one user whose bcrypt hash (of `cost`) is of `password`.
    pub(crate) fn basic_auth(user: &str, password: &str, cost: u32) -> Arc<BasicAuth> {
        let hash = BcryptHash::parse(&bcrypt::hash(password, cost).unwrap()).unwrap();
        Arc::new(BasicAuth::new(BTreeMap::from([(user.to_string(), hash)])))
    }

    pub(crate) fn basic(user: &str, password: &str) -> HeaderValue {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {b}")).unwrap()
    }

    /// A server certificate for `localhost` signed by a new CA: (CA PEM, certificate PEM, key PEM).
    pub(crate) fn signed_pair() -> (String, String, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca_cert, &ca_key)
            .unwrap();
        (ca_cert.pem(), cert.pem(), key.serialize_pem())
    }

    /// The end-entity certificate a TLS client trusting `ca_pem` is shown by `server`, or the handshake's error.
    async fn presented(server: Arc<ServerConfig>, ca_pem: &str) -> Result<Vec<u8>, std::io::Error> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await;
        });
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp).await;
        let _ = accept.await;
        Ok(tls?.get_ref().1.peer_certificates().unwrap()[0].to_vec())
    }

    #[tokio::test]
    async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (ca1, cert1, key1) = signed_pair();
        write(dir.path(), "tls.crt", &cert1);
        write(dir.path(), "tls.key", &key1);
        let w = tls_only(dir.path());
        let tls = w.tls.unwrap();
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec();
        assert_eq!(presented(Arc::clone(&tls), &ca1).await.unwrap(), der(&cert1));
        // The certificate served once the watcher has had its look (a handshake wakes it; it looks once a second).
        let settled = |ca: String| {
            let tls = Arc::clone(&tls);
            async move {
                let mut last = Err(std::io::Error::other("no handshake"));
                for _ in 0..40 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    last = presented(Arc::clone(&tls), &ca).await;
                    if last.is_ok() {
                        // Once more after another look: the same pair stays.
                        tokio::time::sleep(LOOK_EVERY + Duration::from_millis(200)).await;
                        let _ = presented(Arc::clone(&tls), &ca).await;
                        tokio::time::sleep(LOOK_EVERY + Duration::from_millis(200)).await;
                        return presented(Arc::clone(&tls), &ca).await;
                    }
                }
                last
            }
        };

        // Renewed in place, as a Secret volume does it: new files, then one rename each.
        let (ca2, cert2, key2) = signed_pair();
        write(dir.path(), "tls.crt.new", &cert2);
        write(dir.path(), "tls.key.new", &key2);
        std::fs::rename(dir.path().join("tls.key.new"), dir.path().join("tls.key")).unwrap();
        std::fs::rename(dir.path().join("tls.crt.new"), dir.path().join("tls.crt")).unwrap();
        assert_eq!(settled(ca2.clone()).await.unwrap(), der(&cert2));
        assert!(presented(Arc::clone(&tls), &ca1).await.is_err(), "the old CA no longer verifies it");

        // A key that does not match the certificate (or a half-written file): the last good pair stays.
        write(dir.path(), "tls.key", &key1);
        assert_eq!(settled(ca2.clone()).await.unwrap(), der(&cert2));
        write(dir.path(), "tls.key", "-----BEGIN PRIVATE KEY-----\nAAAA");
        assert_eq!(settled(ca2.clone()).await.unwrap(), der(&cert2));
        // A missing file for a moment, then the right key again.
        std::fs::remove_file(dir.path().join("tls.key")).unwrap();
        assert_eq!(settled(ca2.clone()).await.unwrap(), der(&cert2));
        write(dir.path(), "tls.key", &key2);
        assert_eq!(settled(ca2).await.unwrap(), der(&cert2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[allow(clippy::await_holding_lock)] // held on purpose: only the watcher's thread waits for it
    async fn a_handshake_never_waits_for_the_certificate_files() {
        // Before: the handshake itself looked at the files (on a tokio worker, holding the pair's lock), so a
        // file system that hangs hung every TLS client. Here the watcher's look is held up (as a hung stat would
        // hold it) while the files change: handshakes go on with the pair in hand, and the new pair comes after.
        let dir = tempfile::tempdir().unwrap();
        let (ca1, cert1, key1) = signed_pair();
        write(dir.path(), "tls.crt", &cert1);
        write(dir.path(), "tls.key", &key1);
        let w = tls_only(dir.path());
        let tls = w.tls.unwrap();
        let stall = STALL.lock().unwrap();
        let (ca2, cert2, key2) = signed_pair();
        write(dir.path(), "tls.crt", &cert2);
        write(dir.path(), "tls.key", &key2);
        let t = std::time::Instant::now();
        for _ in 0..3 {
            presented(Arc::clone(&tls), &ca1).await.unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        drop(stall);
        let mut served = Err(std::io::Error::other("none"));
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            served = presented(Arc::clone(&tls), &ca2).await;
            if served.is_ok() {
                break;
            }
        }
        let der = CertificateDer::from_pem_slice(cert2.as_bytes()).unwrap().to_vec();
        assert_eq!(served.unwrap(), der);
    }
}
