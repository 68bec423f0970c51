//! The https side: the rustls server configuration from the hub's files and the accept loop
//! that serves an axum router over it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Error, TlsPaths, provider, read_certs, read_key};

/// How long a client may take to complete the TLS handshake.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
pub(super) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after an accept error that is not about a single connection (e.g. EMFILE).
pub(super) const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Loads `server.crt` (with the CA certificate appended to the chain) and
/// `server.key` into a rustls server configuration using the `ring` provider,
/// safe default protocol versions (TLS 1.2 and 1.3) and ALPN `http/1.1`.
///
/// Errors name the offending file and tell the user to run `musehub init`.
pub fn server_config(paths: &TlsPaths) -> Result<Arc<rustls::ServerConfig>, Error> {
    let mut chain = read_certs(&paths.cert)?;
    for ca in read_certs(&paths.ca_cert)? {
        if !chain.contains(&ca) {
            chain.push(ca);
        }
    }
    let key = read_key(&paths.key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::InvalidFile {
            path: paths.key.clone(),
            reason: format!("rejected together with {}: {e}", paths.cert.display()),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` over TLS on `listener` until `shutdown` is cancelled.
///
/// Each accepted connection gets its own task: a TLS handshake bounded by 10 s
/// (a failed or slow handshake is logged at debug level and dropped), then
/// HTTP/1.1 via hyper. Handlers can extract the peer address as
/// [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo). Errors accepting
/// connections are logged and never end the loop.
///
/// When `shutdown` fires the listener is closed, every open connection is asked
/// to finish gracefully (requests in flight complete, idle keep-alive
/// connections close), and this waits at most `grace` for them before dropping
/// the rest.
///
/// Returns an error only if the listener is unusable from the start (its local
/// address cannot be read).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    info!(%local, "serving https");
    let acceptor = TlsAcceptor::from(config);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined {
                    warn!(error = %e, "connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(handle_connection(
                        acceptor.clone(),
                        stream,
                        peer,
                        app.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(e) if is_per_connection_error(&e) => {
                    debug!(error = %e, "accept failed for one connection");
                }
                Err(e) => {
                    warn!(error = %e, "accept failed; retrying shortly");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                    }
                }
            },
        }
    }
    drop(listener);

    if !connections.is_empty() {
        debug!(
            open = connections.len(),
            "waiting for open connections to finish"
        );
    }
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open = connections.len(),
            grace = ?grace,
            "grace period over; closing remaining connections"
        );
        connections.shutdown().await;
    }
    info!(%local, "https server stopped");
    Ok(())
}

/// One connection: handshake, then HTTP/1.1 until done or shut down.
pub(super) async fn handle_connection(
    acceptor: TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    shutdown: CancellationToken,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let tls = tokio::select! {
        () = shutdown.cancelled() => return,
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => {
            match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
    };

    let svc = tower::util::MapRequest::new(app, move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc));
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Accept errors that concern one connection only and need no backoff.
pub(super) fn is_per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}
