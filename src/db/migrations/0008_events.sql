-- musehub schema 8: hub events (src/db/events.rs). Never edit once released.
--
-- Every change to what a repo holds or shows (objects stored, a branch moved, a release made
-- or removed, the visibility changed) adds a row in the same transaction as the change, so a
-- row exists exactly when the change is durable, whichever process made it: the web server,
-- federation, or a CLI command such as `car import` running beside the hub. The running hub
-- reads new rows in order and hands them to its subscribers (IPFS announcements, the IPNS
-- index, federation notices, metrics). Old rows are pruned: only the tail is ever read.

CREATE TABLE events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id  INTEGER NOT NULL,   -- no foreign key: an event may outlive its repo
    kind     TEXT NOT NULL,
    detail   TEXT NOT NULL DEFAULT '',
    at       INTEGER NOT NULL    -- unix seconds
);
