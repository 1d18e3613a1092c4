-- The event feed (#26, docs/events.md): the learning events in commit order per learner,
-- at-least-once, resumable from a consumer's own position, without skipping.
--
-- The commit-safe cursor. Reading learning_events by event_id skips rows (ids are drawn
-- before commit: a later id can commit first) and by occurred_at misses late answers. So
-- each event row carries feed_tx, the id of the transaction that wrote it (xid8, never
-- wraps), and a reader takes only rows with feed_tx below pg_snapshot_xmin() of its
-- snapshot, in (feed_tx, event_id) order: every transaction with a smaller id has ended,
-- so no row can appear later below that horizon. A consumer's position is the
-- (feed_tx, event_id) of the last event it handled.
--
-- Commit order per learner. Transaction ids are handed out when a transaction first
-- writes, which may be before it waits for the learner's row lock (users, the lock every
-- writer of a learner's state holds to its commit): a transaction can get a smaller id
-- than one that commits before it. users.feed_tx keeps the feed_tx of the learner's last
-- events; a writer's events take greatest(its own id, users.feed_tx), so a learner's
-- events never go back in feed order, and ties fall to event_id, drawn under the lock.
-- A value above the writer's own id is still safe: while it is running, the horizon is
-- at most its own id.
--
-- What the feed carries that learning_events did not: recorded_at (when the row was
-- written: now(), the lag in seconds; occurred_at is the answer's time, which may be
-- old), next_review_at and scheduler (the schedule the answer produced, sm2 | fsrs).
-- Rows written before this migration have feed_tx NULL: they are not in the feed.
--
-- event_tombstones: one row when a learner is erased (emit_learner_erased(), events.sql):
-- their learning_events rows go with the users row (ON DELETE CASCADE), the tombstone
-- stays, so consumers learn to erase what they hold. Its ids come from the events'
-- sequence: one id space for the whole feed.
--
-- event_consumers: each consumer's position and its lag thresholds (dmdb monitor's
-- event_consumers check); lost_at marks a consumer whose unread events were pruned.
--
-- algorithm_settings.events_notify: when true, record_answer(s), start_session and
-- emit_learner_erased send one payload-less NOTIFY dmdb_events per transaction, a
-- wake-up for `dmdb events tail --wake`. Off by default: every notifying commit takes a
-- cluster-wide lock.
--
-- The publication dmdb_events lets a standard consumer (Debezium, Kafka Connect, any
-- pgoutput client) attach without dmdb, when the server runs with wal_level = logical:
-- inserts only (erasure arrives as a tombstone, not as deletes), partitions published as
-- learning_events. Without logical decoding it costs nothing (a catalog entry).
--
-- Locks: ADD COLUMN without a default, SET DEFAULT and ADD COLUMN with a constant
-- default change only the catalog (ACCESS EXCLUSIVE for an instant, retried by the
-- engine); the feed's index on learning_events is built in 0015 without blocking writers.

ALTER TABLE users ADD COLUMN feed_tx xid8;

ALTER TABLE learning_events
    ADD COLUMN feed_tx xid8,
    ADD COLUMN recorded_at timestamptz,
    ADD COLUMN next_review_at timestamptz,
    ADD COLUMN scheduler text;

ALTER TABLE learning_events
    ALTER COLUMN feed_tx SET DEFAULT pg_current_xact_id(),
    ALTER COLUMN recorded_at SET DEFAULT now();

ALTER TABLE algorithm_settings ADD COLUMN events_notify boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN learning_events.feed_tx IS
    'The event feed''s order: the writing transaction''s id, or the learner''s previous feed_tx when higher (0014).';

-- Keyed by the learner first, as every learner's row is (sharding by user_id: `dmdb lint
-- --citus`); event_id stays unique, drawn from the events' sequence.
CREATE TABLE event_tombstones (
    event_id bigint NOT NULL DEFAULT nextval('learning_events_event_id_seq'),
    feed_tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
    user_id bigint NOT NULL,
    erased_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    request_ref text,
    CONSTRAINT event_tombstones_pkey PRIMARY KEY (user_id, event_id),
    CONSTRAINT event_tombstones_request_ref_check CHECK (length(request_ref) <= 200)
);

COMMENT ON TABLE event_tombstones IS
    'The event feed''s learner_erased events: the learner''s id, never their data (0014).';

CREATE INDEX event_tombstones_feed_idx ON event_tombstones (feed_tx, event_id);

-- Tombstones tell every consumer to erase a learner: only the owner writes them.
REVOKE INSERT, UPDATE, DELETE ON event_tombstones FROM dm_app;

CREATE TABLE event_consumers (
    name text PRIMARY KEY,
    position_tx xid8 NOT NULL,
    position_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    advanced_at timestamptz,
    last_recorded_at timestamptz,
    events_handled bigint NOT NULL DEFAULT 0,
    warn_events bigint NOT NULL DEFAULT 100000,
    critical_events bigint NOT NULL DEFAULT 1000000,
    warn_seconds double precision NOT NULL DEFAULT 300,
    critical_seconds double precision NOT NULL DEFAULT 3600,
    lost_at timestamptz,
    lost_reason text,
    CONSTRAINT event_consumers_name_check CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,62}$'),
    CONSTRAINT event_consumers_position_id_check CHECK (position_id >= 0),
    CONSTRAINT event_consumers_events_handled_check CHECK (events_handled >= 0),
    CONSTRAINT event_consumers_events_thresholds_check
        CHECK (warn_events > 0 AND warn_events <= critical_events),
    CONSTRAINT event_consumers_seconds_thresholds_check
        CHECK (warn_seconds > 0 AND warn_seconds <= critical_seconds)
);

COMMENT ON TABLE event_consumers IS
    'The event feed''s consumers: each one''s position (feed_tx, event_id) and lag thresholds (0014).';

CREATE PUBLICATION dmdb_events FOR TABLE learning_events, event_tombstones
    WITH (publish = 'insert', publish_via_partition_root = true);
