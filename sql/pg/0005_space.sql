-- Space (as SQLite's sql/0015_space.sql): what each image keeps in the
-- stores, and its downloads.
ALTER TABLE images ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;

UPDATE images SET bytes =
    COALESCE((SELECT sum((f ->> 'size')::bigint)
              FROM jsonb_array_elements(manifest::jsonb -> 'files') f), 0)
    + COALESCE((manifest::jsonb -> 'icon' ->> 'size')::bigint, 0);

-- Download statistics per image, added in batches by each node. An image
-- never downloaded has no row; the row goes with the image.
CREATE TABLE image_downloads (
    uuid     uuid PRIMARY KEY REFERENCES images (uuid) ON DELETE CASCADE,
    count    BIGINT NOT NULL,
    last_at  text COLLATE "C" NOT NULL
);

CREATE INDEX image_downloads_last ON image_downloads (last_at);

-- Downloads per account and day (YYYY-MM-DD); days older than 31 are
-- deleted as batches are added.
CREATE TABLE download_days (
    owner  uuid NOT NULL,
    day    text COLLATE "C" NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (owner, day)
);

CREATE INDEX download_days_day ON download_days (day);

-- A row per account whose quota a write transaction checks: the check
-- locks it (an upsert) until the transaction ends, so two transactions
-- that add to one account run one after the other and cannot both slip
-- under its quota. (SQLite's one writer needs none.)
CREATE TABLE account_locks (
    account  uuid PRIMARY KEY
);

-- Quotas of one account that override `[quotas]`: NULL keeps the
-- configuration's, 0 is unlimited.
CREATE TABLE account_quotas (
    account     uuid PRIMARY KEY,
    max_bytes   BIGINT,
    max_images  BIGINT
);

-- Images the lifecycle policy disabled (as SQLite's lifecycle_state).
CREATE TABLE lifecycle_state (
    uuid          uuid PRIMARY KEY REFERENCES images (uuid) ON DELETE CASCADE,
    rule          text NOT NULL,
    disabled_at   text COLLATE "C" NOT NULL,
    delete_after  text COLLATE "C" NOT NULL,
    reenabled_at  text COLLATE "C"
);
