-- ListImages from stored JSON: `wire` holds each image as a ListImages body
-- shows it with the default rendering (no admin fields, no channels),
-- pretty-printed at the array element's indentation
-- (`manifest::Image::listed_json`), so that a list needing no other
-- rendering is the concatenation of these strings, without parsing a
-- manifest. Written with `manifest` by every insert and update of an image
-- (`db::images::insert` / `update`). NULL means not written yet: ListImages
-- then renders that image from its manifest, and `db::migrate` fills the
-- NULL rows (the images stored before this migration, or inserted by a
-- writer that does not know the column) through the partial index below,
-- empty once they are filled.
ALTER TABLE images ADD COLUMN wire TEXT;
CREATE INDEX images_wire_missing ON images(uuid) WHERE wire IS NULL;

-- A writer that changes the manifest without the list form (one that does
-- not know the column: an older imgapi, a hand edit) leaves it NULL, never
-- stale. `db::images::update` writes both; when its new list form equals
-- the old one this fires too, and `update` writes it again right after
-- (an UPDATE of `wire` alone does not fire it).
CREATE TRIGGER images_wire_stale AFTER UPDATE OF manifest ON images
WHEN NEW.wire IS OLD.wire AND NEW.manifest IS NOT OLD.manifest
BEGIN
    UPDATE images SET wire = NULL WHERE rowid = NEW.rowid;
END;
