-- Images: one row per image. `manifest` holds the full internal JSON of the
-- image; the other columns are copies of the fields ListImages filters on.
CREATE TABLE images (
    uuid          TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    name          TEXT NOT NULL,
    version       TEXT NOT NULL,
    state         TEXT NOT NULL,           -- active|disabled|unactivated|creating|failed
    activated     INTEGER NOT NULL,
    disabled      INTEGER NOT NULL,
    public        INTEGER NOT NULL,
    type          TEXT NOT NULL,
    os            TEXT NOT NULL,
    origin        TEXT,
    published_at  TEXT,                    -- normalised YYYY-MM-DDTHH:MM:SS.mmmZ, sortable as text
    acl           TEXT NOT NULL DEFAULT '[]',   -- JSON array of account uuids
    tags_search   TEXT NOT NULL DEFAULT '[]',   -- JSON array of "key=value" strings
    billing_tags  TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    expires_at    TEXT,                    -- placeholders (creating/failed) only
    manifest      TEXT NOT NULL
) STRICT;

CREATE INDEX images_owner ON images(owner);
CREATE INDEX images_published_at ON images(published_at, uuid);
CREATE INDEX images_origin ON images(origin);

-- Accounts that may authenticate with a bearer token (auth = "token").
CREATE TABLE accounts (
    uuid        TEXT PRIMARY KEY,
    login       TEXT NOT NULL UNIQUE,
    operator    INTEGER NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

-- Tokens are stored only as SHA-256 hex digests.
CREATE TABLE tokens (
    token_sha256  TEXT PRIMARY KEY,
    account       TEXT NOT NULL REFERENCES accounts(uuid) ON DELETE CASCADE,
    created_at    TEXT NOT NULL
) STRICT;
