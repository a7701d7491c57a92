-- As SQLite's sql/0016_multipart_names.sql: the multipart upload's columns
-- named for what they hold, not for a backend.
ALTER TABLE uploads RENAME COLUMN s3_key TO multipart_key;
ALTER TABLE uploads RENAME COLUMN s3_upload_id TO multipart_upload_id;
