-- ListImages' answers are kept on each node (`images::ListCache`) while
-- `gen` has not moved. Any change to an image (its row inserted, updated
-- or deleted: its tags, ACL and list form are written with it) moves it,
-- in the transaction that makes the change, so that a list read after
-- the change commits reads the new generation and is answered anew.
CREATE TABLE list_gen (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    gen  INTEGER NOT NULL
) STRICT;
INSERT INTO list_gen (id, gen) VALUES (1, 0);
CREATE TRIGGER list_gen_insert AFTER INSERT ON images BEGIN
    UPDATE list_gen SET gen = gen + 1 WHERE id = 1;
END;
CREATE TRIGGER list_gen_update AFTER UPDATE ON images BEGIN
    UPDATE list_gen SET gen = gen + 1 WHERE id = 1;
END;
CREATE TRIGGER list_gen_delete AFTER DELETE ON images BEGIN
    UPDATE list_gen SET gen = gen + 1 WHERE id = 1;
END;
