-- musehub schema 5: the history as an IPLD DAG (src/dag.rs, docs/dag.md). Never edit once
-- released.
--
-- Every commit and snapshot gets a DAG-CBOR node whose CID is kept beside its Muse id. The
-- nodes are blocks like any other (inline rows); `dag_blocks` says which commit or snapshot a
-- node block belongs to, so its visibility follows the repos that hold that commit or
-- snapshot. `ref_states` is each repo's signed chain of branch moves.

ALTER TABLE commits ADD COLUMN cid BLOB;     -- CID bytes of the commit node
ALTER TABLE snapshots ADD COLUMN cid BLOB;   -- CID bytes of the snapshot root node

CREATE INDEX commits_by_cid ON commits (cid);

CREATE TABLE dag_blocks (
    digest   BLOB NOT NULL,                  -- SHA-256 of the node block (blocks.digest)
    kind     TEXT NOT NULL CHECK (kind IN ('commit', 'snapshot')),
    muse_id  BLOB NOT NULL,                  -- the commit_id or snapshot_id it belongs to
    PRIMARY KEY (digest, kind, muse_id)
) WITHOUT ROWID;

-- "Which repos hold this commit / snapshot?" for every node block served.
CREATE INDEX repo_commits_by_commit ON repo_commits (commit_id);
CREATE INDEX repo_snapshots_by_snapshot ON repo_snapshots (snapshot_id);

CREATE TABLE ref_states (
    repo_id     INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,            -- 1, 2, … per repo
    branch      TEXT NOT NULL,
    commit_id   BLOB NOT NULL,
    cid         BLOB NOT NULL,               -- CID bytes of the signed ref-state node
    digest      BLOB NOT NULL,               -- its block digest
    created_at  TEXT NOT NULL,
    PRIMARY KEY (repo_id, seq)
) WITHOUT ROWID;

CREATE INDEX ref_states_by_digest ON ref_states (digest);

-- Nodes for commits and snapshots stored before this schema, and a first ref-state for
-- every existing branch: built once at start (src/hub/dag.rs).
INSERT INTO pending_backfills (name) VALUES ('commit_dag');
