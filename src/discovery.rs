//! LAN discovery with mDNS (`mdns-sd`): the hub announces `_musehub._tcp.local.` with a TXT
//! record (peer id, port, scheme, owner handle, version) and browses for others. Hubs of the
//! same owner pair by themselves (each follows the other's repos of that owner); other hubs
//! are listed on the peers page for a one-click follow.
//!
//! The embedded IPFS node has its own mDNS (libp2p's, for IPFS peers); this one is only for
//! hubs, on its own service type, so the two never answer for each other.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio_util::sync::CancellationToken;

use crate::db::peers::{self, Policy};
use crate::federation::LanHub;
use crate::hub::Hub;

/// The DNS-SD service type of musehub hubs.
pub const SERVICE: &str = "_musehub._tcp.local.";

/// What a hub announces.
#[derive(Debug, Clone)]
pub struct Announce {
    pub listen: SocketAddr,
    pub tls: bool,
    pub owner: Option<String>,
    /// Answer A/AAAA queries for `<lan_name>.local` (the appliance's `musehub.local`).
    pub lan_name: Option<String>,
}

/// Starts announcing and browsing until `stop`.
pub fn start(hub: Hub, announce: Announce, stop: CancellationToken) -> Result<()> {
    let daemon = ServiceDaemon::new().context("starting mDNS")?;
    let me = hub.node_key().public().to_peer_id().to_string();
    let scheme = if announce.tls { "https" } else { "http" };
    if announce.listen.ip().is_loopback() {
        tracing::info!(target: "musehub::discovery", "not announced on the LAN: the hub listens on loopback only");
    } else {
        let short = &me[me.len().saturating_sub(8)..];
        let instance = format!("musehub-{short}");
        let host = match &announce.lan_name {
            Some(name) => format!("{name}.local."),
            None => format!("musehub-{short}.local."),
        };
        let props: HashMap<String, String> = [
            ("peer_id", me.clone()),
            ("port", announce.listen.port().to_string()),
            ("scheme", scheme.to_owned()),
            ("owner", announce.owner.clone().unwrap_or_default()),
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let ip = announce.listen.ip();
        let info = if ip.is_unspecified() {
            ServiceInfo::new(SERVICE, &instance, &host, "", announce.listen.port(), props)?
                .enable_addr_auto()
        } else {
            ServiceInfo::new(
                SERVICE,
                &instance,
                &host,
                ip.to_string().as_str(),
                announce.listen.port(),
                props,
            )?
        };
        daemon.register(info).context("announcing on mDNS")?;
        tracing::info!(target: "musehub::discovery", service = SERVICE, %instance, %host, "announced on the LAN");
    }
    let events = daemon.browse(SERVICE).context("browsing mDNS")?;
    let rt = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("musehub-mdns".into())
        .spawn(move || {
            loop {
                if stop.is_cancelled() {
                    let _ = daemon.shutdown();
                    return;
                }
                match events.recv_timeout(Duration::from_millis(500)) {
                    Ok(ServiceEvent::ServiceResolved(info)) => {
                        let found = found(&info, &me);
                        if let Some(lan) = found {
                            rt.block_on(seen(&hub, lan, announce.owner.as_deref()));
                        }
                    }
                    Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                        tracing::debug!(target: "musehub::discovery", %fullname, "hub left the LAN");
                    }
                    Ok(_) => {}
                    Err(mdns_sd::RecvTimeoutError::Timeout) => {}
                    Err(mdns_sd::RecvTimeoutError::Disconnected) => return,
                }
            }
        })
        .context("starting the mDNS thread")?;
    Ok(())
}

/// A resolved announcement as a LAN hub, unless it is this hub or malformed.
fn found(info: &mdns_sd::ResolvedService, me: &str) -> Option<LanHub> {
    let peer_id = info.get_property_val_str("peer_id")?.to_owned();
    if peer_id == me || peer_id.parse::<libp2p::PeerId>().is_err() {
        return None;
    }
    let scheme = match info.get_property_val_str("scheme") {
        Some("https") => "https",
        _ => "http",
    };
    let port: u16 = info
        .get_property_val_str("port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(info.get_port());
    let mut v4: Vec<_> = info.get_addresses_v4().into_iter().collect();
    v4.sort();
    let ip = v4
        .iter()
        .find(|a| !a.is_loopback())
        .or(v4.first())
        .map(|a| IpAddr::V4(*a))?;
    Some(LanHub {
        url: format!("{scheme}://{ip}:{port}"),
        peer_id,
        owner: info
            .get_property_val_str("owner")
            .filter(|o| !o.is_empty())
            .map(str::to_owned),
        version: info
            .get_property_val_str("version")
            .unwrap_or("")
            .to_owned(),
    })
}

/// Records a LAN hub; pairs with it when it has the same owner.
async fn seen(hub: &Hub, lan: LanHub, owner: Option<&str>) {
    let new = hub
        .federation()
        .lan
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(lan.peer_id.clone(), lan.clone())
        .is_none_or(|old| old != lan);
    if new {
        tracing::info!(target: "musehub::discovery", url = %lan.url, peer = %lan.peer_id, owner = lan.owner.as_deref().unwrap_or(""), "hub found on the LAN");
    }
    let (Some(mine), Some(theirs)) = (owner, lan.owner.as_deref()) else {
        return;
    };
    if mine != theirs {
        return;
    }
    let (pid, url) = (lan.peer_id.clone(), lan.url.clone());
    let known = hub
        .db()
        .write(move |tx| {
            // A paired hub that moved to another address keeps its peer row.
            let rows = peers::by_peer_id(tx, &pid)?;
            if let Some(p) = rows.first() {
                if p.url != url && peers::by_url(tx, &url)?.is_none() {
                    peers::set_url(tx, p.id, &url)?;
                }
                return Ok::<_, crate::db::Error>(true);
            }
            Ok(peers::by_url(tx, &url)?.is_some())
        })
        .await;
    match known {
        Ok(true) => {}
        Ok(false) => {
            match crate::federation::add_peer(hub, &lan.url, Policy::Owner(mine.to_owned()), "lan")
                .await
            {
                Ok(_) => {
                    tracing::info!(target: "musehub::discovery", url = %lan.url, owner = mine, "paired with a hub of the same owner on the LAN")
                }
                Err(e) => {
                    tracing::warn!(target: "musehub::discovery", url = %lan.url, error = %e, "pairing failed")
                }
            }
        }
        Err(e) => tracing::warn!(target: "musehub::discovery", error = %e, "pairing failed"),
    }
}
