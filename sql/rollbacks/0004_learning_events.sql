-- Rollback of 0004: drop learning_events with every partition. Its event_id sequence is
-- OWNED BY learning_events.event_id, so it goes with the table.

DROP TABLE learning_events;
