-- Download statistics per image (as SQLite's sql/0015_image_downloads.sql):
-- how many times its file was served to the end, and when last, added in
-- batches by each node. An image never downloaded has no row; the row goes
-- with the image.
CREATE TABLE image_downloads (
    uuid     uuid PRIMARY KEY REFERENCES images (uuid) ON DELETE CASCADE,
    count    BIGINT NOT NULL,
    last_at  text COLLATE "C" NOT NULL
);

CREATE INDEX image_downloads_last ON image_downloads (last_at);
