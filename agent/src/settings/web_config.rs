//! `metrics.web_config`: the Prometheus exporter-toolkit web configuration file (the format node_exporter reads:
//! `tls_server_config` and bcrypt `basic_auth_users`) read bounded, parsed and validated into
//! `outputs::web_config::WebSettings`, from which the listener's TLS and basic auth are built. Errors name the
//! file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::outputs::web_config::{self as web, BcryptHash, ClientCerts, TlsError, TlsSettings, WebConfig, WebSettings};

/// The largest web configuration file read.
const MAX_FILE: u64 = 1 << 20;

/// `client_auth_type`, as Go's `crypto/tls` names it. `RequestClientCert` and `RequireAnyClientCert` accept a
/// certificate without verifying it; routewarden refuses them rather than pretend to check something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// `min_version` / `max_version`, as exporter-toolkit names them. rustls speaks TLS 1.2 and 1.3 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

/// `tls_server_config`, the subset routewarden implements (an unknown key, such as `cipher_suites`, is an error,
/// as in exporter-toolkit).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: Option<ClientAuth>,
    #[serde(default)]
    min_version: Option<TlsVersion>,
    #[serde(default)]
    max_version: Option<TlsVersion>,
}

/// The web configuration file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    /// User name to bcrypt hash.
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

/// A web configuration that cannot be used, naming the file and what is wrong; the cause, when there is one, is
/// the error's source.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("reading {path}")]
    Read { path: PathBuf, source: crate::sys::host::FileError },
    #[error("{path}")]
    Yaml { path: PathBuf, source: Box<serde_saphyr::Error> },
    #[error("{path}: basic_auth_users.{user}: not a bcrypt hash ($2a$, $2b$ or $2y$)")]
    Hash { path: PathBuf, user: String, source: bcrypt::BcryptError },
    #[error("{path}: basic_auth_users: a user name must not be empty or contain ':'")]
    UserName { path: PathBuf },
    #[error("{path}: tls_server_config.client_auth_type {kind:?} accepts client certificates without verifying them; use RequireAndVerifyClientCert or VerifyClientCertIfGiven with client_ca_file")]
    UnverifiedClientAuth { path: PathBuf, kind: ClientAuth },
    #[error("{path}: tls_server_config.client_auth_type {kind:?} needs client_ca_file")]
    NoClientCa { path: PathBuf, kind: ClientAuth },
    #[error("{path}: tls_server_config.client_ca_file is set but client_auth_type is NoClientCert")]
    CaWithoutAuth { path: PathBuf },
    #[error("{path}: tls_server_config: {key} {version:?} is not supported (TLS12 and TLS13 are)")]
    Version { path: PathBuf, key: &'static str, version: TlsVersion },
    #[error("{path}: tls_server_config: min_version is above max_version")]
    VersionRange { path: PathBuf },
    /// A file the valid configuration names (certificate, key, client CA) cannot be read or used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Reads and validates `path`, then builds the listener's TLS and basic auth from it (reading the certificate,
/// key and client CA, so a missing or broken one is refused with the configuration).
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    Ok(WebConfig::build(&read(path)?)?)
}

/// Reads `path` (a regular file of at most [`MAX_FILE`] bytes) and validates it.
pub fn read(path: &Path) -> Result<WebSettings, WebConfigError> {
    let text = crate::sys::host::read_regular(path, MAX_FILE)
        .map_err(|source| WebConfigError::Read { path: path.to_path_buf(), source })?;
    parse(&text, path)
}

/// Parses and validates the text of the web configuration at `path` (which names it in errors and whose
/// directory relative paths are taken from); blank means no TLS and no users. Pure: no file is read.
pub fn parse(text: &str, path: &Path) -> Result<WebSettings, WebConfigError> {
    let file: WebConfigFile = if text.bytes().all(|b| b.is_ascii_whitespace()) {
        WebConfigFile::default()
    } else {
        serde_saphyr::from_str(text)
            .map_err(|source| WebConfigError::Yaml { path: path.into(), source: Box::new(source) })?
    };
    validate(file, path)
}

/// The file's parts checked; relative certificate paths are taken from the file's directory (as exporter-toolkit
/// does).
fn validate(file: WebConfigFile, path: &Path) -> Result<WebSettings, WebConfigError> {
    let p = || path.to_path_buf();
    let mut users = BTreeMap::new();
    for (user, hash) in file.basic_auth_users {
        if user.is_empty() || user.contains(':') {
            return Err(WebConfigError::UserName { path: p() });
        }
        let hash = BcryptHash::parse(&hash).map_err(|source| WebConfigError::Hash {
            path: p(),
            user: user.clone(),
            source,
        })?;
        users.insert(user, hash);
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tls = file.tls_server_config.map(|t| tls(t, dir, path)).transpose()?;
    Ok(WebSettings { path: p(), tls, users })
}

fn tls(t: TlsFile, dir: &Path, path: &Path) -> Result<TlsSettings, WebConfigError> {
    let p = || path.to_path_buf();
    let kind = match (t.client_auth_type, &t.client_ca_file) {
        (Some(k), _) => k,
        (None, Some(_)) => ClientAuth::RequireAndVerifyClientCert,
        (None, None) => ClientAuth::NoClientCert,
    };
    let ca = t.client_ca_file.as_ref().map(|f| dir.join(f));
    let client_certs = match (kind, ca) {
        (ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert, _) => {
            return Err(WebConfigError::UnverifiedClientAuth { path: p(), kind })
        }
        (ClientAuth::NoClientCert, Some(_)) => return Err(WebConfigError::CaWithoutAuth { path: p() }),
        (ClientAuth::NoClientCert, None) => ClientCerts::NotAsked,
        (ClientAuth::VerifyClientCertIfGiven, Some(ca_file)) => ClientCerts::VerifiedIfGiven { ca_file },
        (ClientAuth::RequireAndVerifyClientCert, Some(ca_file)) => ClientCerts::Required { ca_file },
        (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert, None) => {
            return Err(WebConfigError::NoClientCa { path: p(), kind })
        }
    };
    let version = |key, v: Option<TlsVersion>, default| match v.unwrap_or(default) {
        TlsVersion::TLS12 => Ok(web::TlsVersion::Tls12),
        TlsVersion::TLS13 => Ok(web::TlsVersion::Tls13),
        version => Err(WebConfigError::Version { path: p(), key, version }),
    };
    let min_version = version("min_version", t.min_version, TlsVersion::TLS12)?;
    let max_version = version("max_version", t.max_version, TlsVersion::TLS13)?;
    if min_version > max_version {
        return Err(WebConfigError::VersionRange { path: p() });
    }
    Ok(TlsSettings {
        cert_file: dir.join(&t.cert_file),
        key_file: dir.join(&t.key_file),
        client_certs,
        min_version,
        max_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::web_config::tests::{basic, pki, write};
    use axum::http::HeaderValue;

    fn load(dir: &Path, yaml: &str) -> Result<WebConfig, WebConfigError> {
        super::load(&write(dir, "web.yml", yaml))
    }

    /// The `web_config` fuzzing target's seed is a configuration the parser takes whole (so mutations start from
    /// every part of it).
    #[test]
    fn the_fuzzing_seed_is_a_valid_web_configuration() {
        let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/web_config/web.yml");
        let text = std::fs::read_to_string(seed).unwrap();
        let s = parse(&text, Path::new("/etc/routewarden/web.yml")).unwrap();
        let tls = s.tls.unwrap();
        assert_eq!(tls.client_certs, ClientCerts::Required { ca_file: "/etc/routewarden/scrapers-ca.pem".into() });
        assert_eq!(s.users.len(), 1);
    }

    #[test]
    fn the_file_is_validated_into_settings_with_paths_from_its_directory() {
        let dir = pki();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let yaml = format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: /abs/tls.key\n  client_ca_file: ca.pem\n  \
             client_auth_type: VerifyClientCertIfGiven\n  max_version: TLS12\nbasic_auth_users:\n  prometheus: {hash}\n"
        );
        let s = read(&write(dir.path(), "web.yml", &yaml)).unwrap();
        let tls = s.tls.unwrap();
        assert_eq!((tls.cert_file, tls.key_file), (dir.path().join("tls.crt"), PathBuf::from("/abs/tls.key")));
        assert_eq!(tls.client_certs, ClientCerts::VerifiedIfGiven { ca_file: dir.path().join("ca.pem") });
        assert_eq!((tls.min_version, tls.max_version), (web::TlsVersion::Tls12, web::TlsVersion::Tls12));
        assert_eq!(s.users.keys().collect::<Vec<_>>(), ["prometheus"]);
        let s = read(&write(dir.path(), "web.yml", "tls_server_config:\n  cert_file: c\n  key_file: k\n")).unwrap();
        let tls = s.tls.unwrap();
        assert_eq!(tls.client_certs, ClientCerts::NotAsked);
        assert_eq!((tls.min_version, tls.max_version), (web::TlsVersion::Tls12, web::TlsVersion::Tls13));
        let err = read(&write(
            dir.path(),
            "web.yml",
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  max_version: TLS12\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("web.yml") && err.contains("min_version is above max_version"), "{err}");
        let err = read(&write(dir.path(), "web.yml", "basic_auth_users:\n  \"a:b\": x\n"))
            .map_err(|e| crate::model::error_chain(&e))
            .unwrap_err();
        assert!(err.contains("web.yml: basic_auth_users: a user name"), "{err}");
    }

    #[test]
    fn tls_with_relative_paths_client_ca_and_users_loads() {
        let dir = pki();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let w = load(
            dir.path(),
            &format!(
                "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_ca_file: ca.pem\n\
                 basic_auth_users:\n  prometheus: {hash}\n"
            ),
        )
        .unwrap();
        assert!(w.tls.is_some());
        // exporter-toolkit's default when a client CA is given.
        assert_eq!(w.client_certs, ClientCerts::Required { ca_file: dir.path().join("ca.pem") });
        let auth = w.auth.unwrap();
        assert!(auth.check(Some(&basic("prometheus", "s3cret"))));
        assert!(auth.check(Some(&basic("prometheus", "s3cret"))), "the cached credential");
        assert!(!auth.check(Some(&basic("prometheus", "wrong"))));
        assert!(!auth.check(Some(&basic("nobody", "s3cret"))));
        assert!(!auth.check(None));
        assert!(!auth.check(Some(&HeaderValue::from_static("Bearer abc"))));
        assert!(!auth.check(Some(&HeaderValue::from_static("Basic !!!"))));
        // htpasswd writes $2y$ hashes (the same algorithm as $2b$).
        let y = hash.replacen("$2b$", "$2y$", 1);
        assert!(y.starts_with("$2y$"), "{y}");
        let w = load(dir.path(), &format!("basic_auth_users:\n  ops: \"{y}\"\n")).unwrap();
        assert!(w.auth.unwrap().check(Some(&basic("ops", "s3cret"))));
    }

    #[test]
    fn an_empty_file_means_plain_http_without_users() {
        let dir = tempfile::tempdir().unwrap();
        let w = load(dir.path(), "\n").unwrap();
        assert!(w.tls.is_none() && w.auth.is_none());
    }

    #[test]
    fn bad_files_name_the_key_and_the_file() {
        let dir = pki();
        let cases = [
            ("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  cipher_suites: [x]\n", "cipher_suites"),
            ("basic_auth_users:\n  prometheus: plaintext\n", "basic_auth_users.prometheus: not a bcrypt hash"),
            ("tls_server_config:\n  cert_file: missing.crt\n  key_file: tls.key\n", "missing.crt"),
            ("tls_server_config:\n  cert_file: tls.key\n  key_file: tls.key\n", "no PEM certificate"),
            ("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.crt\n", "tls.crt"),
            (
                "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: RequireAnyClientCert\n",
                "without verifying",
            ),
            (
                "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: RequireAndVerifyClientCert\n",
                "needs client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: NoClientCert\n  client_ca_file: ca.pem\n",
                "client_auth_type is NoClientCert",
            ),
            ("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  min_version: TLS10\n", "TLS10"),
            ("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: Sometimes\n", "Sometimes"),
            ("basic_auth_users: [a, b]\n", "basic_auth_users"),
        ];
        for (yaml, want) in cases {
            let err = load(dir.path(), yaml).map_err(|e| crate::model::error_chain(&e)).unwrap_err();
            assert!(err.contains("web.yml") || err.contains(dir.path().to_str().unwrap()), "{yaml}: {err}");
            assert!(err.contains(want), "{yaml}: want {want:?} in {err}");
        }
        let big = write(dir.path(), "big.yml", &"#".repeat(2 << 20));
        assert!(super::load(&big).map_err(|e| crate::model::error_chain(&e)).unwrap_err().contains("bytes allowed"));
    }

    #[test]
    fn a_fifo_named_as_certificate_key_or_the_file_itself_is_an_error_at_once() {
        let dir = pki();
        let fifo = dir.path().join("fifo.pem");
        #[allow(clippy::disallowed_methods)] // a test's own helper tool
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let start = std::time::Instant::now();
        let err = super::load(&fifo).map_err(|e| crate::model::error_chain(&e)).unwrap_err();
        assert!(err.contains("fifo.pem") && err.contains("not a regular file"), "{err}");
        for (cert, key) in [("fifo.pem", "tls.key"), ("tls.crt", "fifo.pem")] {
            let err = load(dir.path(), &format!("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"))
                .map_err(|e| crate::model::strict_chain(&e))
                .unwrap_err();
            assert!(err.contains("fifo.pem") && err.contains("not a regular file"), "{err}");
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "no hang on a FIFO");
    }
}
