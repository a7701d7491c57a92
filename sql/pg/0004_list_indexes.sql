-- The default ListImages (active images in date order, the most common
-- read): a walk of this index from its start. images_list_all would first
-- skip every image never activated (their NULL dates sort first), and
-- images_list_state costs the same to the planner, which cannot tell.
CREATE INDEX images_list_active ON images (published_at NULLS FIRST, uuid) WHERE state = 'active';

-- The trigram indexes serve `name=~` and `version=~` only: built on an
-- expression that only those filters write (`(name || '') LIKE ...`), so
-- that the planner never takes them for an equality (pg_trgm can answer
-- `=` too, slowly, and its estimate led the planner to BitmapAnd them
-- with the ordered indexes: 10x slower `name` + `version` lists).
DROP INDEX images_name_trgm;
DROP INDEX images_version_trgm;
CREATE INDEX images_name_trgm ON images USING gin ((name || '') gin_trgm_ops) WITH (fastupdate = off);
CREATE INDEX images_version_trgm ON images USING gin ((version || '') gin_trgm_ops) WITH (fastupdate = off);

-- Every distinct image name and version, and how many images have it,
-- kept by a trigger: `name=~…` (`version=~…`) first finds the few values
-- that contain the substring here (a small table, with its own trigram
-- index), then walks each value's images in ListImages' order
-- (images_list_name, images_list_version) and merges them, as the SQLite
-- backend does with its values cache. (A walk of the trigram index of
-- `images` finds every matching image and sorts them all: 7 ms for 2 000
-- matches.)
CREATE TABLE image_values (
    field   text COLLATE "C" NOT NULL,   -- name | version
    value   text COLLATE "C" NOT NULL,
    images  bigint NOT NULL,
    PRIMARY KEY (field, value)
);
CREATE INDEX image_values_trgm ON image_values USING gin (value gin_trgm_ops);
CREATE FUNCTION image_values_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE image_values SET images = images - 1
            WHERE (field = 'name' AND value = OLD.name) OR (field = 'version' AND value = OLD.version);
        DELETE FROM image_values WHERE images <= 0
            AND ((field = 'name' AND value = OLD.name) OR (field = 'version' AND value = OLD.version));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO image_values (field, value, images)
            VALUES ('name', NEW.name, 1), ('version', NEW.version, 1)
            ON CONFLICT (field, value) DO UPDATE SET images = image_values.images + 1;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER image_values_count AFTER INSERT OR DELETE OR UPDATE OF name, version ON images
    FOR EACH ROW EXECUTE FUNCTION image_values_count();
INSERT INTO image_values (field, value, images)
    SELECT 'name', name, count(*) FROM images GROUP BY name
    UNION ALL SELECT 'version', version, count(*) FROM images GROUP BY version;
