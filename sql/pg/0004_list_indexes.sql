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
