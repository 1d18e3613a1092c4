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

-- One review as scalar functions. Two levels, one formula each:
--   the formulas: fsrs_initial_stability, fsrs_short_term_stability,
--     fsrs_forget_stability, fsrs_recall_stability, fsrs_initial_difficulty,
--     fsrs_reviewed_difficulty (with fsrs_retrievability, fsrs_interval_days above);
--   the card after a review: fsrs_next_stability, fsrs_next_difficulty,
--     fsrs_next_state, fsrs_next_step, fsrs_next_due, each a CASE choosing among them.
-- Every one is a single SQL expression (LANGUAGE sql, IMMUTABLE, not STRICT, no SET),
-- so the planner inlines it, helpers included, into the calling expression: a PL/pgSQL
-- loop (record_answers) pays no function call per review. Inlining also needs an
-- argument that is used twice or more inside to be cheap (a variable, a column, a short
-- expression): give fsrs_next_step and fsrs_next_due the new state and stability as
-- variables, not as nested fsrs_next_state(...) calls, and the rating as a variable
-- rather than fsrs_rating(quality), which would be copied into every use of it.
-- Neither rating nor time is checked here (fsrs_step checks them): a rating outside
-- 1..4 gives NULL or meaningless values.
--
-- Cost (bench/bench_fsrs.py): an inlined expression is prepared (ExecInitExpr) again
-- in each transaction that evaluates it, all its CASE branches included, and preparing
-- costs far more than evaluating. In a loop of many reviews in one transaction
-- (record_answers) the fsrs_next_* cost ~1 µs a review against ~3 µs for an fsrs_step
-- call; with one review per transaction (record_answer) fsrs_step is the cheaper,
-- ~22 µs against ~30, as only the branches it takes are prepared.
--
-- The floating-point expressions are those of fsrs_step before the split, in the same
-- order of operations, so the results agree to the last bit (tests/test_fsrs.py: the
-- scalars, fsrs_step and py-fsrs on the same reviews).

-- e^x as py-fsrs computes it: math.e ** x.
CREATE OR REPLACE FUNCTION fsrs_exp(p_x double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT power(2.718281828459045::double precision, p_x)  -- Python's math.e
$$;

-- Whole days since the last review, for the two uses FSRS makes of them: less than 1
-- (the short-term formula) or the elapsed days of the retrievability. The day field of
-- the difference (timestamptz - timestamptz gives days and a time under 24 hours):
-- floor(days) when the review is later; when it is earlier (an out-of-order answer)
-- truncated towards zero, so still below 1. NULL without a last review.
CREATE OR REPLACE FUNCTION fsrs_elapsed_days(
    p_last_review timestamptz,
    p_reviewed_at timestamptz
) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT date_part('day', p_reviewed_at - p_last_review)::integer
$$;

-- Retrievability at the review; 0 without a last review (py-fsrs' rule; unreachable
-- from record_answer(s), where every answer sets last_reviewed_at).
CREATE OR REPLACE FUNCTION fsrs_review_retrievability(
    p_stability double precision,
    p_last_review timestamptz,
    p_reviewed_at timestamptz,
    p_w double precision[]
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_last_review IS NULL THEN 0
                ELSE fsrs_retrievability(p_stability, fsrs_elapsed_days(p_last_review, p_reviewed_at),
                                         p_w) END
$$;

-- The first review of a new card.
CREATE OR REPLACE FUNCTION fsrs_initial_stability(p_rating integer, p_w double precision[])
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT greatest(p_w[p_rating], 0.001)
$$;

CREATE OR REPLACE FUNCTION fsrs_initial_difficulty(p_rating integer, p_w double precision[])
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT least(greatest(p_w[5] - fsrs_exp(p_w[6] * (p_rating - 1)) + 1, 1), 10)
$$;

-- A review less than one whole day after the last one. The factor is at least 1
-- unless Again (greatest ignores the NULL that Again gives as its second argument).
CREATE OR REPLACE FUNCTION fsrs_short_term_stability(
    p_stability double precision,
    p_rating integer,
    p_w double precision[]
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT greatest(p_stability
                    * greatest(fsrs_exp(p_w[18] * ((p_rating - 3) + p_w[19]))
                               * power(p_stability, -p_w[20]),
                               CASE WHEN p_rating > 1 THEN 1.0::double precision END),
                    0.001)
$$;

-- Again after a day or more, at retrievability p_retrievability.
CREATE OR REPLACE FUNCTION fsrs_forget_stability(
    p_stability double precision,
    p_difficulty double precision,
    p_retrievability double precision,
    p_w double precision[]
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT greatest(least(
               p_w[12] * power(p_difficulty, -p_w[13]) * (power(p_stability + 1, p_w[14]) - 1)
                   * fsrs_exp((1 - p_retrievability) * p_w[15]),
               p_stability / fsrs_exp(p_w[18] * p_w[19])),
           0.001)
$$;

-- Hard, Good or Easy after a day or more, at retrievability p_retrievability.
CREATE OR REPLACE FUNCTION fsrs_recall_stability(
    p_stability double precision,
    p_difficulty double precision,
    p_retrievability double precision,
    p_rating integer,
    p_w double precision[]
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT greatest(p_stability * (1 + fsrs_exp(p_w[9]) * (11 - p_difficulty)
               * power(p_stability, -p_w[10])
               * (fsrs_exp((1 - p_retrievability) * p_w[11]) - 1)
               * CASE WHEN p_rating = 2 THEN p_w[16] ELSE 1 END
               * CASE WHEN p_rating = 4 THEN p_w[17] ELSE 1 END),
           0.001)
$$;

-- Difficulty after a review of a card that has one (mean reversion to D0(Easy)).
CREATE OR REPLACE FUNCTION fsrs_reviewed_difficulty(
    p_difficulty double precision,
    p_rating integer,
    p_w double precision[]
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT least(greatest(
               p_w[8] * (p_w[5] - fsrs_exp(p_w[6] * 3) + 1)
               + (1 - p_w[8]) * (p_difficulty
                                 + (10.0 - p_difficulty) * (-(p_w[7] * (p_rating - 3))) / 9.0),
               1), 10)
$$;

-- Stability after the review (days). p_state NULL, or no stability or difficulty yet:
-- a new card.
CREATE OR REPLACE FUNCTION fsrs_next_stability(
    p_state smallint,
    p_stability double precision,
    p_difficulty double precision,
    p_last_review timestamptz,
    p_rating integer,
    p_reviewed_at timestamptz,
    p_w double precision[]
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_state IS NULL OR p_stability IS NULL OR p_difficulty IS NULL THEN
            fsrs_initial_stability(p_rating, p_w)
        WHEN fsrs_elapsed_days(p_last_review, p_reviewed_at) < 1 THEN
            fsrs_short_term_stability(p_stability, p_rating, p_w)
        WHEN p_rating = 1 THEN
            fsrs_forget_stability(p_stability, p_difficulty,
                                  fsrs_review_retrievability(p_stability, p_last_review,
                                                             p_reviewed_at, p_w), p_w)
        ELSE
            fsrs_recall_stability(p_stability, p_difficulty,
                                  fsrs_review_retrievability(p_stability, p_last_review,
                                                             p_reviewed_at, p_w), p_rating, p_w)
    END
$$;

-- Difficulty after the review (1..10); a new card as in fsrs_next_stability.
CREATE OR REPLACE FUNCTION fsrs_next_difficulty(
    p_state smallint,
    p_stability double precision,
    p_difficulty double precision,
    p_rating integer,
    p_w double precision[]
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_state IS NULL OR p_stability IS NULL OR p_difficulty IS NULL
                THEN fsrs_initial_difficulty(p_rating, p_w)
                ELSE fsrs_reviewed_difficulty(p_difficulty, p_rating, p_w) END
$$;

-- The (re)learning steps (seconds) of a card in state p_state (NULL: new, Learning).
CREATE OR REPLACE FUNCTION fsrs_steps(
    p_state smallint,
    p_learning_steps integer[],
    p_relearning_steps integer[]
) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN coalesce(p_state, 1) = 1 THEN p_learning_steps ELSE p_relearning_steps END
$$;

-- The step a card is at before the review (0 for a new card).
CREATE OR REPLACE FUNCTION fsrs_current_step(p_state smallint, p_step smallint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_state IS NULL THEN 0 ELSE p_step END
$$;

-- Whether a new, Learning or Relearning card goes to Review at this rating: Easy; no
-- steps; Hard past the last step (the steps were shortened); Good at or past the last
-- one. NULL (taken as false) for a hand-made card in (re)learning without a step.
CREATE OR REPLACE FUNCTION fsrs_graduates(
    p_state smallint,
    p_step smallint,
    p_rating integer,
    p_learning_steps integer[],
    p_relearning_steps integer[]
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_rating = 4
        OR coalesce(cardinality(fsrs_steps(p_state, p_learning_steps, p_relearning_steps)), 0) = 0
        OR (p_rating > 1
            AND fsrs_current_step(p_state, p_step) + (p_rating - 2)
                >= cardinality(fsrs_steps(p_state, p_learning_steps, p_relearning_steps)))
$$;

-- State after the review: 1 Learning, 2 Review, 3 Relearning.
CREATE OR REPLACE FUNCTION fsrs_next_state(
    p_state smallint,
    p_step smallint,
    p_rating integer,
    p_learning_steps integer[],
    p_relearning_steps integer[]
) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT (CASE
        WHEN p_state = 2 THEN
            CASE WHEN p_rating = 1 AND cardinality(p_relearning_steps) > 0 THEN 3 ELSE 2 END
        WHEN fsrs_graduates(p_state, p_step, p_rating, p_learning_steps, p_relearning_steps) THEN 2
        ELSE coalesce(p_state, 1)
    END)::smallint
$$;

-- Step after the review (NULL in Review), from the card before it and its state after
-- it (fsrs_next_state): Review keeps the step (NULL) or, on leaving the steps, has none;
-- Again → step 0; Hard → the same step; Good → the next one.
CREATE OR REPLACE FUNCTION fsrs_next_step(
    p_state smallint,
    p_step smallint,
    p_rating integer,
    p_next_state smallint
) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT (CASE
        WHEN p_next_state = 2 THEN CASE WHEN p_state = 2 THEN p_step END
        WHEN p_rating = 1 THEN 0
        ELSE fsrs_current_step(p_state, p_step) + (p_rating - 2)
    END)::smallint
$$;

-- The next due, two formulas. In Review (the card's state after the review is 2): the
-- interval of the new stability, in days of 86,400 s. Otherwise in the (re)learning
-- steps of the card before the review: Again → the first step; Good → the next step;
-- Hard → the step's own delay (at step 0: 1.5 × the only step, or the mean of the first
-- two); a Review card forgotten (Again) → the first relearning step. p_steps: the
-- card's list of steps (fsrs_steps), p_step: its step (fsrs_current_step). The delays are
-- seconds only (no day or month part), so adding them in UTC (date_add, immutable)
-- gives the same instant as timestamptz + interval (stable).
CREATE OR REPLACE FUNCTION fsrs_review_due(
    p_reviewed_at timestamptz,
    p_next_stability double precision,
    p_w double precision[],
    p_desired_retention double precision,
    p_maximum_interval integer
) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT date_add(p_reviewed_at, make_interval(secs =>
               fsrs_interval_days(p_next_stability, p_w, p_desired_retention, p_maximum_interval)
               * 86400.0::double precision), 'UTC')
$$;

CREATE OR REPLACE FUNCTION fsrs_learning_due(
    p_steps integer[],
    p_step integer,
    p_rating integer,
    p_reviewed_at timestamptz
) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT date_add(p_reviewed_at, make_interval(secs => CASE
        WHEN p_rating = 1 THEN p_steps[1]
        WHEN p_rating = 3 THEN p_steps[p_step + 2]
        WHEN p_step = 0 AND cardinality(p_steps) = 1 THEN p_steps[1] * 1.5
        WHEN p_step = 0 THEN (p_steps[1] + p_steps[2]) / 2.0
        ELSE p_steps[p_step + 1]
    END), 'UTC')
$$;

-- The next due of any card: p_next_state and p_next_stability are the card's state and
-- stability after this review (fsrs_next_state, fsrs_next_stability), the rest describes
-- the card before it.
CREATE OR REPLACE FUNCTION fsrs_next_due(
    p_state smallint,
    p_step smallint,
    p_rating integer,
    p_reviewed_at timestamptz,
    p_next_state smallint,
    p_next_stability double precision,
    p_w double precision[],
    p_desired_retention double precision,
    p_learning_steps integer[],
    p_relearning_steps integer[],
    p_maximum_interval integer
) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_next_state = 2 THEN
            fsrs_review_due(p_reviewed_at, p_next_stability, p_w, p_desired_retention,
                            p_maximum_interval)
        ELSE
            fsrs_learning_due(fsrs_steps(p_state, p_learning_steps, p_relearning_steps),
                              fsrs_current_step(p_state, p_step), p_rating, p_reviewed_at)
    END
$$;

-- One review. p_state NULL = a new card. Returns the card after the review: state,
-- step (NULL in Review), stability, difficulty, and the due time. The checked form of
-- the scalars above, and the cheapest for one review per transaction: the formulas of
-- stability, difficulty and due are chosen by IF (as fsrs_next_stability,
-- fsrs_next_difficulty and fsrs_next_due choose them), so only the one taken is
-- prepared.
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
    v_steps integer[];  -- once, rather than in each use of it inside fsrs_learning_due
BEGIN
    IF p_rating IS NULL OR p_rating NOT BETWEEN 1 AND 4 THEN
        RAISE EXCEPTION 'fsrs_step: rating % is outside 1..4', p_rating USING ERRCODE = '22023';
    END IF;
    IF p_reviewed_at IS NULL OR NOT isfinite(p_reviewed_at) THEN
        RAISE EXCEPTION 'fsrs_step: review time must be a finite timestamp' USING ERRCODE = '22023';
    END IF;
    IF p_state IS NULL OR p_stability IS NULL OR p_difficulty IS NULL THEN
        stability := fsrs_initial_stability(p_rating, p_w);
        difficulty := fsrs_initial_difficulty(p_rating, p_w);
    ELSE
        IF fsrs_elapsed_days(p_last_review, p_reviewed_at) < 1 THEN
            stability := fsrs_short_term_stability(p_stability, p_rating, p_w);
        ELSIF p_rating = 1 THEN
            stability := fsrs_forget_stability(p_stability, p_difficulty,
                fsrs_review_retrievability(p_stability, p_last_review, p_reviewed_at, p_w), p_w);
        ELSE
            stability := fsrs_recall_stability(p_stability, p_difficulty,
                fsrs_review_retrievability(p_stability, p_last_review, p_reviewed_at, p_w),
                p_rating, p_w);
        END IF;
        difficulty := fsrs_reviewed_difficulty(p_difficulty, p_rating, p_w);
    END IF;
    state := fsrs_next_state(p_state, p_step, p_rating, p_learning_steps, p_relearning_steps);
    step := fsrs_next_step(p_state, p_step, p_rating, state);
    IF state = 2 THEN
        due := fsrs_review_due(p_reviewed_at, stability, p_w, p_desired_retention,
                               p_maximum_interval);
    ELSE
        v_steps := fsrs_steps(p_state, p_learning_steps, p_relearning_steps);
        due := fsrs_learning_due(v_steps, fsrs_current_step(p_state, p_step), p_rating,
                                 p_reviewed_at);
    END IF;
END;
$$;

COMMENT ON FUNCTION fsrs_step(smallint, smallint, double precision, double precision, timestamptz,
                              integer, timestamptz, double precision[], double precision, integer[],
                              integer[], integer) IS
    'FSRS-6 review (py-fsrs 6.3.2, no fuzz): the card''s state, step, stability, difficulty, due.';
