-- Support for rollup_learning_events() (sql/functions/rollup.sql): the watermark it
-- advances, and an index to find the events above it.
--
-- rollup_watermarks holds one row per incremental rollup: every question_answered
-- event with event_id <= last_event_id has been added to content's counters and to
-- bandit_arms, and none above it. The row is also the rollup's mutex (FOR UPDATE).
--
-- learning_events_event_id_brin_idx: "events with event_id in (watermark, high-water]"
-- without a scan of every partition. event_id comes from one sequence, so within each
-- partition it rises with the physical order of the rows: a BRIN index is a few pages
-- and costs almost nothing per insert (the busiest table keeps its two other indexes
-- only). The table is new or small when this runs (it was created in 0004), so the
-- index is built in the migration's transaction.

CREATE TABLE rollup_watermarks (
    name text PRIMARY KEY,
    last_event_id bigint NOT NULL DEFAULT 0,
    events_processed bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rollup_watermarks_last_event_id_check CHECK (last_event_id >= 0),
    CONSTRAINT rollup_watermarks_events_processed_check CHECK (events_processed >= 0)
);

COMMENT ON TABLE rollup_watermarks IS
    'Incremental rollups: events with event_id <= last_event_id are rolled up.';

INSERT INTO rollup_watermarks (name) VALUES ('content_stats');

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX learning_events_event_id_brin_idx ON learning_events USING brin (event_id);
