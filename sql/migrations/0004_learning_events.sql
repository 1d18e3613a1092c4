-- learning_events: the append-only event log, RANGE partitioned by occurred_at.
--
-- One partition per calendar month in UTC, named learning_events_YYYY_MM and bounded
-- [YYYY-MM-01 00:00 UTC, next month 00:00 UTC); this migration creates the current month
-- and the next three (`dmdb partitions` keeps creating them ahead), plus
-- learning_events_default for rows outside every monthly range.
--
-- The primary key (user_id, occurred_at, event_id) carries the partition key and is led
-- by user_id: it serves "a user's events since $2, latest first" by itself (a backward
-- scan per surviving partition), so no other btree is added. event_id comes from a plain
-- sequence, shared by all partitions. concept_id, content_id and session_id have no
-- foreign keys: per-answer FK checks on shared rows would cost throughput; the
-- functions validate them.

CREATE SEQUENCE learning_events_event_id_seq AS bigint;

CREATE TABLE learning_events (
    event_id bigint NOT NULL DEFAULT nextval('learning_events_event_id_seq'),
    user_id bigint NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    occurred_at timestamptz NOT NULL,
    event_type text NOT NULL,
    concept_id bigint,
    content_id bigint,
    session_id bigint,
    is_correct boolean,
    response_time_ms integer,
    hints_used integer,
    quality smallint,
    mastery_before double precision,
    mastery_after double precision,
    response_data jsonb NOT NULL DEFAULT '{}',
    context_data jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (user_id, occurred_at, event_id),
    CONSTRAINT learning_events_event_type_check CHECK (event_type IN (
        'question_answered', 'session_started', 'session_ended', 'concept_mastered',
        'review_scheduled', 'achievement_unlocked')),
    CONSTRAINT learning_events_response_time_ms_check CHECK (response_time_ms >= 0),
    CONSTRAINT learning_events_hints_used_check CHECK (hints_used >= 0),
    CONSTRAINT learning_events_quality_check CHECK (quality BETWEEN 0 AND 5),
    CONSTRAINT learning_events_mastery_before_check CHECK (mastery_before BETWEEN 0 AND 1),
    CONSTRAINT learning_events_mastery_after_check CHECK (mastery_after BETWEEN 0 AND 1),
    CONSTRAINT learning_events_response_data_check CHECK (jsonb_typeof(response_data) = 'object'),
    CONSTRAINT learning_events_context_data_check CHECK (jsonb_typeof(context_data) = 'object')
) PARTITION BY RANGE (occurred_at);

ALTER SEQUENCE learning_events_event_id_seq OWNED BY learning_events.event_id;

-- Events by context (context_data @> '{"device": "ios"}'): containment only, so the
-- smaller jsonb_path_ops opclass. The only index besides the primary key: every index
-- here costs insert throughput on the busiest table.
CREATE INDEX learning_events_context_data_gin_idx
    ON learning_events USING gin (context_data jsonb_path_ops);

CREATE TABLE learning_events_default PARTITION OF learning_events DEFAULT;

DO $do$
DECLARE
    v_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
BEGIN
    FOR i IN 0..3 LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF learning_events FOR VALUES FROM (%L) TO (%L)',
            'learning_events_' || to_char(v_month + make_interval(months => i), 'YYYY_MM'),
            (v_month + make_interval(months => i)) AT TIME ZONE 'UTC',
            (v_month + make_interval(months => i + 1)) AT TIME ZONE 'UTC');
    END LOOP;
END
$do$;
