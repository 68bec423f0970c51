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
        server::notify_ready();
        server.join().await
    })
}
