-- musehub schema 2: signing in to the web UI. Never edit once released.
--
-- No passwords: the operator runs `musehub login-link NAME` and hands over a one-time,
-- short-lived link; opening it (and pressing the button) starts a browser session. Like
-- tokens, link and session secrets are stored only as their SHA-256, so a copied database
-- cannot sign anyone in.

CREATE TABLE login_links (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash        BLOB NOT NULL UNIQUE,        -- SHA-256 of the link's token
    created_at  TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,            -- unix seconds
    used_at     TEXT                         -- set once, when the link is consumed
);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash         BLOB NOT NULL UNIQUE,       -- SHA-256 of the cookie value
    csrf_secret  BLOB NOT NULL,              -- forms carry hex(SHA-256(csrf_secret))
    created_at   TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,           -- unix seconds
    last_seen    INTEGER NOT NULL            -- unix seconds, refreshed at most every few minutes
);

CREATE INDEX sessions_by_user ON sessions (user_id);
