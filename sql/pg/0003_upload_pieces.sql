-- As sql/0014_upload_pieces.sql: the objects an upload kept whole in the
-- object store has so far (JSON), and the format of its hash states.
ALTER TABLE uploads ADD COLUMN pieces text;
ALTER TABLE uploads ADD COLUMN hash_format integer NOT NULL DEFAULT 1;
