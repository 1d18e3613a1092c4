-- transactional: false
-- Rollback of 0016: the primary key on session_id alone again, its index built
-- CONCURRENTLY first. Fails (unique violation) if two learners now share a session_id,
-- which only a client supplying its own ids could have made.

CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS learning_sessions_session_key
    ON learning_sessions (session_id);

ALTER TABLE learning_sessions
    DROP CONSTRAINT IF EXISTS learning_sessions_pkey,
    ADD CONSTRAINT learning_sessions_pkey PRIMARY KEY USING INDEX learning_sessions_session_key;
