-- musehub schema 7: federation (src/federation.rs). Never edit once released.
--
-- `peers` are hubs this hub replicates from, each with a follow policy. A replica repo is a
-- normal repo with `origin_url` set: read-only here, pushes go to the origin. `subscribers`
-- are hubs that replicate from this one and get a signed notice after every push.

CREATE TABLE peers (
    id            INTEGER PRIMARY KEY,
    url           TEXT NOT NULL UNIQUE,      -- base URL, no trailing slash
    peer_id       TEXT,                      -- its Ed25519 node key (12D3Koo…), learnt at first sync
    policy        TEXT NOT NULL CHECK (policy IN ('repo', 'owner', 'all')),
    scope         TEXT NOT NULL DEFAULT '',  -- owner/slug for 'repo', the owner for 'owner'
    source        TEXT NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'lan', 'bootstrap')),
    status        TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'active', 'lagging', 'offline')),
    last_sync     INTEGER,                   -- unix seconds of the last complete sync
    last_attempt  INTEGER,
    lag_commits   INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    added_at      TEXT NOT NULL
);

ALTER TABLE repos ADD COLUMN origin_url TEXT;   -- set on replicas: the hub that owns the repo

CREATE TABLE subscribers (
    id        INTEGER PRIMARY KEY,
    url       TEXT NOT NULL,
    peer_id   TEXT NOT NULL,
    policy    TEXT NOT NULL CHECK (policy IN ('repo', 'owner', 'all')),
    scope     TEXT NOT NULL DEFAULT '',
    added_at  TEXT NOT NULL,
    UNIQUE (url, policy, scope)
);
