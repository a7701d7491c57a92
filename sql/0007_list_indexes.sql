-- ListImages at scale: every documented filter is served from an index.
--
-- Each filter column gets an index ending in (published_at, uuid), ListImages'
-- order, so a filter walks its rows already sorted and stops at `limit`. The
-- state comes second: the default `state=active` is an equality too.
CREATE INDEX images_list_state ON images(state, published_at, uuid);
CREATE INDEX images_list_owner ON images(owner, state, published_at, uuid);
CREATE INDEX images_list_name ON images(name, state, published_at, uuid);
CREATE INDEX images_list_version ON images(version, state, published_at, uuid);
CREATE INDEX images_list_os ON images(os, state, published_at, uuid);
CREATE INDEX images_list_type ON images(type, state, published_at, uuid);
CREATE INDEX images_list_public ON images(public, state, published_at, uuid);
DROP INDEX images_owner;  -- a prefix of images_list_owner

-- The JSON-array columns, one row per element (kept in sync by the triggers
-- below, in the statement that changes the image).
CREATE TABLE image_tags (
    tag   TEXT NOT NULL,   -- "key=value", as in images.tags_search
    uuid  TEXT NOT NULL,
    PRIMARY KEY (tag, uuid)
) STRICT, WITHOUT ROWID;
CREATE TABLE image_billing_tags (
    tag   TEXT NOT NULL,
    uuid  TEXT NOT NULL,
    PRIMARY KEY (tag, uuid)
) STRICT, WITHOUT ROWID;
CREATE TABLE image_acl (
    account  TEXT NOT NULL,
    uuid     TEXT NOT NULL,
    PRIMARY KEY (account, uuid)
) STRICT, WITHOUT ROWID;

-- `name=~…` and `version=~…`: the distinct names and versions (with how
-- many images have each) and a case-sensitive trigram index of them. A
-- substring is looked up among the distinct values (few: an image name has
-- many versions), then the images of the matching values through
-- images_list_name / images_list_version. Substrings of 3 characters or
-- more use the trigram index; shorter ones read the distinct values.
CREATE TABLE image_values (
    id     INTEGER PRIMARY KEY,
    col    TEXT NOT NULL,      -- name|version
    value  TEXT NOT NULL,
    n      INTEGER NOT NULL,   -- images with this value
    UNIQUE (col, value)
) STRICT;
CREATE VIRTUAL TABLE image_text USING fts5(
    value,
    tokenize = 'trigram case_sensitive 1'
);

CREATE TRIGGER images_list_insert AFTER INSERT ON images BEGIN
    INSERT OR IGNORE INTO image_tags (tag, uuid)
        SELECT value, NEW.uuid FROM json_each(NEW.tags_search);
    INSERT OR IGNORE INTO image_billing_tags (tag, uuid)
        SELECT value, NEW.uuid FROM json_each(NEW.billing_tags);
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

CREATE TRIGGER images_list_delete AFTER DELETE ON images BEGIN
    DELETE FROM image_tags WHERE uuid = OLD.uuid
        AND tag IN (SELECT value FROM json_each(OLD.tags_search));
    DELETE FROM image_billing_tags WHERE uuid = OLD.uuid
        AND tag IN (SELECT value FROM json_each(OLD.billing_tags));
    DELETE FROM image_acl WHERE uuid = OLD.uuid
        AND account IN (SELECT value FROM json_each(OLD.acl));
    UPDATE image_values SET n = n - 1 WHERE col = 'name' AND value = OLD.name;
    UPDATE image_values SET n = n - 1 WHERE col = 'version' AND value = OLD.version;
    DELETE FROM image_text WHERE rowid IN
        (SELECT id FROM image_values WHERE col = 'name' AND value = OLD.name AND n = 0
         UNION ALL
         SELECT id FROM image_values WHERE col = 'version' AND value = OLD.version AND n = 0);
    DELETE FROM image_values WHERE col = 'name' AND value = OLD.name AND n = 0;
    DELETE FROM image_values WHERE col = 'version' AND value = OLD.version AND n = 0;
END;

CREATE TRIGGER images_list_update_tags AFTER UPDATE OF tags_search ON images
WHEN OLD.tags_search IS NOT NEW.tags_search BEGIN
    DELETE FROM image_tags WHERE uuid = OLD.uuid
        AND tag IN (SELECT value FROM json_each(OLD.tags_search));
    INSERT OR IGNORE INTO image_tags (tag, uuid)
        SELECT value, NEW.uuid FROM json_each(NEW.tags_search);
END;

CREATE TRIGGER images_list_update_billing_tags AFTER UPDATE OF billing_tags ON images
WHEN OLD.billing_tags IS NOT NEW.billing_tags BEGIN
    DELETE FROM image_billing_tags WHERE uuid = OLD.uuid
        AND tag IN (SELECT value FROM json_each(OLD.billing_tags));
    INSERT OR IGNORE INTO image_billing_tags (tag, uuid)
        SELECT value, NEW.uuid FROM json_each(NEW.billing_tags);
END;

CREATE TRIGGER images_list_update_acl AFTER UPDATE OF acl ON images
WHEN OLD.acl IS NOT NEW.acl BEGIN
    DELETE FROM image_acl WHERE uuid = OLD.uuid
        AND account IN (SELECT value FROM json_each(OLD.acl));
    INSERT OR IGNORE INTO image_acl (account, uuid)
        SELECT value, NEW.uuid FROM json_each(NEW.acl);
END;

CREATE TRIGGER images_list_update_name AFTER UPDATE OF name ON images
WHEN OLD.name IS NOT NEW.name BEGIN
    UPDATE image_values SET n = n - 1 WHERE col = 'name' AND value = OLD.name;
    INSERT INTO image_values (col, value, n) VALUES ('name', NEW.name, 1)
        ON CONFLICT (col, value) DO UPDATE SET n = n + 1;
    INSERT INTO image_text (rowid, value)
        SELECT id, value FROM image_values WHERE col = 'name' AND value = NEW.name AND n = 1;
    DELETE FROM image_text WHERE rowid IN
        (SELECT id FROM image_values WHERE col = 'name' AND value = OLD.name AND n = 0);
    DELETE FROM image_values WHERE col = 'name' AND value = OLD.name AND n = 0;
END;

CREATE TRIGGER images_list_update_version AFTER UPDATE OF version ON images
WHEN OLD.version IS NOT NEW.version BEGIN
    UPDATE image_values SET n = n - 1 WHERE col = 'version' AND value = OLD.version;
    INSERT INTO image_values (col, value, n) VALUES ('version', NEW.version, 1)
        ON CONFLICT (col, value) DO UPDATE SET n = n + 1;
    INSERT INTO image_text (rowid, value)
        SELECT id, value FROM image_values WHERE col = 'version' AND value = NEW.version AND n = 1;
    DELETE FROM image_text WHERE rowid IN
        (SELECT id FROM image_values WHERE col = 'version' AND value = OLD.version AND n = 0);
    DELETE FROM image_values WHERE col = 'version' AND value = OLD.version AND n = 0;
END;

-- Backfill from the images already stored.
INSERT OR IGNORE INTO image_tags (tag, uuid)
    SELECT j.value, i.uuid FROM images i, json_each(i.tags_search) j;
INSERT OR IGNORE INTO image_billing_tags (tag, uuid)
    SELECT j.value, i.uuid FROM images i, json_each(i.billing_tags) j;
INSERT OR IGNORE INTO image_acl (account, uuid)
    SELECT j.value, i.uuid FROM images i, json_each(i.acl) j;
INSERT INTO image_values (col, value, n)
    SELECT 'name', name, count(*) FROM images GROUP BY name;
INSERT INTO image_values (col, value, n)
    SELECT 'version', version, count(*) FROM images GROUP BY version;
INSERT INTO image_text (rowid, value) SELECT id, value FROM image_values;
