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

-- `name=~…` and `version=~…`: a case-sensitive trigram index (substrings of
-- 3 characters or more). Its rows are numbered by image_text_ids, not by
-- images' implicit rowid (which VACUUM may renumber).
CREATE TABLE image_text_ids (
    id    INTEGER PRIMARY KEY,
    uuid  TEXT NOT NULL UNIQUE
) STRICT;
CREATE VIRTUAL TABLE image_text USING fts5(
    uuid UNINDEXED, name, version,
    tokenize = 'trigram case_sensitive 1'
);

CREATE TRIGGER images_list_insert AFTER INSERT ON images BEGIN
    INSERT OR IGNORE INTO image_tags (tag, uuid)
        SELECT value, NEW.uuid FROM json_each(NEW.tags_search);
    INSERT OR IGNORE INTO image_billing_tags (tag, uuid)
        SELECT value, NEW.uuid FROM json_each(NEW.billing_tags);
    INSERT OR IGNORE INTO image_acl (account, uuid)
        SELECT value, NEW.uuid FROM json_each(NEW.acl);
    INSERT INTO image_text_ids (uuid) VALUES (NEW.uuid);
    INSERT INTO image_text (rowid, uuid, name, version)
        VALUES (last_insert_rowid(), NEW.uuid, NEW.name, NEW.version);
END;

CREATE TRIGGER images_list_delete AFTER DELETE ON images BEGIN
    DELETE FROM image_tags WHERE uuid = OLD.uuid
        AND tag IN (SELECT value FROM json_each(OLD.tags_search));
    DELETE FROM image_billing_tags WHERE uuid = OLD.uuid
        AND tag IN (SELECT value FROM json_each(OLD.billing_tags));
    DELETE FROM image_acl WHERE uuid = OLD.uuid
        AND account IN (SELECT value FROM json_each(OLD.acl));
    DELETE FROM image_text
        WHERE rowid = (SELECT id FROM image_text_ids WHERE uuid = OLD.uuid);
    DELETE FROM image_text_ids WHERE uuid = OLD.uuid;
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

CREATE TRIGGER images_list_update_text AFTER UPDATE OF name, version ON images
WHEN OLD.name IS NOT NEW.name OR OLD.version IS NOT NEW.version BEGIN
    UPDATE image_text SET name = NEW.name, version = NEW.version
        WHERE rowid = (SELECT id FROM image_text_ids WHERE uuid = NEW.uuid);
END;

-- Backfill from the images already stored.
INSERT OR IGNORE INTO image_tags (tag, uuid)
    SELECT j.value, i.uuid FROM images i, json_each(i.tags_search) j;
INSERT OR IGNORE INTO image_billing_tags (tag, uuid)
    SELECT j.value, i.uuid FROM images i, json_each(i.billing_tags) j;
INSERT OR IGNORE INTO image_acl (account, uuid)
    SELECT j.value, i.uuid FROM images i, json_each(i.acl) j;
INSERT INTO image_text_ids (uuid) SELECT uuid FROM images ORDER BY uuid;
INSERT INTO image_text (rowid, uuid, name, version)
    SELECT t.id, i.uuid, i.name, i.version FROM images i JOIN image_text_ids t USING (uuid);
