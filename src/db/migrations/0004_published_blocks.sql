-- Blocks the hub itself publishes to IPFS that belong to no repo: the DAG-CBOR index of its
-- public repos that its IPNS name points to. Such blocks are public by construction.
CREATE TABLE published_blocks (
    digest      BLOB PRIMARY KEY,        -- SHA-256 of the block (a row in `blocks`)
    kind        TEXT NOT NULL,           -- 'index'
    created_at  TEXT NOT NULL
) WITHOUT ROWID;
