-- An upload whose bytes are kept whole in the object store (a cluster's
-- uploads into S3, src/store/pieces.rs) lists its objects here (JSON:
-- part size, whole parts, tail); NULL for staged uploads. `hash_format`
-- tags md5_state/sha1_state/crc64 with the format they were written in:
-- a build that does not know it hashes the stored bytes again.
ALTER TABLE uploads ADD COLUMN pieces TEXT;
ALTER TABLE uploads ADD COLUMN hash_format INTEGER NOT NULL DEFAULT 1;
