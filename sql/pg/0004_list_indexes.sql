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

-- Every distinct image name and how many images have it, kept by a
-- trigger: `name=~…` first finds the few names that contain the
-- substring here (a small table, with its own trigram index), then walks
-- each name's images in ListImages' order (images_list_name) and merges
-- them, as the SQLite backend does with its values cache. (A walk of the
-- trigram index of `images` finds every matching image and sorts them
-- all: 7 ms for 2 000 matches.)
CREATE TABLE image_names (
    name    text COLLATE "C" PRIMARY KEY,
    images  bigint NOT NULL
);
CREATE INDEX image_names_trgm ON image_names USING gin (name gin_trgm_ops);
CREATE FUNCTION image_names_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE image_names SET images = images - 1 WHERE name = OLD.name;
        DELETE FROM image_names WHERE name = OLD.name AND images <= 0;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO image_names (name, images) VALUES (NEW.name, 1)
            ON CONFLICT (name) DO UPDATE SET images = image_names.images + 1;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER image_names_count AFTER INSERT OR DELETE OR UPDATE OF name ON images
    FOR EACH ROW EXECUTE FUNCTION image_names_count();
INSERT INTO image_names (name, images) SELECT name, count(*) FROM images GROUP BY name;
