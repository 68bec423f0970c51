-- musehub schema 1. Never edit once released: add a new numbered file instead.
--
-- Content is global and stored once (blocks, objects, snapshots, commits); which repo may see
-- it is recorded per repo (repo_objects, repo_snapshots, repo_commits). Ids are the 32 raw
-- bytes of their SHA-256, never hex text. Timestamps that came from a client stay verbatim.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE tokens (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash          BLOB NOT NULL UNIQUE,      -- SHA-256 of the secret; the secret is never stored
    label         TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    expires_at    INTEGER,                   -- unix seconds; NULL = never
    revoked_at    TEXT
);

CREATE TABLE repos (
    id              INTEGER PRIMARY KEY,
    uuid            TEXT NOT NULL UNIQUE,    -- the repo_id the CLI writes into repo.json
    owner_id        INTEGER NOT NULL REFERENCES users(id),
    slug            TEXT NOT NULL,
    visibility      TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    domain          TEXT NOT NULL DEFAULT 'midi',
    default_branch  TEXT NOT NULL DEFAULT 'main',
    description     TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    pushed_at       TEXT,
    UNIQUE (owner_id, slug)
);

-- Every block the hub holds. Small blocks live inline in `data`; larger ones are files in the
-- block directory and `data` is NULL. A row is written only after its file is durable.
-- Tables whose rows carry large BLOBs keep a rowid and a UNIQUE key: in a WITHOUT ROWID
-- table every key comparison on the way down the b-tree reads the whole row, overflow pages
-- included, which made lookups 7-80x slower (measured by `musehub bench`).
CREATE TABLE blocks (
    id      INTEGER PRIMARY KEY,
    digest  BLOB NOT NULL UNIQUE,            -- SHA-256 of the block bytes
    size    INTEGER NOT NULL,
    data    BLOB
);

-- A Muse object: its blocks are the single raw block `object_id` (size <= one chunk) or the
-- UnixFS tree under `root` (the dag-pb root CID bytes).
CREATE TABLE objects (
    object_id   BLOB PRIMARY KEY,
    size        INTEGER NOT NULL,
    root        BLOB
) WITHOUT ROWID;

CREATE TABLE repo_objects (
    repo_id    INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    object_id  BLOB NOT NULL REFERENCES objects(object_id),
    PRIMARY KEY (repo_id, object_id)
) WITHOUT ROWID;

-- Snapshot and commit records keep the msgpack map exactly as the CLI sent it (`raw`).
CREATE TABLE snapshots (
    id           INTEGER PRIMARY KEY,
    snapshot_id  BLOB NOT NULL UNIQUE,
    entries      INTEGER NOT NULL,
    raw          BLOB NOT NULL
);

CREATE TABLE repo_snapshots (
    repo_id      INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    snapshot_id  BLOB NOT NULL REFERENCES snapshots(snapshot_id),
    PRIMARY KEY (repo_id, snapshot_id)
) WITHOUT ROWID;

CREATE TABLE commits (
    id            INTEGER PRIMARY KEY,
    commit_id     BLOB NOT NULL UNIQUE,
    snapshot_id   BLOB NOT NULL,
    parent1       BLOB,
    parent2       BLOB,
    message       TEXT NOT NULL,
    committed_at  TEXT NOT NULL,             -- verbatim, it is hashed into commit_id
    author        TEXT NOT NULL,
    raw           BLOB NOT NULL
);

CREATE TABLE repo_commits (
    repo_id    INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    commit_id  BLOB NOT NULL REFERENCES commits(commit_id),
    seq        INTEGER NOT NULL,             -- arrival order within the repo
    PRIMARY KEY (repo_id, commit_id)
) WITHOUT ROWID;

-- Commits accepted while one of their parents was never seen by this hub (a push from a
-- second remote): shallow history, reported by `doctor`.
CREATE TABLE shallow (
    repo_id         INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    commit_id       BLOB NOT NULL,
    missing_parent  BLOB NOT NULL,
    PRIMARY KEY (repo_id, commit_id, missing_parent)
) WITHOUT ROWID;

CREATE TABLE branches (
    repo_id     INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    head        BLOB NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (repo_id, name)
) WITHOUT ROWID;

CREATE TABLE releases (
    id          INTEGER PRIMARY KEY,
    uuid        TEXT NOT NULL UNIQUE,
    repo_id     INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    tag         TEXT NOT NULL,
    channel     TEXT NOT NULL,
    is_draft    INTEGER NOT NULL,
    commit_id   TEXT NOT NULL,
    record      TEXT NOT NULL,               -- the ReleaseDict as JSON, release_id = uuid
    created_at  TEXT NOT NULL,
    UNIQUE (repo_id, tag)
);

CREATE TABLE wire_tags (
    repo_id     INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    tag         TEXT NOT NULL,
    tag_id      TEXT NOT NULL,
    commit_id   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (repo_id, tag)
) WITHOUT ROWID;

CREATE INDEX repo_commits_by_seq ON repo_commits (repo_id, seq);
