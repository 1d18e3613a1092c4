-- Rollback of 0014: the event feed's publication, tables and columns. Consumers'
-- positions and the tombstones not yet pruned are dropped with them.

DROP PUBLICATION dmdb_events;

DROP TABLE event_consumers;

DROP TABLE event_tombstones;

ALTER TABLE algorithm_settings DROP COLUMN events_notify;

ALTER TABLE learning_events
    DROP COLUMN scheduler,
    DROP COLUMN next_review_at,
    DROP COLUMN recorded_at,
    DROP COLUMN feed_tx;

ALTER TABLE users DROP COLUMN feed_tx;
