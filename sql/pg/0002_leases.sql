-- Leases with a fencing token (as SQLite's sql/0013_leases.sql): who may
-- change an upload, run a job or a singleton task right now, across nodes.
-- `fence` grows by one on every claim and never goes back; `expires_ms` is
-- the database's clock in milliseconds since the epoch. An upload's row
-- goes with the upload.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT,
    fence       BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL
);

CREATE FUNCTION uploads_lease_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM leases WHERE name = 'upload:' || old.id;
    RETURN old;
END $$;

CREATE TRIGGER uploads_lease_gone AFTER DELETE ON uploads
    FOR EACH ROW EXECUTE FUNCTION uploads_lease_gone();
