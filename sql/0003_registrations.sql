-- Registrar jobs: one per image being registered from a stored object.
-- A job survives restarts: pending/running jobs are run again at start-up.
CREATE TABLE registrations (
    image_uuid    TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,           -- register (POST /images) | attach (PUT file?upload=)
    source        TEXT NOT NULL,           -- upload|path
    upload_id     TEXT,
    store         TEXT NOT NULL,           -- manta|assets: where the source object is
    source_key    TEXT NOT NULL,
    content_md5   TEXT NOT NULL,           -- stated by the client (base64)
    sha1          TEXT,                    -- stated, optional (hex)
    size          INTEGER,                 -- stated, optional
    compression   TEXT NOT NULL,
    dataset_guid  TEXT,
    activate      INTEGER NOT NULL,
    state         TEXT NOT NULL,           -- pending|done|failed
    attempts      INTEGER NOT NULL DEFAULT 0,
    error_code    TEXT,
    error_message TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;

CREATE INDEX registrations_state ON registrations(state);

-- When an upload completed at a user path, the object's size and mtime then:
-- registration trusts the recorded digests only while they are unchanged.
ALTER TABLE uploads ADD COLUMN data_mtime TEXT;
