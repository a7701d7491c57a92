-- As SQLite's sql/0017_list_gen.sql: ListImages' answers are kept on each
-- node while `gen` has not moved, and any change to an image moves it in
-- the transaction that makes the change. The trigger is deferred to the
-- commit, and moves it once per transaction: the row's lock is the last
-- one a writer takes (no lock order with `account_locks` or the images'
-- rows to deadlock on) and is held only while the transaction commits.
CREATE TABLE list_gen (
    id   integer PRIMARY KEY CHECK (id = 1),
    gen  bigint NOT NULL
);
INSERT INTO list_gen (id, gen) VALUES (1, 0);
CREATE FUNCTION list_gen_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('imgapi.list_gen_moved', true) IS DISTINCT FROM 'on' THEN
        UPDATE list_gen SET gen = gen + 1 WHERE id = 1;
        PERFORM set_config('imgapi.list_gen_moved', 'on', true);
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER list_gen_bump AFTER INSERT OR UPDATE OR DELETE ON images
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION list_gen_bump();
