-- Space (issue 24): what each image keeps in the stores, and its
-- downloads.
--
-- `images.bytes`: its files' and its icon's sizes (the manifest's, written
-- with every row: `manifest::Image::stored_bytes`), summed per account for
-- usage and quotas.
ALTER TABLE images ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;

UPDATE images SET bytes =
    COALESCE((SELECT sum(json_extract(f.value, '$.size'))
              FROM json_each(images.manifest, '$.files') f), 0)
    + COALESCE(json_extract(images.manifest, '$.icon.size'), 0);

-- Download statistics per image: how many times its file was served to
-- the end, and when last. A node counts downloads in memory and adds them
-- here in batches (`images::downloads`), so a download's path never waits
-- on a write. `last_at` is a stored timestamp (YYYY-MM-DDTHH:MM:SS.mmmZ:
-- text order is time order). An image never downloaded has no row; the
-- row goes with the image.
CREATE TABLE image_downloads (
    uuid     TEXT PRIMARY KEY,
    count    INTEGER NOT NULL,
    last_at  TEXT NOT NULL
) STRICT;

CREATE INDEX image_downloads_last ON image_downloads(last_at);

CREATE TRIGGER images_downloads_gone AFTER DELETE ON images
BEGIN
    DELETE FROM image_downloads WHERE uuid = OLD.uuid;
END;

-- Downloads per account (the images' owner) and day (YYYY-MM-DD of the
-- batch's last download): an account's downloads of the last 30 days.
-- Days older than 31 are deleted as batches are added.
CREATE TABLE download_days (
    owner  TEXT NOT NULL,
    day    TEXT NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (owner, day)
) STRICT;

CREATE INDEX download_days_day ON download_days(day);

-- Quotas of one account that override `[quotas]`: NULL keeps the
-- configuration's, 0 is unlimited (`imgapi account set-quota`). The account
-- need not have a login here (an image owner is any uuid).
CREATE TABLE account_quotas (
    account     TEXT PRIMARY KEY,
    max_bytes   INTEGER,
    max_images  INTEGER
) STRICT;

-- Images the lifecycle policy disabled (`lifecycle::`): by which rule,
-- when, and when it may delete them; `reenabled_at` once someone enabled
-- the image again (it is then retired only when it qualifies anew, counting
-- from then). The row goes with the image.
CREATE TABLE lifecycle_state (
    uuid          TEXT PRIMARY KEY,
    rule          TEXT NOT NULL,
    disabled_at   TEXT NOT NULL,
    delete_after  TEXT NOT NULL,
    reenabled_at  TEXT
) STRICT;

CREATE TRIGGER images_lifecycle_gone AFTER DELETE ON images
BEGIN
    DELETE FROM lifecycle_state WHERE uuid = OLD.uuid;
END;
