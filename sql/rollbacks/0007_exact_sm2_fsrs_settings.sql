-- Rollback of 0007_exact_sm2_fsrs_settings: the exact inverse of
-- sql/migrations/0007_exact_sm2_fsrs_settings.sql, undoing its statements in reverse order.
--
-- Data: the FSRS state, SM-2's own due time, the settings and the fitted BKT parameters
-- are dropped with their columns and tables. easiness goes back to double precision with
-- the value of its exact step (2.50 → 2.5): the drifted doubles the migration corrected
-- are not restored, they were errors. next_review_at keeps the due of the scheduler that
-- was chosen; after a rollback SM-2 schedules again, from each row's next answer.

DROP TABLE bkt_concept_parameters;

DROP TABLE algorithm_settings;

ALTER TABLE review_schedule DROP COLUMN fsrs_due;

ALTER TABLE review_schedule DROP COLUMN fsrs_difficulty;

ALTER TABLE review_schedule DROP COLUMN fsrs_stability;

ALTER TABLE review_schedule DROP COLUMN fsrs_step;

ALTER TABLE review_schedule DROP COLUMN fsrs_state;

ALTER TABLE review_schedule DROP COLUMN sm2_due;

ALTER TABLE review_schedule DROP CONSTRAINT review_schedule_easiness_check;

ALTER TABLE review_schedule ALTER COLUMN easiness DROP DEFAULT;

ALTER TABLE review_schedule ALTER COLUMN easiness TYPE double precision
    USING easiness::double precision;

ALTER TABLE review_schedule ALTER COLUMN easiness SET DEFAULT 2.5;

ALTER TABLE review_schedule ADD CONSTRAINT review_schedule_easiness_check
    CHECK (easiness >= 1.3 AND easiness < 'Infinity');
