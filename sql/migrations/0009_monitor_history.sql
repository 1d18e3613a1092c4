-- History of `dmdb monitor --record` (run from cron): a snapshot of the key figures per
-- run, and the size of each table and its indexes, so that the dashboard and the JSON
-- can show trends (growth per day, cache hit, dead tuples, connections). Its own schema,
-- apart from the application's tables; `--record` deletes snapshots older than its
-- --retention-days (90 by default), the sizes going with them (ON DELETE CASCADE).

CREATE SCHEMA dmdb_monitor;

COMMENT ON SCHEMA dmdb_monitor IS 'dmdb monitor --record: snapshots of key figures.';

CREATE TABLE dmdb_monitor.snapshots (
    snapshot_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    taken_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL,
    connections bigint NOT NULL,
    max_connections bigint NOT NULL,
    -- cumulative block counters (pg_statio_user_tables): the cache hit ratio between two
    -- snapshots is their difference, not the ratio since the statistics reset
    table_blocks_hit bigint NOT NULL,
    table_blocks_read bigint NOT NULL,
    index_blocks_hit bigint NOT NULL,
    index_blocks_read bigint NOT NULL,
    dead_tuples bigint NOT NULL,
    database_bytes bigint NOT NULL,
    CONSTRAINT snapshots_status_check
        CHECK (status IN ('OK', 'WARNING', 'CRITICAL', 'UNKNOWN'))
);

CREATE INDEX snapshots_taken_at_idx ON dmdb_monitor.snapshots (taken_at);

CREATE TABLE dmdb_monitor.table_sizes (
    snapshot_id bigint NOT NULL
        REFERENCES dmdb_monitor.snapshots (snapshot_id) ON DELETE CASCADE,
    schema_name text NOT NULL,
    table_name text NOT NULL,
    table_bytes bigint NOT NULL,
    index_bytes bigint NOT NULL,
    live_rows bigint NOT NULL,
    PRIMARY KEY (snapshot_id, schema_name, table_name)
);

DO $$
BEGIN
    -- The read-only role of 0001 (when it could be created) may read the history.
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'dm_readonly') THEN
        GRANT USAGE ON SCHEMA dmdb_monitor TO dm_readonly;
        GRANT SELECT ON dmdb_monitor.snapshots, dmdb_monitor.table_sizes TO dm_readonly;
    END IF;
END
$$;
