//! The network metrics listener over TLS: the handshake is a step of `http::serve_with`, the one accept loop every
//! listener shares, so it runs in each connection's task within the header timeout (a silent client never holds up
//! the others) and this listener has the same `/healthz` reserve and shedding at its limit.

use std::sync::Arc;

use axum::Router;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::outputs::http::{self, Handshake, Limits};

/// The TLS handshake of one connection.
#[derive(Clone)]
pub struct Tls(TlsAcceptor);

impl Handshake<tokio::net::TcpStream> for Tls {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    async fn handshake(&self, io: tokio::net::TcpStream) -> std::io::Result<Self::Io> {
        self.0.accept(io).await
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` turns true, with `http::serve`'s limits, reserve and
/// shedding. A failed handshake (no or a wrong client certificate when one is required) is logged at debug level.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    http::serve_with(listener, Tls(TlsAcceptor::from(config)), router, limits, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::state::Shared;
    use std::time::{Duration, Instant};

    /// A self-signed certificate for 127.0.0.1 and a server configuration with it.
    fn tls() -> (Arc<rustls::ServerConfig>, rustls_pki_types::CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().self_signed(&key).unwrap();
        let der = cert.der().clone();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .unwrap();
        (Arc::new(config), der)
    }

    /// GET `path` over TLS, trusting `ca`; the whole answer.
    async fn https_get(
        addr: std::net::SocketAddr,
        ca: &rustls_pki_types::CertificateDer<'static>,
        path: &str,
    ) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_idle_connections_does_not_starve_healthz_over_tls() {
        // Before: this listener had its own accept loop that waited for a free slot, without the reserve, so
        // connections that never start their handshake held every slot for the header timeout (60 s here).
        let shared = Shared::new(60);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (config, ca) = tls();
        let (_stop, rx) = watch::channel(false);
        let limits = Limits { max_connections: 4, request_timeout: Duration::from_secs(60) };
        let router = http::metrics_router(Arc::clone(&shared), None);
        tokio::spawn(serve_tls(listener, config, router, limits, rx));
        let mut idle = Vec::new();
        for _ in 0..8 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let health = tokio::time::timeout(Duration::from_secs(30), https_get(addr, &ca, "/healthz"))
            .await
            .expect("/healthz starved by idle connections on the metrics listener");
        assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{health:?}");
        // Well within the 60 s header timeout the idle connections would have held their slots for.
        assert!(started.elapsed() < Duration::from_secs(30));
        drop(idle);
    }
}
