-- Import jobs (AdminImportRemoteImage): one row per job, in the shape of a
-- workflow job. A job survives restarts: queued/running jobs run again at
-- start-up and go on from the staged bytes (`file_offset`).
CREATE TABLE import_jobs (
    job_uuid         TEXT PRIMARY KEY,
    image_uuid       TEXT NOT NULL,
    task             TEXT NOT NULL,              -- import-remote-image
    source           TEXT NOT NULL,              -- URL of the source IMGAPI
    skip_owner_check INTEGER NOT NULL,
    channels         TEXT NOT NULL,              -- JSON array: channels the images start in
    plan             TEXT NOT NULL,              -- JSON array of image uuids, origins first
    created          TEXT NOT NULL DEFAULT '[]', -- JSON array of the images this job created
    execution        TEXT NOT NULL,              -- queued|running|succeeded|failed
    current_image    TEXT,                       -- image whose file is being staged
    file_offset      INTEGER NOT NULL DEFAULT 0, -- bytes of that file staged and synced
    content_md5      TEXT,                       -- that file's Content-MD5 at the source
    bytes_received   INTEGER NOT NULL DEFAULT 0, -- bytes fetched by the whole job
    bytes_total      INTEGER,                    -- size of every file of the plan
    attempts         INTEGER NOT NULL DEFAULT 0,
    error_code       TEXT,
    error_message    TEXT,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT
) STRICT;

CREATE INDEX import_jobs_image ON import_jobs(image_uuid);
CREATE INDEX import_jobs_execution ON import_jobs(execution);
