//! Starting and stopping a hub: open the data directory, bind the listener, serve plain http
//! or https until shutdown, then let open requests finish.
//!
//! [`Server::bind`] is what `musehub serve` and the integration tests both call, so tests run
//! the real server, routes and storage on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::chain::Registry;
use crate::config::Config;
use crate::db::Db;
use crate::hub::Hub;
use crate::hub::identity::Identities;
use crate::ipfs::{Node, node};
use crate::storage::Store;
use crate::tls;
use crate::web::{self, AppState};

pub mod accept;

/// A running hub.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    hub: Hub,
    node: Option<Node>,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

/// Opens the database and block store of a data directory.
pub fn open_hub(config: &Config) -> Result<Hub> {
    std::fs::create_dir_all(&config.paths.data_dir).with_context(|| {
        format!(
            "creating data directory {}",
            config.paths.data_dir.display()
        )
    })?;
    let db = Db::open(&config.paths.db())
        .with_context(|| format!("opening {}", config.paths.db().display()))?;
    let store = Store::open(db.clone(), &config.paths.blocks())
        .with_context(|| format!("opening block store {}", config.paths.blocks().display()))?;
    let signer = node::load_or_create_key(&config.paths.node_key())?;
    let identity = match &config.chain {
        Some(c) => Identities::new(
            Some(Registry::connect(c.endpoint.clone()).context("connecting to the key registry")?),
            c.cache_ttl,
            c.allow_unanchored,
        ),
        None => Identities::local(),
    };
    let hub = Hub::new(crate::hub::Parts {
        db,
        store,
        limits: config.limits.clone(),
        default_visibility: config.default_visibility,
        signer,
        identity,
    });
    hub.backfill_dag()
        .context("building the DAG nodes of existing history")?;
    Ok(hub)
}

impl Server {
    /// Opens the hub's data and starts serving on `config.listen`.
    pub async fn bind(mut config: Config) -> Result<Server> {
        let hub = open_hub(&config)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (is another hub running there?)",
                    config.listen
                )
            })?;
        let addr = listener.local_addr()?;
        // A hub asked to listen on port 0 (tests) tells peers the port it got.
        if let Some(base) = config.public_url.strip_suffix(":0") {
            config.public_url = format!("{base}:{}", addr.port());
        }
        let cleared = hub
            .store()
            .clear_temp()
            .context("clearing the block store's temp files")?;
        if cleared > 0 {
            tracing::info!(target: "musehub::server", files = cleared, "removed temp files left by an interrupted write");
        }
        let tls_paths = config.paths.tls();
        let ca_pem = if tls_paths.exists() {
            Some(Arc::from(tls::ca_pem(&tls_paths)?))
        } else {
            None
        };
        let shutdown = CancellationToken::new();
        // Objects from before schema 9 are stored whole in the background; every read works
        // on either layout meanwhile (storage::whole).
        let store = hub.store().clone();
        let stop = shutdown.child_token();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.store_whole_objects(&stop) {
                tracing::warn!(target: "musehub::server", error = %e, "storing older objects whole stopped; the next start goes on");
            }
        });
        // The event log is read from here on: every change committed after this point, by
        // this process or another, reaches the subscribers started below.
        let cursor = crate::events::start_cursor(hub.db())
            .await
            .context("reading the event log")?;
        tokio::spawn(crate::events::run(
            hub.db().clone(),
            hub.events().clone(),
            cursor,
            shutdown.child_token(),
        ));
        tokio::spawn(
            hub.metrics()
                .clone()
                .count_events(hub.events().subscribe(), shutdown.child_token()),
        );
        let node = if config.ipfs.enabled {
            let key = hub.node_key().clone();
            let node = Node::start(
                hub.clone(),
                config.ipfs.clone(),
                key,
                node::NodeOptions {
                    data_dir: Some(config.paths.data_dir.clone()),
                    public_urls: vec![config.public_url.clone()],
                },
                shutdown.child_token(),
            )
            .await
            .context("starting the IPFS node")?;
            // The hub's IPNS record: published now, after changes, and every few hours.
            tokio::spawn(crate::ipfs::publish::run(node.clone()));
            Some(node)
        } else {
            None
        };
        if let Some(c) = &config.chain {
            tokio::spawn(
                hub.clone()
                    .follow_registry(c.follow_every, shutdown.child_token()),
            );
        }
        if config.federation.enabled {
            let fed = crate::federation::Federation::new(
                hub.clone(),
                crate::federation::Settings {
                    public_url: config.public_url.clone(),
                    poll: config.federation.poll,
                    tmp_dir: config.paths.data_dir.join("federation-tmp"),
                },
            )?;
            for url in &config.federation.join {
                let policy = match &config.federation.owner {
                    Some(o) => crate::db::peers::Policy::Owner(o.clone()),
                    None => crate::db::peers::Policy::All,
                };
                let known = {
                    let u = url.clone();
                    hub.db()
                        .read(move |c| crate::db::peers::by_url(c, &u))
                        .await?
                };
                if known.is_none() {
                    crate::federation::add_peer(&hub, url, policy, "bootstrap").await?;
                    tracing::info!(target: "musehub::federation", peer = %url, "joined at start (federation.join)");
                }
            }
            tokio::spawn(fed.run(shutdown.child_token()));
            if config.federation.mdns {
                let announce = crate::discovery::Announce {
                    listen: addr,
                    tls: config.tls,
                    owner: config.federation.owner.clone(),
                    lan_name: config.federation.lan_name.clone(),
                };
                if let Err(e) =
                    crate::discovery::start(hub.clone(), announce, shutdown.child_token())
                {
                    tracing::warn!(target: "musehub::discovery", error = %format!("{e:#}"), "LAN discovery is off");
                }
            }
        }
        let state = AppState {
            hub: hub.clone(),
            ca_pem,
            started: Instant::now(),
            public_url: Arc::from(config.public_url.as_str()),
            node: node.clone(),
            data_dir: Some(Arc::from(config.paths.data_dir.as_path())),
        };
        let app = web::router(state);
        let listen = accept::Listen {
            tls: if config.tls {
                Some(tls::server_config(&tls_paths)?)
            } else {
                None
            },
            header_timeout: config.http.header_timeout,
            max_connections: config.http.max_connections,
            grace: config.shutdown_grace,
        };
        let task = tokio::spawn(accept::serve(
            listener,
            app,
            listen,
            hub.metrics().clone(),
            shutdown.clone(),
        ));
        tracing::info!(target: "musehub::server", %addr, tls = config.tls, data = %config.paths.data_dir.display(), "serving");
        Ok(Server {
            addr,
            tls: config.tls,
            hub,
            node,
            shutdown,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or https).
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The embedded IPFS node, when `[ipfs] enabled`.
    pub fn node(&self) -> Option<&Node> {
        self.node.as_ref()
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting connections and waits for open requests to finish.
    pub async fn shutdown(self) -> Result<()> {
        self.shutdown.cancel();
        self.join().await
    }

    /// Waits until the server stops (after its shutdown token is cancelled).
    pub async fn join(self) -> Result<()> {
        self.task
            .await
            .context("server task panicked")?
            .context("server failed")?;
        Ok(())
    }
}

/// Cancels `token` on SIGINT or SIGTERM (what systemd sends on stop).
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        tracing::info!(target: "musehub::server", "shutting down: letting open requests finish");
        token.cancel();
    });
}

/// Tells systemd (`Type=notify`) that the hub is ready, when run under it.
pub fn notify_ready() {
    if sd_notify(b"READY=1") {
        tracing::info!(target: "musehub::server", "told systemd the hub is ready (store, web server and IPFS up)");
    }
}

/// Sends one `sd_notify` datagram to `$NOTIFY_SOCKET`; nothing when not run by systemd.
/// Whether it was sent.
fn sd_notify(message: &[u8]) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return false,
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(message, &a))
    } else {
        sock.send_to(message, std::path::Path::new(&path))
    };
    if let Err(e) = &sent {
        tracing::warn!(target: "musehub::server", error = %e, "could not notify systemd");
    }
    sent.is_ok()
}

/// The watchdog interval systemd asks for (`WatchdogSec=` sets `$WATCHDOG_USEC`, and
/// `$WATCHDOG_PID` names the process meant), if any.
fn watchdog_interval() -> Option<std::time::Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| std::time::Duration::from_micros(usec))
}

/// Pings systemd's watchdog at half its interval for as long as the hub answers: each ping
/// follows a database read that finished in time, so a hub whose runtime or database is
/// stuck stops pinging and systemd restarts it.
pub fn start_watchdog(hub: Hub, stop: CancellationToken) {
    let Some(interval) = watchdog_interval() else {
        return;
    };
    let every = interval / 2;
    tracing::info!(target: "musehub::server", interval = ?interval, "systemd watchdog on");
    tokio::spawn(async move {
        loop {
            let healthy =
                tokio::time::timeout(every, hub.db().read(|_| Ok::<(), crate::db::Error>(())))
                    .await;
            match healthy {
                Ok(Ok(())) => {
                    sd_notify(b"WATCHDOG=1");
                }
                Ok(Err(e)) => {
                    tracing::warn!(target: "musehub::server", error = %e, "watchdog: database read failed; not pinging")
                }
                Err(_) => {
                    tracing::warn!(target: "musehub::server", "watchdog: database read too slow; not pinging")
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    });
}
