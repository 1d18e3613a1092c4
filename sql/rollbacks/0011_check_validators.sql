-- transactional: false
-- Inverse of 0011: the 16 CHECK constraints of 0003/0007, with their names and
-- expressions, back on knowledge_states and review_schedule, then the row validators
-- dropped. Same lock pattern as the forward file: ADD ... NOT VALID (an
-- instant of ACCESS EXCLUSIVE), VALIDATE (SHARE UPDATE EXCLUSIVE, scans), DROP (an
-- instant); every statement can run again.

ALTER TABLE review_schedule
    DROP CONSTRAINT IF EXISTS review_schedule_easiness_check,
    ADD CONSTRAINT review_schedule_easiness_check CHECK (easiness >= 1.3 AND easiness < 'Infinity' AND easiness = round(easiness, 2)) NOT VALID,
    DROP CONSTRAINT IF EXISTS review_schedule_fsrs_difficulty_check,
    ADD CONSTRAINT review_schedule_fsrs_difficulty_check CHECK (fsrs_difficulty BETWEEN 1 AND 10) NOT VALID,
    DROP CONSTRAINT IF EXISTS review_schedule_fsrs_stability_check,
    ADD CONSTRAINT review_schedule_fsrs_stability_check CHECK (fsrs_stability >= 0.001 AND fsrs_stability < 'Infinity') NOT VALID,
    DROP CONSTRAINT IF EXISTS review_schedule_fsrs_state_check,
    ADD CONSTRAINT review_schedule_fsrs_state_check CHECK (fsrs_state BETWEEN 1 AND 3) NOT VALID,
    DROP CONSTRAINT IF EXISTS review_schedule_fsrs_step_check,
    ADD CONSTRAINT review_schedule_fsrs_step_check CHECK (fsrs_step >= 0) NOT VALID,
    DROP CONSTRAINT IF EXISTS review_schedule_interval_days_check,
    ADD CONSTRAINT review_schedule_interval_days_check CHECK (interval_days >= 0) NOT VALID,
    DROP CONSTRAINT IF EXISTS review_schedule_last_quality_check,
    ADD CONSTRAINT review_schedule_last_quality_check CHECK (last_quality BETWEEN 0 AND 5) NOT VALID,
    DROP CONSTRAINT IF EXISTS review_schedule_repetitions_check,
    ADD CONSTRAINT review_schedule_repetitions_check CHECK (repetitions >= 0) NOT VALID;

ALTER TABLE review_schedule VALIDATE CONSTRAINT review_schedule_easiness_check;
ALTER TABLE review_schedule VALIDATE CONSTRAINT review_schedule_fsrs_difficulty_check;
ALTER TABLE review_schedule VALIDATE CONSTRAINT review_schedule_fsrs_stability_check;
ALTER TABLE review_schedule VALIDATE CONSTRAINT review_schedule_fsrs_state_check;
ALTER TABLE review_schedule VALIDATE CONSTRAINT review_schedule_fsrs_step_check;
ALTER TABLE review_schedule VALIDATE CONSTRAINT review_schedule_interval_days_check;
ALTER TABLE review_schedule VALIDATE CONSTRAINT review_schedule_last_quality_check;
ALTER TABLE review_schedule VALIDATE CONSTRAINT review_schedule_repetitions_check;

ALTER TABLE review_schedule DROP CONSTRAINT IF EXISTS review_schedule_row_check;

DROP FUNCTION IF EXISTS check_review_schedule_row(oid, numeric, integer, integer, smallint, smallint, smallint, double precision, double precision);

ALTER TABLE knowledge_states
    DROP CONSTRAINT IF EXISTS knowledge_states_attempts_check,
    ADD CONSTRAINT knowledge_states_attempts_check CHECK (attempts >= 0 AND correct_attempts >= 0 AND correct_attempts <= attempts) NOT VALID,
    DROP CONSTRAINT IF EXISTS knowledge_states_guess_parameter_check,
    ADD CONSTRAINT knowledge_states_guess_parameter_check CHECK (guess_parameter BETWEEN 0 AND 0.5) NOT VALID,
    DROP CONSTRAINT IF EXISTS knowledge_states_initial_knowledge_check,
    ADD CONSTRAINT knowledge_states_initial_knowledge_check CHECK (initial_knowledge BETWEEN 0 AND 1) NOT VALID,
    DROP CONSTRAINT IF EXISTS knowledge_states_learning_rate_check,
    ADD CONSTRAINT knowledge_states_learning_rate_check CHECK (learning_rate BETWEEN 0 AND 1) NOT VALID,
    DROP CONSTRAINT IF EXISTS knowledge_states_mastery_probability_check,
    ADD CONSTRAINT knowledge_states_mastery_probability_check CHECK (mastery_probability BETWEEN 0 AND 1) NOT VALID,
    DROP CONSTRAINT IF EXISTS knowledge_states_personal_learning_velocity_check,
    ADD CONSTRAINT knowledge_states_personal_learning_velocity_check CHECK (personal_learning_velocity > 0 AND personal_learning_velocity < 'Infinity') NOT VALID,
    DROP CONSTRAINT IF EXISTS knowledge_states_slip_parameter_check,
    ADD CONSTRAINT knowledge_states_slip_parameter_check CHECK (slip_parameter BETWEEN 0 AND 0.5) NOT VALID,
    DROP CONSTRAINT IF EXISTS knowledge_states_temporal_decay_check,
    ADD CONSTRAINT knowledge_states_temporal_decay_check CHECK (temporal_decay BETWEEN 0.9 AND 1) NOT VALID;

ALTER TABLE knowledge_states VALIDATE CONSTRAINT knowledge_states_attempts_check;
ALTER TABLE knowledge_states VALIDATE CONSTRAINT knowledge_states_guess_parameter_check;
ALTER TABLE knowledge_states VALIDATE CONSTRAINT knowledge_states_initial_knowledge_check;
ALTER TABLE knowledge_states VALIDATE CONSTRAINT knowledge_states_learning_rate_check;
ALTER TABLE knowledge_states VALIDATE CONSTRAINT knowledge_states_mastery_probability_check;
ALTER TABLE knowledge_states VALIDATE CONSTRAINT knowledge_states_personal_learning_velocity_check;
ALTER TABLE knowledge_states VALIDATE CONSTRAINT knowledge_states_slip_parameter_check;
ALTER TABLE knowledge_states VALIDATE CONSTRAINT knowledge_states_temporal_decay_check;

ALTER TABLE knowledge_states DROP CONSTRAINT IF EXISTS knowledge_states_row_check;

DROP FUNCTION IF EXISTS check_knowledge_states_row(oid, double precision, double precision, double precision, double precision, double precision, double precision, double precision, integer, integer);
