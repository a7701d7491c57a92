-- tus `concatenation` in place: a partial claimed by a final before any of
-- its bytes arrived writes them straight into the final's byte range. JSON
-- {"at": byte offset in the final, "first_part": its first S3 part number
-- in the final's multipart upload (null: the final sends the parts),
-- "parts": the parts it sent}; NULL: its bytes are its own (copied).
ALTER TABLE uploads ADD COLUMN concat_place TEXT;
