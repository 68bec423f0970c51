-- musehub schema 3: which blocks make up which object, so a block asked for by CID (IPFS
-- gateway, Bitswap) can be traced back to the repos that hold it. Never edit once released.
--
-- A single-block object needs no row: its block digest is its object_id. A larger object is
-- a UnixFS tree; every block of it (root, inner nodes and leaves) gets a row here, written in
-- the transaction that records the object. The same block can belong to several objects.

CREATE TABLE object_blocks (
    digest     BLOB NOT NULL,                -- SHA-256 of the block bytes (blocks.digest)
    object_id  BLOB NOT NULL,                -- the object whose tree holds the block
    PRIMARY KEY (digest, object_id)
) WITHOUT ROWID;

-- "Which repos hold this object?" is asked for every block served; the primary key of
-- repo_objects starts with repo_id, so it needs an index by object.
CREATE INDEX repo_objects_by_object ON repo_objects (object_id);

-- Work the hub does once at start, outside SQL (it reads blocks): `object_blocks` for the
-- trees recorded before this schema. The row is deleted when the work is done.
CREATE TABLE pending_backfills (
    name  TEXT PRIMARY KEY
) WITHOUT ROWID;

INSERT INTO pending_backfills (name) VALUES ('object_blocks');
