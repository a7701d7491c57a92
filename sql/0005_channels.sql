-- Channels an image is in (JSON array), for ListImages' `channel` filter.
ALTER TABLE images ADD COLUMN channels TEXT NOT NULL DEFAULT '[]';
UPDATE images SET channels = COALESCE(json_extract(manifest, '$.channels'), '[]');
