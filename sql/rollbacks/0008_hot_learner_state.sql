-- Rollback of 0008_hot_learner_state: the exact inverse of
-- sql/migrations/0008_hot_learner_state.sql, undoing its statements in reverse order
-- (the indexes as 0003 created them).

CREATE INDEX review_schedule_user_due_idx
    ON review_schedule (user_id, next_review_at) INCLUDE (content_id);

CREATE INDEX knowledge_states_user_mastery_idx
    ON knowledge_states (user_id, mastery_probability) INCLUDE (concept_id);
