-- ListImages: a tag or a billing tag drives an ordered walk; the values
-- of `~` matches are cached until a name or version appears or goes.
--
-- `image_tags` and `image_billing_tags` (sql/0007) get each image's `state`
-- and `published_at`, and an index (tag, state, published_at, uuid):
-- ListImages' order within a tag, as the column indexes of 0007 have it,
-- so a tag filter walks its images already sorted and stops at `limit`
-- (a `marker` bounds the walk) instead of sorting every tagged image.
-- The triggers of 0007 that write these tables are replaced by ones that
-- write the two columns, and a new one follows an image's state and
-- publication date. The tables are rebuilt from `images`.
DROP TRIGGER images_list_insert;
DROP TRIGGER images_list_update_tags;
DROP TRIGGER images_list_update_billing_tags;
DROP TABLE image_tags;
DROP TABLE image_billing_tags;

CREATE TABLE image_tags (
    tag           TEXT NOT NULL,   -- "key=value", as in images.tags_search
    uuid          TEXT NOT NULL,
    state         TEXT NOT NULL,   -- images.state
    published_at  TEXT,            -- images.published_at
    PRIMARY KEY (tag, uuid)
) STRICT, WITHOUT ROWID;
CREATE TABLE image_billing_tags (
    tag           TEXT NOT NULL,
    uuid          TEXT NOT NULL,
    state         TEXT NOT NULL,
    published_at  TEXT,
    PRIMARY KEY (tag, uuid)
) STRICT, WITHOUT ROWID;
CREATE INDEX image_tags_list ON image_tags(tag, state, published_at, uuid);
CREATE INDEX image_billing_tags_list ON image_billing_tags(tag, state, published_at, uuid);

CREATE TRIGGER images_list_insert AFTER INSERT ON images BEGIN
    INSERT OR IGNORE INTO image_tags (tag, uuid, state, published_at)
        SELECT value, NEW.uuid, NEW.state, NEW.published_at FROM json_each(NEW.tags_search);
    INSERT OR IGNORE INTO image_billing_tags (tag, uuid, state, published_at)
        SELECT value, NEW.uuid, NEW.state, NEW.published_at FROM json_each(NEW.billing_tags);
    INSERT OR IGNORE INTO image_acl (account, uuid)
        SELECT value, NEW.uuid FROM json_each(NEW.acl);
    INSERT INTO image_values (col, value, n) VALUES ('name', NEW.name, 1)
        ON CONFLICT (col, value) DO UPDATE SET n = n + 1;
    INSERT INTO image_values (col, value, n) VALUES ('version', NEW.version, 1)
        ON CONFLICT (col, value) DO UPDATE SET n = n + 1;
    INSERT INTO image_text (rowid, value)
        SELECT id, value FROM image_values WHERE col = 'name' AND value = NEW.name AND n = 1;
    INSERT INTO image_text (rowid, value)
        SELECT id, value FROM image_values WHERE col = 'version' AND value = NEW.version AND n = 1;
END;

CREATE TRIGGER images_list_update_tags AFTER UPDATE OF tags_search ON images
WHEN OLD.tags_search IS NOT NEW.tags_search BEGIN
    DELETE FROM image_tags WHERE uuid = OLD.uuid
        AND tag IN (SELECT value FROM json_each(OLD.tags_search));
    INSERT OR IGNORE INTO image_tags (tag, uuid, state, published_at)
        SELECT value, NEW.uuid, NEW.state, NEW.published_at FROM json_each(NEW.tags_search);
END;

CREATE TRIGGER images_list_update_billing_tags AFTER UPDATE OF billing_tags ON images
WHEN OLD.billing_tags IS NOT NEW.billing_tags BEGIN
    DELETE FROM image_billing_tags WHERE uuid = OLD.uuid
        AND tag IN (SELECT value FROM json_each(OLD.billing_tags));
    INSERT OR IGNORE INTO image_billing_tags (tag, uuid, state, published_at)
        SELECT value, NEW.uuid, NEW.state, NEW.published_at FROM json_each(NEW.billing_tags);
END;

-- The state or publication date changed (activate, enable, disable):
-- every tag row of the image, old tags and new (the tag triggers above may
-- run before or after this one; either way the rows end with NEW's values).
CREATE TRIGGER images_list_update_order AFTER UPDATE OF state, published_at ON images
WHEN OLD.state IS NOT NEW.state OR OLD.published_at IS NOT NEW.published_at BEGIN
    UPDATE image_tags SET state = NEW.state, published_at = NEW.published_at
        WHERE uuid = NEW.uuid AND tag IN
            (SELECT value FROM json_each(OLD.tags_search)
             UNION SELECT value FROM json_each(NEW.tags_search));
    UPDATE image_billing_tags SET state = NEW.state, published_at = NEW.published_at
        WHERE uuid = NEW.uuid AND tag IN
            (SELECT value FROM json_each(OLD.billing_tags)
             UNION SELECT value FROM json_each(NEW.billing_tags));
END;

-- Backfill from the images already stored.
INSERT OR IGNORE INTO image_tags (tag, uuid, state, published_at)
    SELECT j.value, i.uuid, i.state, i.published_at FROM images i, json_each(i.tags_search) j;
INSERT OR IGNORE INTO image_billing_tags (tag, uuid, state, published_at)
    SELECT j.value, i.uuid, i.state, i.published_at FROM images i, json_each(i.billing_tags) j;

-- `~` matches: the distinct values a substring matches are cached by
-- `db::images::merge_values` per database, column and substring while
-- `gen` has not moved. It moves when a distinct name or version appears
-- or goes (a row of image_values inserted or deleted; a count changing
-- is an UPDATE and does not move it). `db` tells databases apart in the
-- process's cache.
CREATE TABLE image_values_gen (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    db   INTEGER NOT NULL,
    gen  INTEGER NOT NULL
) STRICT;
INSERT INTO image_values_gen (id, db, gen) VALUES (1, random(), 0);
CREATE TRIGGER image_values_added AFTER INSERT ON image_values BEGIN
    UPDATE image_values_gen SET gen = gen + 1 WHERE id = 1;
END;
CREATE TRIGGER image_values_removed AFTER DELETE ON image_values BEGIN
    UPDATE image_values_gen SET gen = gen + 1 WHERE id = 1;
END;
