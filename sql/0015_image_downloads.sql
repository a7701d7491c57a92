-- Download statistics per image (issue 24): how many times its file was
-- served to the end, and when last. A node counts downloads in memory and
-- adds them here in batches (`images::downloads`), so a download's path
-- never waits on a write. `last_at` is a stored timestamp
-- (YYYY-MM-DDTHH:MM:SS.mmmZ: text order is time order). An image never
-- downloaded has no row; the row goes with the image.
CREATE TABLE image_downloads (
    uuid     TEXT PRIMARY KEY,
    count    INTEGER NOT NULL,
    last_at  TEXT NOT NULL
);

CREATE INDEX image_downloads_last ON image_downloads(last_at);

CREATE TRIGGER images_downloads_gone AFTER DELETE ON images
BEGIN
    DELETE FROM image_downloads WHERE uuid = OLD.uuid;
END;
