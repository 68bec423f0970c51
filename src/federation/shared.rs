//! What the web layer, LAN discovery and the replication task share about federation:
//! notices to send, peers to sync now, hubs seen on the LAN, notice counters. Plain state
//! with no knowledge of [`crate::hub`], so the hub can carry it without the two modules
//! depending on each other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// A hub seen on the LAN by mDNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanHub {
    pub url: String,
    pub peer_id: String,
    pub owner: Option<String>,
    pub version: String,
}

/// What the web layer and the sync task share: work to do, and hubs seen on the LAN.
#[derive(Debug, Default)]
pub struct Shared {
    /// Repos pushed here whose subscribers need a notice.
    pushed: Mutex<BTreeSet<i64>>,
    /// Peers to sync now (a notice came, or one was added).
    due: Mutex<BTreeSet<i64>>,
    pub(super) wake: tokio::sync::Notify,
    /// Peers this process has subscribed at (once each: the origin keeps subscriptions).
    pub(super) subscribed: Mutex<BTreeSet<i64>>,
    /// Hubs found on the LAN, by peer id.
    pub lan: Mutex<BTreeMap<String, LanHub>>,
    /// Notices sent and received, for `/metrics`.
    pub notices_sent: std::sync::atomic::AtomicU64,
    pub notices_received: std::sync::atomic::AtomicU64,
    pub notices_refused: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// After a branch moved here: notify the repo's subscribers.
    pub fn pushed(&self, repo_id: i64) {
        self.add(&self.pushed, repo_id);
    }

    /// Sync this peer now.
    pub fn due(&self, peer: i64) {
        self.add(&self.due, peer);
    }

    fn add(&self, set: &Mutex<BTreeSet<i64>>, id: i64) {
        set.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        self.wake.notify_one();
    }

    /// The hubs seen on the LAN.
    pub fn lan_hubs(&self) -> Vec<LanHub> {
        self.lan
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(super) fn take_pushed(&self) -> BTreeSet<i64> {
        std::mem::take(&mut *self.pushed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(super) fn take_due(&self) -> BTreeSet<i64> {
        std::mem::take(&mut *self.due.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
