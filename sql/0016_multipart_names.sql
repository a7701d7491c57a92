-- The columns of an upload's multipart upload say what they hold, not
-- which backend has one (issue 23): any store that can do multipart
-- uploads fills them.
ALTER TABLE uploads RENAME COLUMN s3_key TO multipart_key;
ALTER TABLE uploads RENAME COLUMN s3_upload_id TO multipart_upload_id;
