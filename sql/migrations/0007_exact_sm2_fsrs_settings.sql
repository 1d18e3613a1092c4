-- Learning algorithms (issue #16): SM-2's easiness held exactly, FSRS-6 state beside
-- SM-2's, the per-deployment settings of the algorithms, and fitted BKT parameters per
-- concept (issue #18 writes them, record_answer(s) read them for new knowledge states).
--
-- 1. review_schedule.easiness: double precision → numeric, two decimals.
--    SM-2's easiness factor starts at 2.5 and moves by +0.10, 0, −0.14, −0.32, −0.54 or
--    −0.80 with a floor of 1.3: every value it can take is 1.30 + 0.02·k. In double
--    precision those steps drift (1.3 + 0.1 + 0.1 = 1.5000000000000002), and
--    ceil(6 × 1.5000000000000002) = 10 where SM-2 gives 9. Stored values are converted
--    to the nearest 0.02 step, round(EF × 50) / 50: a drifted value is within 1e-12 of
--    its step, so this restores the exact value SM-2 arithmetic gives. A value written
--    off the grid by hand moves to the nearest step too (a tie, e.g. 2.37, goes up).
--    The CHECK keeps values exact to the hundredth (a value with more decimals is
--    refused, not rounded), finite, not NaN, and at least 1.3; EF has no upper bound.
--    The type change rewrites review_schedule and its indexes under ACCESS EXCLUSIVE:
--    answers wait for it (measured: about 1 s per million rows on the development
--    machine); run it in a quiet window on a large deployment.
-- 2. FSRS-6 state per (user, item) on review_schedule (all NULL until the pair's first
--    answer after this migration; FSRS then starts it as a new card):
--      fsrs_state 1 Learning | 2 Review | 3 Relearning, fsrs_step (learning or
--      relearning step, NULL in Review), fsrs_stability (days), fsrs_difficulty (1..10),
--      fsrs_due (FSRS's own next review).
--    sm2_due is SM-2's own next review. next_review_at (read by next_questions and its
--    index) is the due of the scheduler chosen in algorithm_settings; both states are
--    kept current on every answer, so switching schedulers loses nothing (docs/algorithms.md).
--    Adding nullable columns without a default only changes the catalog.
-- 3. algorithm_settings: one row, the deployment's choices: scheduler ('sm2' default),
--    the FSRS-6 parameters, desired retention, learning/relearning steps (seconds),
--    maximum interval, and the bounds on answer times (future skew, earliest time).
-- 4. bkt_concept_parameters: fitted BKT parameters per concept; a NEW knowledge_states
--    row takes its parameters (and its starting mastery = initial_knowledge) from here.

-- The CHECK and the default are dropped only to be re-created for numeric below, in
-- this same transaction: no client ever sees the column without them.
-- squawk-ignore ban-drop-constraint
ALTER TABLE review_schedule DROP CONSTRAINT review_schedule_easiness_check;

-- squawk-ignore ban-drop-default
ALTER TABLE review_schedule ALTER COLUMN easiness DROP DEFAULT;

-- squawk-ignore changing-column-type
ALTER TABLE review_schedule ALTER COLUMN easiness TYPE numeric
    USING round(round((easiness * 50)::numeric) / 50, 2);

ALTER TABLE review_schedule ALTER COLUMN easiness SET DEFAULT 2.5;

-- The table was just rewritten under ACCESS EXCLUSIVE: validating here costs one scan
-- and blocks no one who is not already waiting.
-- squawk-ignore constraint-missing-not-valid
ALTER TABLE review_schedule ADD CONSTRAINT review_schedule_easiness_check
    CHECK (easiness >= 1.3 AND easiness < 'Infinity' AND easiness = round(easiness, 2));

ALTER TABLE review_schedule ADD COLUMN sm2_due timestamptz;

ALTER TABLE review_schedule ADD COLUMN fsrs_state smallint
    CONSTRAINT review_schedule_fsrs_state_check CHECK (fsrs_state BETWEEN 1 AND 3);

ALTER TABLE review_schedule ADD COLUMN fsrs_step smallint
    CONSTRAINT review_schedule_fsrs_step_check CHECK (fsrs_step >= 0);

ALTER TABLE review_schedule ADD COLUMN fsrs_stability double precision
    CONSTRAINT review_schedule_fsrs_stability_check
        CHECK (fsrs_stability >= 0.001 AND fsrs_stability < 'Infinity');

ALTER TABLE review_schedule ADD COLUMN fsrs_difficulty double precision
    CONSTRAINT review_schedule_fsrs_difficulty_check CHECK (fsrs_difficulty BETWEEN 1 AND 10);

ALTER TABLE review_schedule ADD COLUMN fsrs_due timestamptz;

CREATE TABLE algorithm_settings (
    singleton boolean PRIMARY KEY DEFAULT true,
    scheduler text NOT NULL DEFAULT 'sm2',
    fsrs_parameters double precision[] NOT NULL DEFAULT
        '{0.212,1.2931,2.3065,8.2956,6.4133,0.8334,3.0194,0.001,1.8722,0.1666,0.796,1.4835,0.0614,0.2629,1.6483,0.6014,1.8729,0.5425,0.0912,0.0658,0.1542}',
    fsrs_desired_retention double precision NOT NULL DEFAULT 0.9,
    fsrs_learning_steps integer[] NOT NULL DEFAULT '{60,600}',
    fsrs_relearning_steps integer[] NOT NULL DEFAULT '{600}',
    fsrs_maximum_interval integer NOT NULL DEFAULT 36500,
    answer_max_future_skew interval NOT NULL DEFAULT '5 minutes',
    answer_earliest_at timestamptz NOT NULL DEFAULT '2000-01-01 00:00:00+00',
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT algorithm_settings_singleton_check CHECK (singleton),
    CONSTRAINT algorithm_settings_scheduler_check CHECK (scheduler IN ('sm2', 'fsrs')),
    -- py-fsrs 6.3.2's bounds for each of the 21 parameters.
    CONSTRAINT algorithm_settings_fsrs_parameters_check CHECK (
        array_ndims(fsrs_parameters) = 1 AND array_lower(fsrs_parameters, 1) = 1
        AND cardinality(fsrs_parameters) = 21
        AND fsrs_parameters[1] BETWEEN 0.001 AND 100.0
        AND fsrs_parameters[2] BETWEEN 0.001 AND 100.0
        AND fsrs_parameters[3] BETWEEN 0.001 AND 100.0
        AND fsrs_parameters[4] BETWEEN 0.001 AND 100.0
        AND fsrs_parameters[5] BETWEEN 1.0 AND 10.0
        AND fsrs_parameters[6] BETWEEN 0.001 AND 4.0
        AND fsrs_parameters[7] BETWEEN 0.001 AND 4.0
        AND fsrs_parameters[8] BETWEEN 0.001 AND 0.75
        AND fsrs_parameters[9] BETWEEN 0.0 AND 4.5
        AND fsrs_parameters[10] BETWEEN 0.0 AND 0.8
        AND fsrs_parameters[11] BETWEEN 0.001 AND 3.5
        AND fsrs_parameters[12] BETWEEN 0.001 AND 5.0
        AND fsrs_parameters[13] BETWEEN 0.001 AND 0.25
        AND fsrs_parameters[14] BETWEEN 0.001 AND 0.9
        AND fsrs_parameters[15] BETWEEN 0.0 AND 4.0
        AND fsrs_parameters[16] BETWEEN 0.0 AND 1.0
        AND fsrs_parameters[17] BETWEEN 1.0 AND 6.0
        AND fsrs_parameters[18] BETWEEN 0.0 AND 2.0
        AND fsrs_parameters[19] BETWEEN 0.0 AND 2.0
        AND fsrs_parameters[20] BETWEEN 0.0 AND 0.8
        AND fsrs_parameters[21] BETWEEN 0.1 AND 0.8),
    CONSTRAINT algorithm_settings_fsrs_desired_retention_check
        CHECK (fsrs_desired_retention > 0 AND fsrs_desired_retention < 1),
    -- Steps in whole seconds, each positive; an empty list is allowed (as in py-fsrs).
    CONSTRAINT algorithm_settings_fsrs_learning_steps_check
        CHECK (coalesce(array_ndims(fsrs_learning_steps), 1) = 1
               AND cardinality(fsrs_learning_steps) <= 32
               AND array_position(fsrs_learning_steps, NULL) IS NULL
               AND 0 < ALL (fsrs_learning_steps)),
    CONSTRAINT algorithm_settings_fsrs_relearning_steps_check
        CHECK (coalesce(array_ndims(fsrs_relearning_steps), 1) = 1
               AND cardinality(fsrs_relearning_steps) <= 32
               AND array_position(fsrs_relearning_steps, NULL) IS NULL
               AND 0 < ALL (fsrs_relearning_steps)),
    CONSTRAINT algorithm_settings_fsrs_maximum_interval_check
        CHECK (fsrs_maximum_interval BETWEEN 1 AND 36500),
    CONSTRAINT algorithm_settings_answer_max_future_skew_check
        CHECK (answer_max_future_skew >= interval '0' AND answer_max_future_skew <= interval '7 days'),
    CONSTRAINT algorithm_settings_answer_earliest_at_check CHECK (isfinite(answer_earliest_at))
);

COMMENT ON TABLE algorithm_settings IS
    'One row: the scheduler (sm2|fsrs), FSRS-6 settings, and the bounds on answer times.';

INSERT INTO algorithm_settings DEFAULT VALUES;

CREATE TABLE bkt_concept_parameters (
    concept_id bigint PRIMARY KEY REFERENCES concepts (concept_id) ON DELETE CASCADE,
    initial_knowledge double precision NOT NULL,
    learning_rate double precision NOT NULL,
    guess_parameter double precision NOT NULL,
    slip_parameter double precision NOT NULL,
    temporal_decay double precision NOT NULL,
    fitted_at timestamptz NOT NULL DEFAULT now(),
    answers_used bigint NOT NULL DEFAULT 0,
    CONSTRAINT bkt_concept_parameters_initial_knowledge_check
        CHECK (initial_knowledge BETWEEN 0 AND 1),
    CONSTRAINT bkt_concept_parameters_learning_rate_check CHECK (learning_rate BETWEEN 0 AND 1),
    CONSTRAINT bkt_concept_parameters_guess_parameter_check
        CHECK (guess_parameter BETWEEN 0 AND 0.5),
    CONSTRAINT bkt_concept_parameters_slip_parameter_check CHECK (slip_parameter BETWEEN 0 AND 0.5),
    CONSTRAINT bkt_concept_parameters_temporal_decay_check CHECK (temporal_decay BETWEEN 0.9 AND 1),
    CONSTRAINT bkt_concept_parameters_guess_slip_check CHECK (guess_parameter + slip_parameter < 1),
    CONSTRAINT bkt_concept_parameters_answers_used_check CHECK (answers_used >= 0)
);

COMMENT ON TABLE bkt_concept_parameters IS
    'Fitted BKT parameters per concept; new knowledge_states rows start from them.';
