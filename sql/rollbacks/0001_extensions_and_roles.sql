-- Rollback of 0001: run the undo statement of every change 0001 recorded in
-- dmdb_bootstrap, newest first, then drop the record. Changes 0001 did not make
-- (a pg_stat_statements or a grant that was there before) are left alone, and the
-- group roles stay: they are cluster-wide and other databases may use them.

DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT undo_sql FROM dmdb_bootstrap WHERE undo_sql IS NOT NULL ORDER BY step DESC
    LOOP
        EXECUTE r.undo_sql;
    END LOOP;
END
$do$;

DROP TABLE dmdb_bootstrap;
