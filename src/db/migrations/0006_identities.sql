-- musehub schema 6: Ed25519 identities (src/hub/identity.rs). Never edit once released.
--
-- `user_keys` is this hub's own knowledge: which key a user signed in with. The `chain_*`
-- tables are only a cache of the on-chain key registry, which is the authority: deleting
-- them loses nothing, they are refilled from the chain.

CREATE TABLE user_keys (
    key        BLOB PRIMARY KEY,                -- 32-byte Ed25519 public key
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    bundle     BLOB,                            -- the signed key bundle block, when sent
    added_at   TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX user_keys_by_user ON user_keys (user_id);

-- A token minted by `musehub login` dies with the key it was minted for.
ALTER TABLE tokens ADD COLUMN key BLOB;

-- One row per handle the hub asked the chain about.
CREATE TABLE chain_handles (
    handle         TEXT PRIMARY KEY,
    handle_hash    BLOB NOT NULL UNIQUE,        -- keccak256(handle), the events' topic1
    registered     INTEGER NOT NULL,            -- 0: the chain has no record for it
    owner          TEXT,                        -- the owning EVM address, 0x…
    key            BLOB,                        -- current key; NULL when revoked or none
    bundle_cid     BLOB,
    nonce          INTEGER,
    rotation       TEXT CHECK (rotation IN ('normal', 'recovery', 'suspicious')),
    checked_block  INTEGER NOT NULL,
    checked_at     INTEGER NOT NULL             -- unix seconds of the last refresh
);

-- What the chain said about each key the hub has seen for a handle.
CREATE TABLE chain_keys (
    handle_hash  BLOB NOT NULL,
    key          BLOB NOT NULL,
    belongs      INTEGER NOT NULL,              -- handleOfKey(key) == handle_hash
    revoked_at   INTEGER NOT NULL,              -- 0: not revoked
    PRIMARY KEY (handle_hash, key)
) WITHOUT ROWID;

-- The last block whose registry events were followed.
CREATE TABLE chain_follow (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    block    INTEGER NOT NULL
);
