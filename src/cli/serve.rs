//! `musehub serve`: run the hub until SIGINT or SIGTERM.

use anyhow::Result;

use crate::config::Config;
use crate::server::{self, Server};

pub(super) fn run(config: Config) -> Result<()> {
    let rt = super::runtime()?;
    rt.block_on(async move {
        let tls = config.tls;
        let server = Server::bind(config).await?;
        eprintln!("musehub {} listening on {}", env!("CARGO_PKG_VERSION"), server.url());
        if !tls {
            eprintln!("(plain http: the Muse CLI sends tokens only to 127.0.0.1/localhost; use --tls on the LAN)");
        }
        server::cancel_on_signals(server.shutdown_token());
        // Ready means the store is open, the HTTP listener bound and the IPFS swarm
        // listening: systemd starts what depends on the hub only then.
        if let Some(node) = server.node()
            && let Err(e) = node.wait_listening(std::time::Duration::from_secs(10)).await
        {
            tracing::warn!(target: "musehub::server", error = %format!("{e:#}"), "the IPFS node is not listening yet");
        }
        server::start_watchdog(server.hub().clone(), server.shutdown_token());
        server::notify_ready();
        server.join().await
    })
}
