-- Learner state: knowledge_states (BKT), review_schedule (SM-2), sessions, bandit arms.
--
-- BKT knowledge per (user, concept), SM-2 review schedule per (user, content item),
-- learning sessions, and the multi-armed-bandit arm of each content item.
--
-- knowledge_states is HASH partitioned by user_id into 8 partitions, so one learner's
-- rows live in one partition and a user_id = $1 lookup touches only it. It and
-- review_schedule are updated on every answer: fillfactor 80 leaves room on the page
-- for HOT updates. bandit_arms is written only by the roll-up from learning_events.

CREATE TABLE knowledge_states (
    user_id bigint NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    concept_id bigint NOT NULL REFERENCES concepts (concept_id),
    initial_knowledge double precision NOT NULL DEFAULT 0.1,
    learning_rate double precision NOT NULL DEFAULT 0.15,
    guess_parameter double precision NOT NULL DEFAULT 0.2,
    slip_parameter double precision NOT NULL DEFAULT 0.1,
    mastery_probability double precision NOT NULL DEFAULT 0.1,
    temporal_decay double precision NOT NULL DEFAULT 0.98,
    personal_learning_velocity double precision NOT NULL DEFAULT 1,
    last_interaction timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    correct_attempts integer NOT NULL DEFAULT 0,
    mastered_at timestamptz,
    PRIMARY KEY (user_id, concept_id),
    CONSTRAINT knowledge_states_initial_knowledge_check CHECK (initial_knowledge BETWEEN 0 AND 1),
    CONSTRAINT knowledge_states_learning_rate_check CHECK (learning_rate BETWEEN 0 AND 1),
    CONSTRAINT knowledge_states_guess_parameter_check CHECK (guess_parameter BETWEEN 0 AND 0.5),
    CONSTRAINT knowledge_states_slip_parameter_check CHECK (slip_parameter BETWEEN 0 AND 0.5),
    CONSTRAINT knowledge_states_mastery_probability_check
        CHECK (mastery_probability BETWEEN 0 AND 1),
    CONSTRAINT knowledge_states_temporal_decay_check CHECK (temporal_decay BETWEEN 0.9 AND 1),
    CONSTRAINT knowledge_states_personal_learning_velocity_check
        CHECK (personal_learning_velocity > 0 AND personal_learning_velocity < 'Infinity'),
    CONSTRAINT knowledge_states_attempts_check
        CHECK (attempts >= 0 AND correct_attempts >= 0 AND correct_attempts <= attempts)
) PARTITION BY HASH (user_id);

CREATE TABLE knowledge_states_p0 PARTITION OF knowledge_states
    FOR VALUES WITH (MODULUS 8, REMAINDER 0) WITH (fillfactor = 80);

CREATE TABLE knowledge_states_p1 PARTITION OF knowledge_states
    FOR VALUES WITH (MODULUS 8, REMAINDER 1) WITH (fillfactor = 80);

CREATE TABLE knowledge_states_p2 PARTITION OF knowledge_states
    FOR VALUES WITH (MODULUS 8, REMAINDER 2) WITH (fillfactor = 80);

CREATE TABLE knowledge_states_p3 PARTITION OF knowledge_states
    FOR VALUES WITH (MODULUS 8, REMAINDER 3) WITH (fillfactor = 80);

CREATE TABLE knowledge_states_p4 PARTITION OF knowledge_states
    FOR VALUES WITH (MODULUS 8, REMAINDER 4) WITH (fillfactor = 80);

CREATE TABLE knowledge_states_p5 PARTITION OF knowledge_states
    FOR VALUES WITH (MODULUS 8, REMAINDER 5) WITH (fillfactor = 80);

CREATE TABLE knowledge_states_p6 PARTITION OF knowledge_states
    FOR VALUES WITH (MODULUS 8, REMAINDER 6) WITH (fillfactor = 80);

CREATE TABLE knowledge_states_p7 PARTITION OF knowledge_states
    FOR VALUES WITH (MODULUS 8, REMAINDER 7) WITH (fillfactor = 80);

-- Query pattern: user_id = $1 AND mastery_probability > 0.8 ORDER BY last_interaction
-- DESC; also "the concepts this user has mastered" for question selection, index-only
-- thanks to INCLUDE (concept_id). The primary key (user_id, concept_id) serves point
-- lookups and the per-user scan; this one narrows to the mastered rows.
CREATE INDEX knowledge_states_user_mastery_idx
    ON knowledge_states (user_id, mastery_probability) INCLUDE (concept_id);

CREATE TABLE review_schedule (
    user_id bigint NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    content_id bigint NOT NULL REFERENCES content (content_id) ON DELETE CASCADE,
    easiness double precision NOT NULL DEFAULT 2.5,
    interval_days integer NOT NULL DEFAULT 0,
    repetitions integer NOT NULL DEFAULT 0,
    next_review_at timestamptz,
    last_quality smallint,
    last_reviewed_at timestamptz,
    PRIMARY KEY (user_id, content_id),
    -- NaN compares greater than every number (even Infinity) in PostgreSQL: bounding
    -- above by Infinity keeps NaN and Infinity out of the open-ended ranges.
    CONSTRAINT review_schedule_easiness_check CHECK (easiness >= 1.3 AND easiness < 'Infinity'),
    CONSTRAINT review_schedule_interval_days_check CHECK (interval_days >= 0),
    CONSTRAINT review_schedule_repetitions_check CHECK (repetitions >= 0),
    CONSTRAINT review_schedule_last_quality_check CHECK (last_quality BETWEEN 0 AND 5)
) WITH (fillfactor = 80);

-- A user's due reviews, most overdue first (next_review_at <= now() ORDER BY
-- next_review_at), index-only thanks to INCLUDE (content_id).
CREATE INDEX review_schedule_user_due_idx
    ON review_schedule (user_id, next_review_at) INCLUDE (content_id);

CREATE TABLE learning_sessions (
    session_id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    started_at timestamptz NOT NULL,
    ended_at timestamptz,
    device text,
    CONSTRAINT learning_sessions_ended_after_started_check CHECK (ended_at >= started_at)
);

-- A user's sessions, latest first (and the FK check when a user is deleted).
CREATE INDEX learning_sessions_user_started_idx ON learning_sessions (user_id, started_at);

CREATE TABLE bandit_arms (
    content_id bigint PRIMARY KEY REFERENCES content (content_id) ON DELETE CASCADE,
    concept_id bigint NOT NULL REFERENCES concepts (concept_id),
    pulls bigint NOT NULL DEFAULT 0,
    reward_sum double precision NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bandit_arms_pulls_check CHECK (pulls >= 0),
    CONSTRAINT bandit_arms_reward_sum_check
        CHECK (reward_sum > '-Infinity' AND reward_sum < 'Infinity')  -- finite, not NaN
) WITH (fillfactor = 90);

-- UCB1 needs N = pulls over a concept's arms: index-only with INCLUDE.
CREATE INDEX bandit_arms_concept_idx ON bandit_arms (concept_id) INCLUDE (pulls, reward_sum);
