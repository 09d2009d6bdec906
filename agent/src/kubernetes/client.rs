//! The API server side of the exporter: the kubeconfig read and checked (size-capped; credential plugins
//! refused), the Node's name resolved, a kube-rs client with deadlines built, and the three exchanges the
//! exporter makes (read the Node, patch its conditions, create or bump an Event). Error texts never carry a
//! token or a key: [`Redactor`] removes every secret the kubeconfig holds, and any long token-like word.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::taint::NodeTaints;

/// The largest kubeconfig (or certificate file) read.
pub const MAX_KUBECONFIG_BYTES: u64 = 1 << 20;
/// The largest bearer token file read (a projected service account token is about 1 KiB).
pub const MAX_TOKEN_BYTES: u64 = 64 << 10;
/// How often a token file is read again (the kubelet rotates projected tokens at 80 % of their life, an hour
/// at the least; client-go re-reads each minute too).
pub const TOKEN_REFRESH: Duration = Duration::from_secs(60);
/// Where the kubelet projects a Pod's service account token, its CA and namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The largest answer read from the API server (a Node object is a few KiB to a few hundred).
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// Deadline of each connection attempt, and of each read and write on the connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the exporter could not reach or use the API server (texts already redacted).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("kubeconfig {path}: {what}")]
    Kubeconfig { path: PathBuf, what: String },
    #[error("{op}: {what}")]
    Api { op: &'static str, what: String },
    /// The API server answered with an error status (401, 403, 409, 422, 5xx, ...): the connection works.
    #[error("{op}: {what}")]
    Status { op: &'static str, code: u16, what: String },
    #[error("{op}: no answer within {secs} s")]
    Deadline { op: &'static str, secs: u64 },
}

/// A bearer token file that cannot be used (the text never holds the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Reading it failed (not a regular file, larger than [`MAX_TOKEN_BYTES`], ...): what the read says.
    #[error("{0}")]
    Read(String),
    #[error("the token file is empty")]
    Empty,
    #[error("the token holds characters an HTTP header cannot")]
    NotAHeader,
}

/// Removes secrets from error texts.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

/// Never the secrets themselves.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("secrets", &self.secrets.len()).finish()
    }
}

/// A piece of a secret this long or longer is cut wherever it appears (a token echoed split across lines).
const MIN_FRAGMENT: usize = 8;

impl Redactor {
    pub fn clean(&self, text: &str) -> String {
        // ASCII lower-casing keeps byte offsets, so matches in the lower-cased text mark the original's bytes.
        let secrets: Vec<String> =
            self.secrets.iter().filter(|s| s.len() >= 4).map(|s| s.to_ascii_lowercase()).collect();
        let mut out = text.to_string();
        for s in &secrets {
            out = replace_ignoring_case(&out, s);
        }
        // Any long word of token characters (a bearer token, base64 key data) is cut too, and so is any piece of a
        // secret of MIN_FRAGMENT characters or more, in any case.
        let is_fragment = |w: &str| {
            w.len() >= MIN_FRAGMENT && {
                let lower = w.to_ascii_lowercase();
                secrets.iter().any(|s| s.len() >= 2 * MIN_FRAGMENT && s.contains(&lower))
            }
        };
        out.split_inclusive(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .map(|w| {
                let word = w.trim_end_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
                // Mixed case, as base64 and JWTs are: long lower-case host names stay readable.
                let tokenish = word.len() >= 32
                    && !word.starts_with('/')
                    && word.chars().any(|c| c.is_ascii_uppercase())
                    && word.chars().any(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && word.chars().all(|c| c.is_ascii_alphanumeric() || "-._~+/=".contains(c));
                if tokenish {
                    return format!("<redacted>{}", &w[word.len()..]);
                }
                // Pieces of a word between separators such as `=`, `:` or `,` (`token=PIECE`).
                let mut cleaned = String::with_capacity(w.len());
                for piece in word.split_inclusive(|c: char| !(c.is_ascii_alphanumeric() || "-._~+/".contains(c))) {
                    let body = piece.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || "-._~+/".contains(c)));
                    if is_fragment(body) {
                        cleaned.push_str("<redacted>");
                        cleaned.push_str(&piece[body.len()..]);
                    } else {
                        cleaned.push_str(piece);
                    }
                }
                cleaned.push_str(&w[word.len()..]);
                cleaned
            })
            .collect()
    }
}

/// `text` with every occurrence of `lower` (already ASCII lower-case), in any ASCII case, replaced.
fn replace_ignoring_case(text: &str, lower: &str) -> String {
    let hay = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in hay.match_indices(lower) {
        if at < last {
            continue;
        }
        out.push_str(&text[last..at]);
        out.push_str("<redacted>");
        last = at + lower.len();
    }
    out.push_str(&text[last..]);
    out
}

/// The kubeconfig to read: the configured one (already under the host root), else the kubelet's other one, else
/// the configured one (whose error then names it).
pub fn kubeconfig_path([configured, fallback]: &[PathBuf; 2]) -> PathBuf {
    if !configured.exists() && fallback.exists() {
        fallback.clone()
    } else {
        configured.clone()
    }
}

/// A kubeconfig loaded and checked, with what the exporter takes from it.
pub struct Loaded {
    pub kubeconfig: Kubeconfig,
    pub redactor: Redactor,
    /// `NAME` of a `system:node:NAME` identity (the user's name, or its client certificate's CN).
    pub kubelet_node: Option<String>,
    /// The bearer token of the current user's `tokenFile`, read by routewarden (never by kube-rs) and read
    /// again every [`TOKEN_REFRESH`].
    pub bearer: Option<std::sync::Arc<BearerToken>>,
}

/// A token file's token, read bounded ([`MAX_TOKEN_BYTES`], a regular file only: never a FIFO or a device).
#[derive(Debug)]
pub struct BearerToken {
    path: PathBuf,
    current: std::sync::Mutex<(hyper::header::HeaderValue, std::time::Instant)>,
}

impl BearerToken {
    /// Reads the token file at `path` (already resolved under the host root).
    pub fn read(path: &Path) -> Result<BearerToken, TokenError> {
        let value = Self::header(path)?;
        Ok(BearerToken { path: path.to_path_buf(), current: std::sync::Mutex::new((value, std::time::Instant::now())) })
    }

    fn header(path: &Path) -> Result<hyper::header::HeaderValue, TokenError> {
        let text = crate::sys::host::read_regular(path, MAX_TOKEN_BYTES)
            .map_err(|e| TokenError::Read(crate::model::error_chain(&e)))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(TokenError::Empty);
        }
        let mut value =
            hyper::header::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| TokenError::NotAHeader)?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// The token as the `Authorization` header, read again when older than [`TOKEN_REFRESH`]; when that read
    /// fails the last good token is kept (the API server says 401 if it is stale) and the failure logged.
    pub fn authorization(&self) -> hyper::header::HeaderValue {
        let mut cur = match self.current.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if cur.1.elapsed() >= TOKEN_REFRESH {
            cur.1 = std::time::Instant::now();
            match Self::header(&self.path) {
                Ok(v) => cur.0 = v,
                Err(e) => {
                    log::warn!(source = "kubernetes"; "token file {}: {e}; the last token is kept", self.path.display())
                }
            }
        }
        cur.0.clone()
    }

    fn secret(&self) -> String {
        let cur = match self.current.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        cur.0.to_str().unwrap_or_default().trim_start_matches("Bearer ").to_string()
    }
}

/// The API server from inside a Pod, when there is no kubeconfig: `KUBERNETES_SERVICE_HOST` and
/// `KUBERNETES_SERVICE_PORT`, the CA and the projected token in `sa_dir` (read by routewarden, bounded, the
/// token again every [`TOKEN_REFRESH`]), the Node from `node` (the DaemonSet's `NODE_NAME`). Blocking.
pub fn in_cluster(sa_dir: &Path, host: &str, port: &str, node: Option<&str>) -> Result<Loaded, ClientError> {
    let fail = |what: String| ClientError::Kubeconfig { path: sa_dir.to_path_buf(), what };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(fail(format!("in-cluster: KUBERNETES_SERVICE_HOST {host:?} / _PORT {port:?} is not an address")));
    }
    let server = if host.contains(':') { format!("https://[{host}]:{port}") } else { format!("https://{host}:{port}") };
    let ca = sa_dir.join("ca.crt");
    let token = sa_dir.join("token");
    let text = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "in-cluster",
        "clusters": [{"name": "in-cluster", "cluster": {"server": server, "certificate-authority": ca}}],
        "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "in-cluster"}}],
        "users": [{"name": "in-cluster", "user": {"tokenFile": token}}],
    })
    .to_string();
    let mut loaded = from_text(&text, sa_dir, Path::new("/"))?;
    loaded.kubelet_node = node.filter(|n| !n.is_empty()).map(str::to_string);
    Ok(loaded)
}

/// The kubeconfig at `path` if it exists; else, inside a Pod (`KUBERNETES_SERVICE_HOST` set), the in-cluster
/// service account; else the error of reading `path`. Blocking.
pub fn load_or_in_cluster(path: &Path, host_root: &Path) -> Result<Loaded, ClientError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (path.exists(), env("KUBERNETES_SERVICE_HOST"), env("KUBERNETES_SERVICE_PORT")) {
        (false, Some(host), Some(port)) => {
            in_cluster(Path::new(SERVICE_ACCOUNT_DIR), &host, &port, env("NODE_NAME").as_deref())
        }
        _ => load(path, host_root),
    }
}

/// Reads and checks the kubeconfig at `path` (a regular file of at most [`MAX_KUBECONFIG_BYTES`]). Every file
/// it names (certificate-authority, client-certificate, client-key, tokenFile) is taken under `host_root` when
/// absolute, from the kubeconfig's directory when relative (as kubectl does); the certificates and the key are
/// read (regular files only, size-capped, never blocking on a FIFO) and inlined as `*-data`, so kube-rs reads no
/// path of its own; the current user's `tokenFile` is read the same way (at most [`MAX_TOKEN_BYTES`]) into
/// [`Loaded::bearer`], which reads it again as the kubelet rotates it.
/// `insecure-skip-tls-verify` is refused. Blocking: call it off the async runtime.
pub fn load(path: &Path, host_root: &Path) -> Result<Loaded, ClientError> {
    let text = crate::sys::host::read_regular(path, MAX_KUBECONFIG_BYTES)
        .map_err(|e| ClientError::Kubeconfig { path: path.to_path_buf(), what: crate::model::error_chain(&e) })?;
    from_text(&text, path, host_root)
}

/// [`load`] of a kubeconfig's `text`; `path` names it in errors (and its directory resolves relative paths).
fn from_text(text: &str, path: &Path, host_root: &Path) -> Result<Loaded, ClientError> {
    use base64::Engine;
    let fail = |what: String| ClientError::Kubeconfig { path: path.to_path_buf(), what };
    let mut kubeconfig = Kubeconfig::from_yaml(text).map_err(|e| fail(Redactor::default().clean(&e.to_string())))?;
    let dir = if path.is_dir() { path } else { path.parent().unwrap_or(Path::new("/")) };
    let resolve = |file: &str| -> PathBuf {
        let f = Path::new(file);
        if f.is_absolute() {
            crate::config::under_root(host_root, f)
        } else {
            dir.join(f)
        }
    };
    let read = |field: &str, file: &str| -> Result<String, ClientError> {
        let at = resolve(file);
        crate::sys::host::read_regular(&at, MAX_KUBECONFIG_BYTES)
            .map_err(|e| fail(format!("{field} {}: {}", at.display(), crate::model::error_chain(&e))))
    };
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    for named in &mut kubeconfig.clusters {
        let Some(c) = named.cluster.as_mut() else { continue };
        if c.insecure_skip_tls_verify == Some(true) {
            return Err(fail(format!(
                "cluster {}: insecure-skip-tls-verify is refused (the API server's certificate must be verified)",
                named.name
            )));
        }
        if let Some(file) = c.certificate_authority.take() {
            c.certificate_authority_data = Some(b64(&read("certificate-authority", &file)?));
        }
    }
    let mut token_files = Vec::new();
    for named in &mut kubeconfig.auth_infos {
        let Some(a) = named.auth_info.as_mut() else { continue };
        if let Some(file) = a.client_certificate.take() {
            a.client_certificate_data = Some(b64(&read("client-certificate", &file)?));
        }
        if let Some(file) = a.client_key.take() {
            a.client_key_data = Some(secrecy::SecretString::from(b64(&read("client-key", &file)?)));
        }
        // Read here, bounded, never by kube-rs (a FIFO would block a worker for ever, /dev/zero grow without
        // end, a huge file be read again at every connection); an inline `token` wins, as in client-go.
        if let Some(file) = a.token_file.take() {
            if a.token.is_none() {
                let at = resolve(&file);
                let bearer = BearerToken::read(&at).map_err(|e| fail(format!("tokenFile {}: {e}", at.display())))?;
                token_files.push((named.name.clone(), std::sync::Arc::new(bearer)));
            }
        }
    }
    let context_user = kubeconfig
        .current_context
        .as_ref()
        .and_then(|c| kubeconfig.contexts.iter().find(|n| &n.name == c))
        .or_else(|| kubeconfig.contexts.first())
        .and_then(|n| n.context.as_ref())
        .and_then(|c| c.user.clone());
    let named = kubeconfig
        .auth_infos
        .iter()
        .find(|a| Some(&a.name) == context_user.as_ref())
        .or_else(|| kubeconfig.auth_infos.first());
    let auth = named.and_then(|a| a.auth_info.as_ref());
    let mut redactor = Redactor::default();
    let mut kubelet_node = named.and_then(|a| a.name.strip_prefix("system:node:")).map(str::to_string);
    if let Some(a) = auth {
        if a.exec.is_some() || a.auth_provider.is_some() {
            return Err(fail(
                "credential plugins (exec, auth-provider) are not run: use a token or a client certificate".into(),
            ));
        }
        if let Some(t) = &a.token {
            redactor.secrets.push(t.expose_secret().trim().to_string());
        }
        if let Some(k) = &a.client_key_data {
            redactor.secrets.push(k.expose_secret().trim().to_string());
        }
        if let Some(p) = &a.password {
            redactor.secrets.push(p.expose_secret().to_string());
        }
        if kubelet_node.is_none() {
            let pem = a.client_certificate_data.as_deref().and_then(base64_decode);
            kubelet_node = pem.as_deref().and_then(node_from_certificate);
        }
    }
    let bearer = named.and_then(|n| token_files.iter().find(|(name, _)| *name == n.name)).map(|(_, b)| b.clone());
    if let Some(b) = &bearer {
        redactor.secrets.push(b.secret());
    }
    Ok(Loaded { kubeconfig, redactor, kubelet_node, bearer })
}

fn base64_decode(data: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(data.trim()).ok()
}

/// `NAME` from the first certificate of `pem` whose subject CN is `system:node:NAME`.
pub fn node_from_certificate(pem: &[u8]) -> Option<String> {
    for p in x509_parser::pem::Pem::iter_from_buffer(pem).flatten() {
        if p.label != "CERTIFICATE" {
            continue;
        }
        let Ok(cert) = p.parse_x509() else { continue };
        for cn in cert.subject().iter_common_name() {
            if let Some(name) = cn.as_str().ok().and_then(|s| s.strip_prefix("system:node:")) {
                return Some(name.to_string());
            }
        }
    }
    None
}

/// The node name: the configured one, else the kubelet's identity, else the host name lowercased (as the
/// kubelet registers it: `Worker-1` is the Node `worker-1`).
pub fn node_name(configured: Option<&str>, kubelet: Option<&str>, hostname: &str) -> String {
    if let Some(n) = configured.filter(|n| !n.is_empty()) {
        return n.to_string();
    }
    match kubelet.filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => hostname.trim().to_lowercase(),
    }
}

/// The field manager named in every PATCH (server-side tracking of who set a field).
pub const FIELD_MANAGER: &str = "routewarden";

fn patch_params() -> PatchParams {
    PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PatchParams::default() }
}

/// A connected client and what it needs to say.
pub struct ApiClient {
    client: kube::Client,
    redactor: Redactor,
    deadline: Duration,
}

/// The Node as the exporter reads it: its uid and conditions `(type, status, reason, message, transition)`.
pub struct NodeView {
    pub uid: Option<String>,
    pub conditions: Vec<(String, String, String, String, String)>,
    pub taints: NodeTaints,
}

fn taints_of(node: &Node) -> NodeTaints {
    NodeTaints {
        resource_version: node.metadata.resource_version.clone().unwrap_or_default(),
        taints: node
            .spec
            .iter()
            .flat_map(|s| s.taints.iter().flatten())
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect(),
    }
}

impl ApiClient {
    /// A client for the kubeconfig's current context, with deadlines on connecting, reading and writing.
    pub async fn connect(loaded: Loaded, path: &Path) -> Result<ApiClient, ClientError> {
        let redactor = loaded.redactor.clone();
        let fail = |what: String| ClientError::Kubeconfig { path: path.to_path_buf(), what: redactor.clean(&what) };
        let mut config = kube::Config::from_custom_kubeconfig(loaded.kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| fail(e.to_string()))?;
        config.connect_timeout = Some(IO_TIMEOUT);
        config.read_timeout = Some(IO_TIMEOUT);
        config.write_timeout = Some(IO_TIMEOUT);
        // Otherwise the time a pooled connection sat idle counts against the next answer's read deadline
        // (kube's docs): spurious "no answer" errors on a kept connection.
        config.reset_reader_on_write = true;
        let builder = kube::client::ClientBuilder::try_from(config).map_err(|e| fail(e.to_string()))?;
        let bearer = loaded.bearer.clone();
        let authorize = move |mut req: hyper::Request<kube::client::Body>| {
            if let Some(b) = &bearer {
                req.headers_mut().insert(hyper::header::AUTHORIZATION, b.authorization());
            }
            req
        };
        let client = builder
            .with_layer(&tower::util::MapResponseLayer::new(limit_body))
            .with_layer(&tower::util::MapRequestLayer::new(authorize))
            .build();
        Ok(ApiClient { client, redactor, deadline: IO_TIMEOUT + Duration::from_secs(5) })
    }

    async fn call<T>(
        &self,
        op: &'static str,
        f: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ClientError> {
        match tokio::time::timeout(self.deadline, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.failed(op, &e)),
            Err(_) => Err(ClientError::Deadline { op, secs: self.deadline.as_secs() }),
        }
    }

    pub async fn get_node(&self, name: &str) -> Result<NodeView, ClientError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = self.call("reading the Node", nodes.get(name)).await?;
        let taints = taints_of(&node);
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let conditions = node
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let transition = c
                    .last_transition_time
                    .and_then(|t| serde_json::to_value(t).ok())
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                (c.type_, c.status, text(&c.reason), text(&c.message), transition)
            })
            .collect();
        Ok(NodeView { uid: node.metadata.uid, conditions, taints })
    }

    /// Writes the Node's taints (a JSON merge patch carrying the `resourceVersion` they were computed from: 409
    /// when the Node changed since) and returns them as the API server then holds them.
    pub async fn patch_taints(&self, name: &str, body: &Value) -> Result<NodeTaints, ClientError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node =
            self.call("patching the Node's taints", nodes.patch(name, &patch_params(), &Patch::Merge(body))).await?;
        Ok(taints_of(&node))
    }

    /// Patches the Node's conditions; returns its taints as the answer shows them (with the new
    /// `resourceVersion` the write gave the Node).
    pub async fn patch_conditions(&self, name: &str, body: &Value) -> Result<NodeTaints, ClientError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let params = patch_params();
        let node = self
            .call("patching the Node's conditions", nodes.patch_status(name, &params, &Patch::Strategic(body)))
            .await?;
        Ok(taints_of(&node))
    }

    /// Creates an Event.
    pub async fn create_event(&self, body: &Value) -> Result<(), ClientError> {
        let event: Event = serde_json::from_value(body.clone())
            .map_err(|e| ClientError::Api { op: "building an Event", what: e.to_string() })?;
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        self.call("creating an Event", events.create(&PostParams::default(), &event)).await?;
        Ok(())
    }

    /// Bumps an Event's count; `Ok(false)` when it no longer exists.
    pub async fn bump_event(&self, name: &str, body: &Value) -> Result<bool, ClientError> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        match tokio::time::timeout(self.deadline, events.patch(name, &patch_params(), &Patch::Strategic(body))).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => Ok(false),
            Ok(Err(e)) => Err(self.failed("updating an Event", &e)),
            Err(_) => Err(ClientError::Deadline { op: "updating an Event", secs: self.deadline.as_secs() }),
        }
    }
}

/// The answer with its body cut off (an error) past [`MAX_RESPONSE_BYTES`].
fn limit_body<B>(res: hyper::Response<B>) -> hyper::Response<http_body_util::Limited<B>> {
    res.map(|b| http_body_util::Limited::new(b, MAX_RESPONSE_BYTES))
}

impl ApiClient {
    /// A kube error as a [`ClientError`]: an error status from the API server is [`ClientError::Status`].
    fn failed(&self, op: &'static str, e: &kube::Error) -> ClientError {
        let what = self.redactor.clean(&error_text(e));
        match e {
            kube::Error::Api(s) => ClientError::Status { op, code: s.code, what },
            _ => ClientError::Api { op, what },
        }
    }
}

impl ClientError {
    /// Whether the connection is worth keeping after this error: the API server answered (an error status
    /// other than 401, after which the credentials are read again). Transport errors and deadlines drop it.
    pub fn keeps_connection(&self) -> bool {
        matches!(self, ClientError::Status { code, .. } if *code != 401)
    }

    /// Whether the API server refused an Event for good (no permission, invalid, its name taken, no such
    /// namespace): sending it again would fail the same way and hold up every Event after it.
    pub fn refuses_for_good(&self) -> bool {
        matches!(self, ClientError::Status { code: 400 | 403 | 404 | 409 | 422, .. })
    }
}

/// A kube error with its causes, on one line.
fn error_text(e: &kube::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_token_like_words_are_redacted() {
        let r = Redactor { secrets: vec!["s3cr3t-token".into()] };
        assert_eq!(r.clean("401 for s3cr3t-token here"), "401 for <redacted> here");
        let jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJzdWIiOiJzeXN0ZW06bm9kZSJ9.c2lnbmF0dXJl";
        assert_eq!(Redactor::default().clean(&format!("bad \"{jwt}\" x")), "bad \"<redacted>\" x");
        let path = "/var/lib/kubelet/pki/kubelet-client-current.pem";
        assert_eq!(Redactor::default().clean(path), path, "paths stay readable");
        let host = "connecting to ip-10-0-0-1.eu-west-1.compute.internal:6443 failed";
        assert_eq!(Redactor::default().clean(host), host, "host names stay readable");
    }

    #[test]
    fn a_secret_echoed_lower_cased_or_split_is_redacted() {
        let token = "Abc123DefGhi456JklMno789PqrStu0";
        let r = Redactor { secrets: vec![token.into()] };
        let lower = format!("invalid bearer token {}", token.to_lowercase());
        assert_eq!(r.clean(&lower), "invalid bearer token <redacted>");
        let upper = format!("token={}!", token.to_uppercase());
        assert_eq!(r.clean(&upper), "token=<redacted>!");
        let split = format!("token \"{}\n{}\" refused", &token[..15], &token[15..]);
        assert_eq!(r.clean(&split), "token \"<redacted>\n<redacted>\" refused");
        let keyed = format!("auth: token={},user=x", &token[3..20]);
        assert_eq!(r.clean(&keyed), "auth: token=<redacted>,user=x");
        let plain = "the node worker-1 answered 401 Unauthorized";
        assert_eq!(r.clean(plain), plain, "words that are no piece of the secret stay");
    }

    #[test]
    fn the_configured_kubeconfig_is_read_else_the_kubelets_other_one() {
        let dir = tempfile::tempdir().unwrap();
        let [configured, fallback] = [dir.path().join("kubelet.conf"), dir.path().join("kubeconfig")];
        let both = [configured.clone(), fallback.clone()];
        assert_eq!(kubeconfig_path(&both), configured, "neither: the configured one, which the error names");
        std::fs::write(&fallback, "").unwrap();
        assert_eq!(kubeconfig_path(&both), fallback);
        std::fs::write(&configured, "").unwrap();
        assert_eq!(kubeconfig_path(&both), configured);
    }

    #[test]
    fn the_node_name_is_configured_else_the_kubelets_else_the_host_name() {
        assert_eq!(node_name(Some("set"), Some("kubelet"), "host"), "set");
        assert_eq!(node_name(None, Some("kubelet"), "host"), "kubelet");
        assert_eq!(node_name(None, None, "host"), "host");
        assert_eq!(node_name(None, None, "Worker-1"), "worker-1", "the kubelet lowercases the host name");
        assert_eq!(node_name(None, Some("worker-2"), "Worker-1"), "worker-2");
    }

    #[test]
    fn the_kubelets_identity_names_the_node_and_plugins_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let by_user = dir.path().join("kubelet.conf");
        std::fs::write(
            &by_user,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n\
             contexts:\n- name: c\n  context:\n    cluster: k\n    user: system:node:worker-1\ncurrent-context: c\n\
             users:\n- name: system:node:worker-1\n  user:\n    token: abcdefgh12345678\n",
        )
        .unwrap();
        let l = load(&by_user, Path::new("/")).unwrap();
        assert_eq!(l.kubelet_node.as_deref(), Some("worker-1"));
        assert_eq!(l.redactor.clean("x abcdefgh12345678 y"), "x <redacted> y");

        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "system:node:worker-2");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(node_from_certificate(cert.pem().as_bytes()).as_deref(), Some("worker-2"));
        let by_cert = dir.path().join("cert.conf");
        std::fs::write(dir.path().join("c.pem"), cert.pem()).unwrap();
        std::fs::write(
            &by_cert,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n\
             contexts:\n- name: c\n  context:\n    cluster: k\n    user: default-auth\ncurrent-context: c\n\
             users:\n- name: default-auth\n  user:\n    client-certificate: c.pem\n    client-key: c.pem\n",
        )
        .unwrap();
        assert_eq!(
            load(&by_cert, Path::new("/")).unwrap().kubelet_node.as_deref(),
            Some("worker-2"),
            "relative paths from the file"
        );

        let exec = dir.path().join("exec.conf");
        std::fs::write(
            &exec,
            "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/true\n",
        )
        .unwrap();
        let err = load(&exec, Path::new("/")).err().unwrap().to_string();
        assert!(err.contains("credential plugins") && err.contains("exec.conf"), "{err}");
        let err = load(&dir.path().join("absent.conf"), Path::new("/")).err().unwrap().to_string();
        assert!(err.contains("absent.conf"), "{err}");
    }

    #[test]
    fn files_the_kubeconfig_names_are_read_under_the_host_root_bounded_and_inlined() {
        let host = tempfile::tempdir().unwrap();
        let kdir = host.path().join("etc/kubernetes");
        let pki = host.path().join("var/lib/kubelet/pki");
        std::fs::create_dir_all(&kdir).unwrap();
        std::fs::create_dir_all(&pki).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "system:node:worker-3");
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(pki.join("kubelet-client-current.pem"), format!("{}{}", cert.pem(), key.serialize_pem()))
            .unwrap();
        std::fs::write(kdir.join("ca.crt"), cert.pem()).unwrap();
        std::fs::write(host.path().join("var/lib/kubelet/token"), "tok-0123456789abcdef\n").unwrap();
        let conf = |user: &str, ca: &str| {
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n\
                 {ca}\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\ncurrent-context: c\n\
                 users:\n- name: u\n  user:\n{user}\n"
            )
        };
        let pem = "/var/lib/kubelet/pki/kubelet-client-current.pem";
        let path = kdir.join("kubelet.conf");
        std::fs::write(
            &path,
            conf(
                &format!("    client-certificate: {pem}\n    client-key: {pem}\n    tokenFile: /var/lib/kubelet/token"),
                "    certificate-authority: ca.crt",
            ),
        )
        .unwrap();
        // Absolute paths under the host root (not the container's /var/lib/kubelet), relative ones from the
        // kubeconfig's directory; the files inlined, the token file kept (resolved) so it refreshes.
        let l = load(&path, host.path()).unwrap();
        assert_eq!(l.kubelet_node.as_deref(), Some("worker-3"), "the client certificate was read under the root");
        let cluster = l.kubeconfig.clusters[0].cluster.as_ref().unwrap();
        assert!(cluster.certificate_authority.is_none() && cluster.certificate_authority_data.is_some());
        let a = l.kubeconfig.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(a.client_certificate.is_none() && a.client_key.is_none());
        assert!(a.client_certificate_data.is_some() && a.client_key_data.is_some());
        assert!(a.token_file.is_none() && a.token.is_none(), "kube-rs is given no token file to read");
        let bearer = l.bearer.as_ref().expect("the token file was read under the root");
        assert_eq!(bearer.authorization().to_str().unwrap(), "Bearer tok-0123456789abcdef");
        assert_eq!(l.redactor.clean("x tok-0123456789abcdef y"), "x <redacted> y");

        // A FIFO named as the key: an error naming it, at once (never a hang).
        let fifo = host.path().join("var/lib/kubelet/pki/fifo.pem");
        #[allow(clippy::disallowed_methods)] // a test's own helper tool
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        std::fs::write(&path, conf("    client-key: /var/lib/kubelet/pki/fifo.pem", "")).unwrap();
        let err = load(&path, host.path()).err().unwrap().to_string();
        assert!(err.contains("client-key") && err.contains("fifo.pem") && err.contains("not a regular file"), "{err}");
        // An oversized CA file: an error, not memory.
        std::fs::write(kdir.join("big.crt"), vec![b'a'; (MAX_KUBECONFIG_BYTES + 1) as usize]).unwrap();
        std::fs::write(&path, conf("    token: abc", "    certificate-authority: big.crt")).unwrap();
        let err = load(&path, host.path()).err().unwrap().to_string();
        assert!(err.contains("certificate-authority") && err.contains("more than"), "{err}");
        // A file that is not under the root is not found, even where it exists outside it.
        std::fs::write(&path, conf("    token: abc", "    certificate-authority: /etc/hostname")).unwrap();
        assert!(load(&path, host.path()).is_err());
        // insecure-skip-tls-verify is refused.
        std::fs::write(&path, conf("    token: abc", "    insecure-skip-tls-verify: true")).unwrap();
        let err = load(&path, host.path()).err().unwrap().to_string();
        assert!(err.contains("insecure-skip-tls-verify"), "{err}");
    }

    /// A kubeconfig in a fresh host root whose user has `tokenFile: /var/lib/kubelet/token`.
    fn token_file_kubeconfig() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let host = tempfile::tempdir().unwrap();
        let kdir = host.path().join("etc/kubernetes");
        std::fs::create_dir_all(&kdir).unwrap();
        std::fs::create_dir_all(host.path().join("var/lib/kubelet")).unwrap();
        let path = kdir.join("kubelet.conf");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n\
             contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\ncurrent-context: c\n\
             users:\n- name: u\n  user:\n    tokenFile: /var/lib/kubelet/token\n",
        )
        .unwrap();
        let token = host.path().join("var/lib/kubelet/token");
        (host, path, token)
    }

    #[test]
    fn a_token_file_that_cannot_be_used_says_why_without_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, " \n").unwrap();
        assert_eq!(BearerToken::read(&token).err(), Some(TokenError::Empty));
        std::fs::write(&token, "secret\u{1}token\n").unwrap();
        let e = BearerToken::read(&token).err().unwrap();
        assert_eq!(e, TokenError::NotAHeader);
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = BearerToken::read(&dir.path().join("absent")).err().unwrap();
        assert!(matches!(&e, TokenError::Read(_)), "{e:?}");
        std::fs::write(&token, "tok-1\n").unwrap();
        assert_eq!(BearerToken::read(&token).unwrap().authorization().to_str().unwrap(), "Bearer tok-1");
    }

    /// Issue 27: kube-rs read `tokenFile` itself, unbounded, at every connection. Each of these loaded "fine"
    /// before and then blocked a worker for ever (FIFO), grew without end (/dev/zero) or read a huge file.
    #[test]
    fn a_token_file_that_is_a_fifo_a_device_or_huge_is_an_error_at_once() {
        let (host, path, token) = token_file_kubeconfig();
        #[allow(clippy::disallowed_methods)] // a test's own helper tool
        let made = std::process::Command::new("mkfifo").arg(&token).status().unwrap();
        assert!(made.success());
        let started = std::time::Instant::now();
        let err = load(&path, host.path()).err().expect("a FIFO as tokenFile is refused").to_string();
        assert!(err.contains("tokenFile") && err.contains("not a regular file"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2), "no wait for a writer");

        std::fs::remove_file(&token).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &token).unwrap();
        let err = load(&path, host.path()).err().expect("/dev/zero as tokenFile is refused").to_string();
        assert!(err.contains("tokenFile") && err.contains("not a regular file"), "{err}");

        std::fs::remove_file(&token).unwrap();
        // 1 GiB, sparse: nothing of it is read.
        std::fs::File::create(&token).unwrap().set_len(1 << 30).unwrap();
        let err = load(&path, host.path()).err().expect("a 1 GiB tokenFile is refused").to_string();
        assert!(err.contains("tokenFile") && err.contains("more than"), "{err}");

        std::fs::write(&token, "").unwrap();
        let err = load(&path, host.path()).err().expect("an empty tokenFile is refused").to_string();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn the_token_is_read_again_on_routewardens_schedule_and_a_bad_read_keeps_the_last() {
        let (host, path, token) = token_file_kubeconfig();
        std::fs::write(&token, "first-token\n").unwrap();
        let l = load(&path, host.path()).unwrap();
        let b = l.bearer.unwrap();
        std::fs::write(&token, "second-token\n").unwrap();
        assert_eq!(b.authorization().to_str().unwrap(), "Bearer first-token", "not before TOKEN_REFRESH");
        let age = |b: &BearerToken| {
            let mut cur = b.current.lock().unwrap();
            cur.1 = std::time::Instant::now().checked_sub(TOKEN_REFRESH).unwrap();
        };
        age(&b);
        assert_eq!(b.authorization().to_str().unwrap(), "Bearer second-token", "rotated by the kubelet");
        std::fs::remove_file(&token).unwrap();
        #[allow(clippy::disallowed_methods)] // a test's own helper tool
        let made = std::process::Command::new("mkfifo").arg(&token).status().unwrap();
        assert!(made.success());
        age(&b);
        assert_eq!(b.authorization().to_str().unwrap(), "Bearer second-token", "a FIFO swapped in: the last kept");
        assert!(b.authorization().is_sensitive());
    }

    #[test]
    fn in_cluster_the_service_account_token_and_ca_are_read_bounded() {
        let sa = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().self_signed(&key).unwrap();
        std::fs::write(sa.path().join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(sa.path().join("token"), "eyJhbGciOi.projected.Token0123456789\n").unwrap();
        let l = in_cluster(sa.path(), "10.96.0.1", "443", Some("worker-7")).unwrap();
        assert_eq!(l.kubelet_node.as_deref(), Some("worker-7"), "NODE_NAME from the downward API");
        let c = l.kubeconfig.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(c.server.as_deref(), Some("https://10.96.0.1:443"));
        assert!(c.certificate_authority_data.is_some() && c.certificate_authority.is_none());
        let bearer = l.bearer.as_ref().unwrap();
        assert_eq!(bearer.authorization().to_str().unwrap(), "Bearer eyJhbGciOi.projected.Token0123456789");
        assert!(!l.redactor.clean("eyJhbGciOi.projected.Token0123456789").contains("projected"));
        let v6 = in_cluster(sa.path(), "fd00::1", "6443", None).unwrap();
        assert_eq!(
            v6.kubeconfig.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://[fd00::1]:6443")
        );
        assert!(in_cluster(sa.path(), "", "443", None).is_err());
        assert!(in_cluster(sa.path(), "10.96.0.1", "https", None).is_err());
        // The projected token as a FIFO: an error, at once.
        std::fs::remove_file(sa.path().join("token")).unwrap();
        #[allow(clippy::disallowed_methods)] // a test's own helper tool
        let made = std::process::Command::new("mkfifo").arg(sa.path().join("token")).status().unwrap();
        assert!(made.success());
        let err = in_cluster(sa.path(), "10.96.0.1", "443", None).err().unwrap().to_string();
        assert!(err.contains("tokenFile") && err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn only_an_answer_from_the_api_server_other_than_401_keeps_the_connection() {
        let status = |code| ClientError::Status { op: "patching", code, what: String::new() };
        for code in [403, 404, 409, 422, 429, 500, 503] {
            assert!(status(code).keeps_connection(), "{code}");
        }
        assert!(!status(401).keeps_connection(), "401: the credentials are read again on a new connection");
        assert!(!ClientError::Api { op: "x", what: "connection refused".into() }.keeps_connection());
        assert!(!ClientError::Deadline { op: "x", secs: 10 }.keeps_connection());
        assert!(!ClientError::Kubeconfig { path: "/k".into(), what: String::new() }.keeps_connection());
    }
}
