//! The web server's accept loop, for http and https alike: the limits a client meets before
//! any handler runs.
//!
//! - **Headers in time**: a client gets [`Listen::header_timeout`] to send each request's
//!   headers, then the connection is closed. A client that trickles headers a byte at a
//!   time (slowloris) holds a connection that long at most, not forever.
//! - **Connections at once**: at most [`Listen::max_connections`] are served; past that a new
//!   connection is closed as soon as it is accepted (counted in
//!   `musehub_http_connections_refused_total`), so sockets and memory stay bounded whatever
//!   the peers do.
//! - **TLS handshakes in time** ([`HANDSHAKE_TIMEOUT`]), for https.
//!
//! On shutdown the listener closes, open connections finish their requests (idle
//! keep-alive connections close) and the loop waits at most [`Listen::grace`] for them.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error that is not about a single connection (e.g. EMFILE).
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// How the server listens (see the module documentation).
#[derive(Debug, Clone)]
pub struct Listen {
    /// Serve https with this configuration; plain http when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// How long shutdown waits for open connections.
    pub grace: Duration,
}

/// Serves `app` on `listener` until `shutdown` fires. Returns an error only if the listener
/// is unusable from the start (its local address cannot be read).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    listen: Listen,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let scheme = if listen.tls.is_some() {
        "https"
    } else {
        "http"
    };
    info!(%local, scheme, max_connections = listen.max_connections, header_timeout = ?listen.header_timeout, "serving");
    let acceptor = listen.tls.clone().map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(listen.max_connections));
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
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        metrics.connections_refused.add(1);
                        debug!(%peer, "connection refused: max_connections reached");
                        drop(stream);
                        continue;
                    };
                    let conn = Connection {
                        peer,
                        app: app.clone(),
                        header_timeout: listen.header_timeout,
                        shutdown: shutdown.clone(),
                    };
                    let acceptor = acceptor.clone();
                    connections.spawn(async move {
                        conn.run(stream, acceptor).await;
                        drop(slot);
                    });
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
    let drained = tokio::time::timeout(listen.grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open = connections.len(),
            grace = ?listen.grace,
            "grace period over; closing remaining connections"
        );
        connections.shutdown().await;
    }
    info!(%local, scheme, "server stopped");
    Ok(())
}

/// One accepted connection.
struct Connection {
    peer: SocketAddr,
    app: axum::Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
}

impl Connection {
    /// TLS handshake when https, then HTTP/1.1 until done or shut down.
    async fn run(self, stream: tokio::net::TcpStream, tls: Option<TlsAcceptor>) {
        let peer = self.peer;
        // Answers go out in pieces (a fetch's header, its objects, its tail): without
        // TCP_NODELAY the last small piece waited for the client's delayed ACK, about 40 ms
        // on every small fetch (the bench's sketchbook showed it).
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let Some(acceptor) = tls else {
            return self.http(stream).await;
        };
        let tls = tokio::select! {
            () = self.shutdown.cancelled() => return,
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
        self.http(tls).await
    }

    async fn http<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let svc =
            tower::util::MapRequest::new(self.app, move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(svc));
        let mut conn = std::pin::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = self.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// Accept errors that concern one connection only and need no backoff.
fn is_per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}
