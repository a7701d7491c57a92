-- The CRC-64/NVME of an upload's first `offset` bytes, in file order (the
-- finished value, as a signed 64-bit integer), advanced with md5_state and
-- sha1_state by each acknowledged PATCH and shown to the upload's owner in
-- `Upload-Crc64nvme`. NULL for sessions created before this column: they
-- never get one.
ALTER TABLE uploads ADD COLUMN crc64 INTEGER;
