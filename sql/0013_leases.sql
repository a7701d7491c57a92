-- Leases with a fencing token: who may change an upload (or, later, run a
-- job or a singleton task) right now, across processes and nodes.
--
-- `name` says what is leased ("upload:<uuid>"). `fence` grows by one on
-- every claim and never goes back, so a holder whose lease was taken over
-- holds an old fence and every conditional write it makes finds nothing.
-- `owner` is the holding process (NULL: free); `expires_ms` is the
-- database's clock in milliseconds since the epoch: a holder that died or
-- froze loses its lease when it passes. Rows stay after release, keeping
-- the fence; an upload's row goes with the upload.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT,
    fence       INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);

CREATE TRIGGER uploads_lease_gone AFTER DELETE ON uploads
BEGIN
    DELETE FROM leases WHERE name = 'upload:' || old.id;
END;
