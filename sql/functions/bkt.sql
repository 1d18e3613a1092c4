-- Bayesian Knowledge Tracing (DESIGN.md, "The algorithms"), as pure functions.
--
-- Written in LANGUAGE sql with a single expression and not STRICT, so the
-- planner inlines them into the calling query / PL/pgSQL expression (a STRICT
-- SQL function whose body contains CASE is never inlined). NULL in → NULL out
-- all the same, because every branch is arithmetic on the arguments.
--
-- Guards (they only matter outside the CHECKed ranges or for extreme gaps):
--   * Δdays <= 0 (first interaction, or an answer older than last_interaction)
--     means no forgetting;
--   * decay^Δdays that would underflow (PostgreSQL raises on float underflow)
--     is taken as 0 once mastery × decay^Δdays < e^-700;
--   * an evidence denominator of 0 (p0 = 0 with guess = 0 on a correct answer,
--     p0 = 1 with slip = 0 on a wrong one) carries no information: p1 = p0;
--   * the result is clamped to [0, 1] against rounding (p1 + (1 − p1) can be
--     1 + 1 ulp), so it always satisfies the CHECK on mastery_probability.
-- tests/reference_algorithms.py implements the same rules independently.

-- Step 1, forgetting: p0 = mastery × decay ^ Δdays.
CREATE OR REPLACE FUNCTION bkt_forget(
    p_mastery double precision,
    p_decay double precision,
    p_delta_days double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_delta_days <= 0 OR p_decay = 1 THEN p_mastery
        WHEN p_mastery <= 0 OR p_decay <= 0 THEN 0::double precision
        WHEN ln(p_mastery) + p_delta_days * ln(p_decay) < -700 THEN 0::double precision
        ELSE p_mastery * power(p_decay, p_delta_days)
    END
$$;

COMMENT ON FUNCTION bkt_forget(double precision, double precision, double precision) IS
    'BKT forgetting: mastery × decay^Δdays (Δdays <= 0 → no decay).';

-- P(correct) predicted before the answer: p0(1 − slip) + (1 − p0)·guess.
CREATE OR REPLACE FUNCTION bkt_predict_correct(
    p_mastery double precision,
    p_decay double precision,
    p_delta_days double precision,
    p_guess double precision,
    p_slip double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT bkt_forget(p_mastery, p_decay, p_delta_days) * (1 - p_slip)
           + (1 - bkt_forget(p_mastery, p_decay, p_delta_days)) * p_guess
$$;

COMMENT ON FUNCTION bkt_predict_correct(double precision, double precision, double precision,
                                        double precision, double precision) IS
    'BKT predicted P(correct) before an answer: p0(1-slip) + (1-p0)guess, p0 = decayed mastery.';

-- Steps 2 and 3 given the decayed mastery p0 (evidence, then learning).
-- The learning step p1 + (1 − p1)·L is computed as p1·(1 − L) + L (the same
-- value up to rounding), so that p1 appears once and the function stays a
-- single expression the planner can inline (no FROM clause, each costly
-- argument used once): inlined it costs ~0.3 µs, called ~10 µs.
CREATE OR REPLACE FUNCTION bkt_posterior(
    p_p0 double precision,
    p_correct boolean,
    p_guess double precision,
    p_slip double precision,
    p_learning_rate double precision,
    p_velocity double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT greatest(0::double precision, least(1::double precision,
        CASE
            WHEN p_correct THEN
                CASE WHEN p_p0 * (1 - p_slip) + (1 - p_p0) * p_guess = 0 THEN p_p0
                     ELSE p_p0 * (1 - p_slip) / (p_p0 * (1 - p_slip) + (1 - p_p0) * p_guess) END
            ELSE
                CASE WHEN p_p0 * p_slip + (1 - p_p0) * (1 - p_guess) = 0 THEN p_p0
                     ELSE p_p0 * p_slip / (p_p0 * p_slip + (1 - p_p0) * (1 - p_guess)) END
        END * (1 - least(1::double precision, p_learning_rate * p_velocity))
        + least(1::double precision, p_learning_rate * p_velocity)))
$$;

COMMENT ON FUNCTION bkt_posterior(double precision, boolean, double precision, double precision,
                                  double precision, double precision) IS
    'BKT evidence + learning steps from the decayed mastery p0.';

-- The whole update: forgetting, evidence, learning → the new mastery.
CREATE OR REPLACE FUNCTION bkt_update(
    p_mastery double precision,
    p_decay double precision,
    p_delta_days double precision,
    p_correct boolean,
    p_guess double precision,
    p_slip double precision,
    p_learning_rate double precision,
    p_velocity double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT bkt_posterior(bkt_forget(p_mastery, p_decay, p_delta_days),
                         p_correct, p_guess, p_slip, p_learning_rate, p_velocity)
$$;

COMMENT ON FUNCTION bkt_update(double precision, double precision, double precision, boolean,
                               double precision, double precision, double precision, double precision) IS
    'BKT update (DESIGN.md): forgetting, evidence, learning; returns the new mastery in [0,1].';
