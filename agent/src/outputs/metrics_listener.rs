//! The network metrics listener's TLS accept loop: the handshake runs in each connection's task within the header
//! timeout (a silent client never holds up the others), then the connection is served like `http::serve`'s.

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::outputs::http::Limits;

/// Serves `router` over TLS on `listener` until `shutdown` turns true, at most `max_connections` at once. A
/// failed handshake (no or a wrong client certificate when one is required) is logged at debug level.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(io) => io,
                Err(e) => {
                    log::warn!("accepting a metrics connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let acceptor = acceptor.clone();
        let svc = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(limits.request_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    log::debug!("TLS handshake with {peer}: {e}");
                    return;
                }
                Err(_) => {
                    log::debug!("TLS handshake with {peer}: timed out");
                    return;
                }
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.request_timeout)
                .serve_connection(TokioIo::new(tls), svc);
            let _ = tokio::time::timeout(limits.request_timeout.saturating_mul(6), conn).await;
            drop(permit);
        });
    }
}
