-- Resumable upload sessions (tus 1.0). A row's offset, hash state and the
-- bytes on disk up to that offset are made durable together by each PATCH.
CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    owner         TEXT,                    -- account uuid; NULL = operator
    length        INTEGER NOT NULL,
    offset        INTEGER NOT NULL,
    state         TEXT NOT NULL,           -- uploading|complete|failed|registered
    store         TEXT NOT NULL,           -- manta|assets: where the bytes live
    data_key      TEXT NOT NULL,           -- key of the bytes in that store
    path          TEXT,                    -- target storage path, if any
    metadata      TEXT NOT NULL DEFAULT '{}',  -- Upload-Metadata, decoded, JSON
    content_md5   TEXT,                    -- expected base64 md5 (metadata)
    md5_state     BLOB NOT NULL,           -- serialised hasher states at `offset`
    sha1_state    BLOB NOT NULL,
    md5           TEXT,                    -- final digests once complete
    sha1          TEXT,
    error         TEXT,                    -- why state is failed
    image_uuid    TEXT,                    -- the image it was registered to
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
) STRICT;

CREATE INDEX uploads_owner ON uploads(owner, state);
CREATE INDEX uploads_expires_at ON uploads(expires_at);
