-- A tus upload whose bytes go to an S3 store is one S3 multipart upload:
-- full parts are sent as they fill; the bytes since the last part wait in a
-- local staging file named after `staged_from`. A restart resumes from here.
ALTER TABLE uploads ADD COLUMN s3_key TEXT;           -- object key of the multipart upload
ALTER TABLE uploads ADD COLUMN s3_upload_id TEXT;
ALTER TABLE uploads ADD COLUMN parts TEXT NOT NULL DEFAULT '[]';  -- [{"n", "etag", "size"}]
ALTER TABLE uploads ADD COLUMN staged_from INTEGER NOT NULL DEFAULT 0;
