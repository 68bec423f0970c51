//! Hub events: what changed in a repo, for the parts of a running hub that act on it.
//!
//! Every path that changes content (a wire push, `car import`, federation replication, a
//! release, the UI's visibility form) writes a row to the event log in the same transaction
//! as the change ([`crate::db::events`]); the database layer's mutating functions do it
//! themselves, so no path can forget. One task per running hub ([`run`]) reads new rows, in
//! order, and broadcasts them as typed [`Event`]s. It reads right after each of this
//! process's commits and once a second otherwise, which is how changes made by another
//! process (`musehub car import` beside `musehub serve`) arrive within a second.
//!
//! Subscribers: the IPFS node announces new public content to the DHT, the IPNS publisher
//! republishes the hub's index, federation notifies the hubs that follow a repo, and the
//! metrics count stored objects.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::db::Db;
use crate::db::events::{self as log, Kind, Row};

/// Events held for a subscriber that is behind; one further behind gets [`Event::Missed`].
const CAPACITY: usize = 1024;

/// How often the log is read when this process committed nothing (changes by other
/// processes).
const POLL: Duration = Duration::from_secs(1);

/// Rows read at a time.
const BATCH: usize = 500;

/// One change, after it was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Objects were added to a repo.
    ObjectsStored {
        repo_id: i64,
        count: u64,
    },
    /// A branch was set or moved (push, import, replication).
    BranchMoved {
        repo_id: i64,
        branch: String,
    },
    /// A branch was removed (a replica following its origin).
    BranchDeleted {
        repo_id: i64,
        branch: String,
    },
    ReleaseCreated {
        repo_id: i64,
        tag: String,
    },
    ReleaseDeleted {
        repo_id: i64,
        tag: String,
    },
    /// The repo became public (`true`) or private.
    VisibilityChanged {
        repo_id: i64,
        public: bool,
    },
    /// This subscriber fell behind and events were dropped: treat everything as changed.
    Missed,
}

impl Event {
    fn from_row(row: Row) -> Event {
        let Row {
            repo_id,
            kind,
            detail,
            ..
        } = row;
        match kind {
            Kind::ObjectsStored => Event::ObjectsStored {
                repo_id,
                count: detail.parse().unwrap_or(0),
            },
            Kind::BranchMoved => Event::BranchMoved {
                repo_id,
                branch: detail,
            },
            Kind::BranchDeleted => Event::BranchDeleted {
                repo_id,
                branch: detail,
            },
            Kind::ReleaseCreated => Event::ReleaseCreated {
                repo_id,
                tag: detail,
            },
            Kind::ReleaseDeleted => Event::ReleaseDeleted {
                repo_id,
                tag: detail,
            },
            Kind::VisibilityChanged => Event::VisibilityChanged {
                repo_id,
                public: detail == "public",
            },
        }
    }

    /// Whether what the hub lists publicly may have changed: its public repos, their heads
    /// or releases (the IPNS index), or the blocks it has to announce.
    pub fn changes_listing(&self) -> bool {
        !matches!(self, Event::ObjectsStored { .. })
    }
}

/// The hub's event broadcast. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Events {
    /// Events from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
        }
    }

    fn send(&self, event: Event) {
        // No subscriber is not an error: a hub with IPFS and federation off has none.
        let _ = self.tx.send(event);
    }
}

/// One subscriber's stream of events.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Event>,
}

impl Subscription {
    /// The next event; [`Event::Missed`] after falling behind; `None` once the hub stopped.
    pub async fn next(&mut self) -> Option<Event> {
        match self.rx.recv().await {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Event::Missed),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// [`Subscription::next`], or `None` as soon as `stop` is cancelled.
    pub async fn next_until(&mut self, stop: &CancellationToken) -> Option<Event> {
        tokio::select! {
            _ = stop.cancelled() => None,
            e = self.next() => e,
        }
    }
}

/// Where the log was when the hub started: events after it are broadcast by [`run`].
pub async fn start_cursor(db: &Db) -> crate::db::Result<i64> {
    db.read(log::last_seq).await
}

/// Reads the event log from `cursor` on and broadcasts each new row, until `stop`.
pub async fn run(db: Db, events: Events, mut cursor: i64, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = db.committed() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        loop {
            let from = cursor;
            let page = match db.read(move |c| log::after(c, from, BATCH)).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(target: "musehub::events", error = %e, "reading the event log failed");
                    break;
                }
            };
            for row in page.rows {
                events.send(Event::from_row(row));
            }
            cursor = page.last;
            if page.read < BATCH {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::repos;

    #[tokio::test]
    async fn changes_by_this_process_and_by_another_reach_subscribers_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("musehub.db");
        let db = Db::open(&path).unwrap();
        let repo = db
            .write(|tx| {
                let owner = crate::db::users::create(tx, "alice")?;
                repos::create(tx, owner.id, "song", repos::Visibility::Public, "u-1")
            })
            .await
            .unwrap();
        let events = Events::default();
        let mut sub = events.subscribe();
        let stop = CancellationToken::new();
        let cursor = start_cursor(&db).await.unwrap();
        tokio::spawn(run(db.clone(), events.clone(), cursor, stop.clone()));

        let head = crate::cids::Id([7; 32]);
        db.write(move |tx| repos::set_branch(tx, repo, "main", &head))
            .await
            .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), sub.next()).await;
        assert_eq!(
            next.unwrap(),
            Some(Event::BranchMoved {
                repo_id: repo,
                branch: "main".into()
            })
        );

        // Another process (its own connection, nothing in this process is told).
        let other = Db::open(&path).unwrap();
        other
            .write_blocking(|tx| repos::set_visibility(tx, repo, repos::Visibility::Private))
            .unwrap();
        // Setting what is already set is no change and no event.
        other
            .write_blocking(|tx| repos::set_visibility(tx, repo, repos::Visibility::Private))
            .unwrap();
        other
            .write_blocking(|tx| repos::delete_branch(tx, repo, "main"))
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..2 {
            let e = tokio::time::timeout(Duration::from_secs(5), sub.next()).await;
            got.push(e.unwrap().unwrap());
        }
        assert_eq!(
            got,
            [
                Event::VisibilityChanged {
                    repo_id: repo,
                    public: false
                },
                Event::BranchDeleted {
                    repo_id: repo,
                    branch: "main".into()
                }
            ]
        );
        stop.cancel();
    }
}
