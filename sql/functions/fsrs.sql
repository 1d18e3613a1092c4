-- FSRS-6 (Free Spaced Repetition Scheduler, version 6) beside SM-2, per (user, item).
--
-- The reference is py-fsrs 6.3.2's Scheduler with fuzzing off (tests/test_fsrs.py checks
-- equality on over 10,000 generated review sequences: intervals exact, stability and
-- difficulty to 1e-9). Every formula below is that package's, evaluated in double
-- precision in the same order of operations (e^x as power(e, x) with the same constant
-- e = 2.718281828459045), so the results agree to the last bit wherever libm agrees:
--
--   w = the 21 parameters (algorithm_settings.fsrs_parameters, 1-based here: w[i+1] is
--   py-fsrs' parameters[i]); DECAY = −w20; FACTOR = 0.9^(1/DECAY) − 1.
--   retrievability R = (1 + FACTOR · elapsed_days / S)^DECAY, elapsed_days = whole days
--     since the last review (floor, ≥ 0);
--   initial S = max(w[rating−1], 0.001); initial D = w4 − e^(w5·(rating−1)) + 1,
--     clamped to [1, 10];
--   next D = w7·D0(Easy) + (1 − w7)·(D + (10 − D)·(−w6·(rating − 3))/9), clamped to [1, 10];
--   recall S' = S·(1 + e^w8·(11 − D)·S^−w9·(e^((1 − R)·w10) − 1)·(w15 if Hard)·(w16 if Easy));
--   forget S' = min(w11·D^−w12·((S + 1)^w13 − 1)·e^((1 − R)·w14), S / e^(w17·w18));
--   short-term S' (a review less than one whole day after the last one) =
--     S·e^(w17·(rating − 3 + w18))·S^−w19, the factor at least 1 unless Again;
--   S' ≥ 0.001 always;
--   interval = round_half_even(S / FACTOR · (retention^(1/DECAY) − 1)) days, at least 1,
--     at most maximum_interval.
--   States: 1 Learning (a new card, step 0), 2 Review, 3 Relearning. In (re)learning
--   the steps decide the next due: Again → step 0; Hard → the step's own delay (at step
--   0: 1.5 × the only step, or the mean of the first two); Good → the next step, or
--   Review after the last; Easy → Review. A card whose step is beyond the configured
--   steps (the steps were shortened) graduates on Hard/Good/Easy. In Review, Again
--   goes to Relearning step 0 (or stays in Review when there are no relearning steps).
--
-- Out-of-order answers (older than the pair's last review): whole days since the last
-- review is then < 1, so the short-term formula applies, as in py-fsrs; the last review
-- time kept is the later one (review_schedule.last_reviewed_at), the project's rule.
--
-- The rating comes from SM-2's quality (fsrs_rating): 0..2 → Again (1), 3 → Hard (2),
-- 4 → Good (3), 5 → Easy (4).

CREATE OR REPLACE FUNCTION fsrs_rating(p_quality integer) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT (CASE WHEN p_quality < 3 THEN 1 WHEN p_quality = 3 THEN 2
                 WHEN p_quality = 4 THEN 3 WHEN p_quality IS NOT NULL THEN 4 END)::smallint
$$;

COMMENT ON FUNCTION fsrs_rating(integer) IS
    'FSRS rating from SM-2 quality: 0..2 Again(1), 3 Hard(2), 4 Good(3), 5 Easy(4).';

-- Days FSRS schedules for stability S (round half to even, then 1..maximum).
CREATE OR REPLACE FUNCTION fsrs_interval_days(
    p_stability double precision,
    p_w double precision[],
    p_desired_retention double precision,
    p_maximum_interval integer
) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT least(greatest(round(
               (p_stability / (power(0.9::double precision, 1 / (-p_w[21])) - 1))
               * (power(p_desired_retention, 1 / (-p_w[21])) - 1)), 1), p_maximum_interval)::integer
$$;

-- Retrievability after p_elapsed_days whole days at stability S.
CREATE OR REPLACE FUNCTION fsrs_retrievability(
    p_stability double precision,
    p_elapsed_days integer,
    p_w double precision[]
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT power(1 + (power(0.9::double precision, 1 / (-p_w[21])) - 1) * greatest(p_elapsed_days, 0)
                     / p_stability,
                 -p_w[21])
$$;

-- One review. p_state NULL = a new card. Returns the card after the review: state,
-- step (NULL in Review), stability, difficulty, and the due time.
CREATE OR REPLACE FUNCTION fsrs_step(
    p_state smallint,
    p_step smallint,
    p_stability double precision,
    p_difficulty double precision,
    p_last_review timestamptz,
    p_rating integer,
    p_reviewed_at timestamptz,
    p_w double precision[],
    p_desired_retention double precision,
    p_learning_steps integer[],
    p_relearning_steps integer[],
    p_maximum_interval integer,
    OUT state smallint,
    OUT step smallint,
    OUT stability double precision,
    OUT difficulty double precision,
    OUT due timestamptz
)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    c_e CONSTANT double precision := 2.718281828459045;  -- Python's math.e
    v_days bigint;           -- whole days since the last review (floor), NULL for a new card
    v_r double precision;    -- retrievability at this review
    v_steps integer[];
    v_n integer;
    v_sinc double precision;
    v_delay interval;        -- the next due, as a delay
BEGIN
    IF p_rating IS NULL OR p_rating NOT BETWEEN 1 AND 4 THEN
        RAISE EXCEPTION 'fsrs_step: rating % is outside 1..4', p_rating USING ERRCODE = '22023';
    END IF;
    IF p_reviewed_at IS NULL OR NOT isfinite(p_reviewed_at) THEN
        RAISE EXCEPTION 'fsrs_step: review time must be a finite timestamp' USING ERRCODE = '22023';
    END IF;
    state := coalesce(p_state, 1);
    step := CASE WHEN p_state IS NULL THEN 0 ELSE p_step END;
    IF p_last_review IS NOT NULL THEN
        v_days := floor(extract(epoch FROM p_reviewed_at - p_last_review) / 86400);
    END IF;

    -- Stability and difficulty.
    IF p_state IS NULL OR p_stability IS NULL OR p_difficulty IS NULL THEN
        stability := greatest(p_w[p_rating], 0.001);
        difficulty := least(greatest(p_w[5] - power(c_e, p_w[6] * (p_rating - 1)) + 1, 1), 10);
    ELSE
        IF v_days IS NOT NULL AND v_days < 1 THEN
            -- short-term stability
            v_sinc := power(c_e, p_w[18] * ((p_rating - 3) + p_w[19])) * power(p_stability, -p_w[20]);
            IF p_rating > 1 THEN
                v_sinc := greatest(v_sinc, 1.0);
            END IF;
            stability := greatest(p_stability * v_sinc, 0.001);
        ELSE
            -- py-fsrs: no last review → retrievability 0 (unreachable here: every answer
            -- sets last_reviewed_at, but a hand-made state might lack it)
            v_r := CASE WHEN v_days IS NULL THEN 0
                        ELSE fsrs_retrievability(p_stability, greatest(v_days, 0)::integer, p_w) END;
            IF p_rating = 1 THEN
                stability := least(
                    p_w[12] * power(p_difficulty, -p_w[13]) * (power(p_stability + 1, p_w[14]) - 1)
                        * power(c_e, (1 - v_r) * p_w[15]),
                    p_stability / power(c_e, p_w[18] * p_w[19]));
            ELSE
                stability := p_stability * (1 + power(c_e, p_w[9]) * (11 - p_difficulty)
                    * power(p_stability, -p_w[10]) * (power(c_e, (1 - v_r) * p_w[11]) - 1)
                    * CASE WHEN p_rating = 2 THEN p_w[16] ELSE 1 END
                    * CASE WHEN p_rating = 4 THEN p_w[17] ELSE 1 END);
            END IF;
            stability := greatest(stability, 0.001);
        END IF;
        difficulty := least(greatest(
            p_w[8] * (p_w[5] - power(c_e, p_w[6] * 3) + 1)
            + (1 - p_w[8]) * (p_difficulty
                              + (10.0 - p_difficulty) * (-(p_w[7] * (p_rating - 3))) / 9.0),
            1), 10);
    END IF;

    -- The next due.
    IF state = 2 THEN
        IF p_rating = 1 AND cardinality(p_relearning_steps) > 0 THEN
            state := 3;
            step := 0;
            v_delay := make_interval(secs => p_relearning_steps[1]);
        ELSE
            v_delay := fsrs_interval_days(stability, p_w, p_desired_retention, p_maximum_interval)
                       * interval '24 hours';
        END IF;
    ELSE
        v_steps := CASE WHEN state = 1 THEN p_learning_steps ELSE p_relearning_steps END;
        v_n := coalesce(cardinality(v_steps), 0);
        IF v_n = 0 OR (step >= v_n AND p_rating > 1) OR p_rating = 4
           OR (p_rating = 3 AND step + 1 = v_n) THEN
            state := 2;
            step := NULL;
            v_delay := fsrs_interval_days(stability, p_w, p_desired_retention, p_maximum_interval)
                       * interval '24 hours';
        ELSIF p_rating = 1 THEN
            step := 0;
            v_delay := make_interval(secs => v_steps[1]);
        ELSIF p_rating = 2 THEN
            IF step = 0 AND v_n = 1 THEN
                v_delay := make_interval(secs => v_steps[1] * 1.5);
            ELSIF step = 0 THEN
                v_delay := make_interval(secs => (v_steps[1] + v_steps[2]) / 2.0);
            ELSE
                v_delay := make_interval(secs => v_steps[step + 1]);
            END IF;
        ELSE  -- Good, not the last step
            step := step + 1;
            v_delay := make_interval(secs => v_steps[step + 1]);
        END IF;
    END IF;
    due := p_reviewed_at + v_delay;
END;
$$;

COMMENT ON FUNCTION fsrs_step(smallint, smallint, double precision, double precision, timestamptz,
                              integer, timestamptz, double precision[], double precision, integer[],
                              integer[], integer) IS
    'FSRS-6 review (py-fsrs 6.3.2, no fuzz): the card''s state, step, stability, difficulty, due.';
