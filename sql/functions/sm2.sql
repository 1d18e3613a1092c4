-- SuperMemo SM-2 review step (DESIGN.md), per (user, content); start EF 2.5,
-- interval 0, repetitions 0:
--   q < 3 : repetitions = 0, interval = 1 day
--   q >= 3: interval = 1 if repetitions = 0, 6 if repetitions = 1,
--           else ceil(interval × EF) (EF before this review); repetitions + 1
--   always: EF = max(1.3, EF + 0.1 − (5 − q)(0.08 + (5 − q)·0.02))
-- next_review_at = answered_at + interval × 24 hours (done by the caller).
--
-- Exact arithmetic: EF is numeric (review_schedule.easiness is numeric(8,2), migration
-- 0007). From 2.5 it moves in steps of 0.02, which binary floating point cannot hold:
-- in double precision 1.3 + 0.1 + 0.1 = 1.5000000000000002 and ceil(6 × EF) gives 10
-- where SM-2 gives 9. numeric holds every step exactly, so every interval is the exact
-- SM-2 interval. From a two-decimal EF every result has two decimals, as the column's
-- CHECK requires; a caller's EF with more decimals is used as given.
-- Guard (not in DESIGN.md): the interval is capped at 36,500 days (100 years), so
-- that next_review_at stays a valid timestamp and interval_days an integer after
-- very long runs of good answers (EF has no upper bound).
--
-- Three single-expression SQL functions (inlined by the planner, so the
-- per-answer loops of record_answer/record_answers pay no call overhead) and
-- sm2_step, which combines them and refuses a quality outside 0..5 (22023).

-- The double precision versions before 0007: a float EF is what drifted.
DROP FUNCTION IF EXISTS sm2_step(double precision, integer, integer, integer);
DROP FUNCTION IF EXISTS sm2_next_interval(double precision, integer, integer, integer);
DROP FUNCTION IF EXISTS sm2_next_easiness(double precision, integer);

CREATE OR REPLACE FUNCTION sm2_next_interval(
    p_easiness numeric,
    p_interval_days integer,
    p_repetitions integer,
    p_quality integer
) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_quality < 3 THEN 1
        WHEN p_repetitions = 0 THEN 1
        WHEN p_repetitions = 1 THEN 6
        ELSE least(36500::numeric, ceil(p_interval_days * p_easiness))::integer
    END
$$;

CREATE OR REPLACE FUNCTION sm2_next_repetitions(
    p_repetitions integer,
    p_quality integer
) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_quality < 3 THEN 0 ELSE p_repetitions + 1 END
$$;

CREATE OR REPLACE FUNCTION sm2_next_easiness(
    p_easiness numeric,
    p_quality integer
) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT greatest(1.30, p_easiness + 0.10 - (5 - p_quality) * (0.08 + (5 - p_quality) * 0.02))
$$;

CREATE OR REPLACE FUNCTION sm2_step(
    p_easiness numeric,
    p_interval_days integer,
    p_repetitions integer,
    p_quality integer,
    OUT easiness numeric,
    OUT interval_days integer,
    OUT repetitions integer
)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
BEGIN
    IF p_quality < 0 OR p_quality > 5 THEN
        RAISE EXCEPTION 'sm2_step: quality % is outside 0..5', p_quality
            USING ERRCODE = '22023';
    END IF;
    interval_days := sm2_next_interval(p_easiness, p_interval_days, p_repetitions, p_quality);
    repetitions := sm2_next_repetitions(p_repetitions, p_quality);
    easiness := sm2_next_easiness(p_easiness, p_quality);
END;
$$;

COMMENT ON FUNCTION sm2_step(numeric, integer, integer, integer) IS
    'SM-2 step, exact: (easiness, interval_days, repetitions) after a review of quality 0..5.';
