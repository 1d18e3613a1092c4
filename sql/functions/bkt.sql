-- Bayesian Knowledge Tracing (DESIGN.md, "The algorithms"), as pure functions.
--
-- Written in LANGUAGE sql with a single expression and not STRICT, so the
-- planner inlines them into the calling query / PL/pgSQL expression (a STRICT
-- SQL function whose body contains CASE is never inlined). NULL in → NULL out
-- all the same, because every branch is arithmetic on the arguments.
--
-- The edges (docs/algorithms.md): the result is the value of the formula in exact
-- arithmetic — or its limit — wherever a double would underflow, overflow or divide
-- 0 by 0. PostgreSQL raises an error on a float underflow to 0 and on exp()
-- overflow, so no intermediate may do either:
--   * forgetting p0 = m·d^Δ is carried as its logarithm x = ln m + Δ·ln d, so
--     that a p0 too small for a double (a long gap: 0.5·0.9^7000 = e^−738) still
--     counts as positive in the evidence step; bkt_forget itself returns 0 for
--     p0 < 1e−300 (below any tolerance, and no product with it can underflow);
--     a positive Δdays counts as at least 1e−290 days (so Δ·ln d cannot underflow, and
--     p0 < 1 stays strict whenever Δ > 0 and decay < 1);
--   * 1 − p0 is computed without cancellation (−expm1(x) by its series for |x| < 0.01),
--     so a p0 within an ulp of 1 is still < 1 when it is;
--   * evidence: p1 = a / (a + b) with a = p0·L(mastered), b = (1 − p0)·L(not mastered)
--     (correct: L = 1 − slip, guess; wrong: slip, 1 − guess), evaluated as the
--     logistic of ln b − ln a, clamped to ±700 (beyond, p1 is 0 or 1 within 1e−304).
--     a = 0 < b → 0; b = 0 < a → 1 (e.g. guess 0 and a correct answer: mastery 1,
--     however small p0 > 0 is); a = b = 0 (the answer is impossible under the
--     model, e.g. p0 = 0 and guess 0 on a correct answer) → no information, p1 = p0;
--   * learning: L = min(1, learning_rate × velocity) from logarithms where the
--     product could underflow; p = p1 + (1 − p1)·L, computed as p1(1 − L) + L and
--     clamped to [0, 1] against rounding;
--   * Δdays <= 0 (first interaction, or an answer older than last_interaction)
--     means no forgetting.
-- The domain: probabilities in [0, 1], decay in (0, 1], velocity > 0. Nonzero guess
-- and slip below 1e−290 are outside it (their products with a small 1 − p0 could
-- underflow).
-- tests/reference_algorithms.py evaluates the same formulas with 60-digit decimals.

-- The regular-case pieces of the steps below, one formula each. bkt_forget,
-- bkt_log_forget, bkt_forget_complement and bkt_evidence take their edge cases first
-- and then use these; record_answer uses them directly once it has tested the edges in
-- PL/pgSQL (it compiles each expression per transaction, so it keeps the exponent in a
-- variable instead of the ten copies an inlined bkt_forget_complement holds).

-- x = ln p0 = ln mastery + Δdays·ln decay, for mastery > 0, Δdays > 0, 0 < decay < 1.
CREATE OR REPLACE FUNCTION bkt_decay_exponent(
    p_mastery double precision,
    p_decay double precision,
    p_delta_days double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ln(p_mastery) + greatest(p_delta_days, 1e-290) * ln(p_decay)
$$;

-- p0 = mastery·decay^Δdays from its exponent x (0 below 1e−300).
CREATE OR REPLACE FUNCTION bkt_forget_from_log(
    p_mastery double precision,
    p_decay double precision,
    p_delta_days double precision,
    p_log_p0 double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_mastery < 1e-300 OR p_log_p0 < -690.7755 THEN 0::double precision
                ELSE p_mastery * power(p_decay, p_delta_days) END
$$;

-- 1 − p0 = −expm1(x) without cancellation: 1 below e^−700, the series near 0.
CREATE OR REPLACE FUNCTION bkt_complement_from_log(p_log_p0 double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_log_p0 < -700 THEN 1::double precision
        WHEN p_log_p0 > -0.01 THEN
            -- −expm1(x) = −x(1 + x/2(1 + x/3(1 + x/4(1 + x/5(1 + x/6))))), error < x^7/5040
            -(p_log_p0) * (1 + (p_log_p0) / 2 * (1 + (p_log_p0) / 3 * (1 + (p_log_p0) / 4
                * (1 + (p_log_p0) / 5 * (1 + (p_log_p0) / 6)))))
        ELSE 1 - exp(p_log_p0)
    END
$$;

-- Evidence with both likelihood terms positive: the logistic of ln b − ln a, clamped.
CREATE OR REPLACE FUNCTION bkt_evidence_logistic(
    p_log_p0 double precision,
    p_q0 double precision,
    p_like_mastered double precision,
    p_like_unmastered double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT 1 / (1 + exp(greatest(-700::double precision, least(700::double precision,
               ln(p_q0) + ln(p_like_unmastered) - p_log_p0 - ln(p_like_mastered)))))
$$;

-- Step 1, forgetting: p0 = mastery × decay ^ Δdays (0 when below 1e−300).
CREATE OR REPLACE FUNCTION bkt_forget(
    p_mastery double precision,
    p_decay double precision,
    p_delta_days double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_mastery < 1e-300 THEN 0::double precision
        WHEN p_delta_days <= 0 OR p_decay = 1 THEN p_mastery
        WHEN p_decay <= 0 THEN 0::double precision
        ELSE bkt_forget_from_log(p_mastery, p_decay, p_delta_days,
                                 bkt_decay_exponent(p_mastery, p_decay, p_delta_days))
    END
$$;

COMMENT ON FUNCTION bkt_forget(double precision, double precision, double precision) IS
    'BKT forgetting: mastery × decay^Δdays (Δdays <= 0 → no decay; below 1e-300 → 0).';

-- ln p0 ('-Infinity' for p0 = 0).
CREATE OR REPLACE FUNCTION bkt_log_forget(
    p_mastery double precision,
    p_decay double precision,
    p_delta_days double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_mastery <= 0 THEN '-Infinity'::double precision
        WHEN p_delta_days <= 0 OR p_decay = 1 THEN ln(p_mastery)
        WHEN p_decay <= 0 THEN '-Infinity'::double precision
        ELSE bkt_decay_exponent(p_mastery, p_decay, p_delta_days)
    END
$$;

-- 1 − p0 without cancellation.
CREATE OR REPLACE FUNCTION bkt_forget_complement(
    p_mastery double precision,
    p_decay double precision,
    p_delta_days double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_mastery <= 0 THEN 1::double precision
        WHEN p_delta_days <= 0 OR p_decay = 1 THEN 1 - p_mastery
        WHEN p_decay <= 0 THEN 1::double precision
        ELSE bkt_complement_from_log(bkt_decay_exponent(p_mastery, p_decay, p_delta_days))
    END
$$;

-- Evidence: p1 = a / (a + b), a = p0·p_like_mastered, b = q0·p_like_unmastered,
-- from ln p0 and q0 = 1 − p0.
CREATE OR REPLACE FUNCTION bkt_evidence(
    p_log_p0 double precision,
    p_q0 double precision,
    p_like_mastered double precision,
    p_like_unmastered double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN (p_log_p0 = '-Infinity' OR p_like_mastered <= 0)
             AND (p_q0 <= 0 OR p_like_unmastered <= 0) THEN
            CASE WHEN p_log_p0 < -700 THEN 0::double precision ELSE exp(p_log_p0) END
        WHEN p_log_p0 = '-Infinity' OR p_like_mastered <= 0 THEN 0::double precision
        WHEN p_q0 <= 0 OR p_like_unmastered <= 0 THEN 1::double precision
        ELSE bkt_evidence_logistic(p_log_p0, p_q0, p_like_mastered, p_like_unmastered)
    END
$$;

-- The learning step L = min(1, learning_rate × velocity), from logarithms where the
-- product could underflow.
CREATE OR REPLACE FUNCTION bkt_learn_step(
    p_learning_rate double precision,
    p_velocity double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_learning_rate <= 0 OR p_velocity <= 0 THEN 0::double precision
                WHEN ln(p_learning_rate) + ln(p_velocity) >= 0 THEN 1::double precision
                WHEN ln(p_learning_rate) + ln(p_velocity) < -700 THEN 0::double precision
                ELSE p_learning_rate * p_velocity END
$$;

-- Learning: p1 + (1 − p1)·min(1, learning_rate × velocity), in [0, 1].
CREATE OR REPLACE FUNCTION bkt_learn(
    p_p1 double precision,
    p_learning_rate double precision,
    p_velocity double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    -- p1(1 − L) + L, L written twice: a nested function taking L as one argument would
    -- not be inlined (the planner does not repeat a costly argument).
    SELECT greatest(0::double precision, least(1::double precision,
        p_p1 * (1 - bkt_learn_step(p_learning_rate, p_velocity))
        + bkt_learn_step(p_learning_rate, p_velocity)))
$$;

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
           + bkt_forget_complement(p_mastery, p_decay, p_delta_days) * p_guess
$$;

COMMENT ON FUNCTION bkt_predict_correct(double precision, double precision, double precision,
                                        double precision, double precision) IS
    'BKT predicted P(correct) before an answer: p0(1-slip) + (1-p0)guess, p0 = decayed mastery.';

-- Steps 2 and 3 given the decayed mastery p0 itself (taken as exact: p0 = 0 is 0).
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
    SELECT bkt_learn(
        bkt_evidence(CASE WHEN p_p0 > 0 THEN ln(p_p0) ELSE '-Infinity'::double precision END,
                     1 - p_p0,
                     CASE WHEN p_correct THEN 1 - p_slip ELSE p_slip END,
                     CASE WHEN p_correct THEN p_guess ELSE 1 - p_guess END),
        p_learning_rate, p_velocity)
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
    SELECT bkt_learn(
        bkt_evidence(bkt_log_forget(p_mastery, p_decay, p_delta_days),
                     bkt_forget_complement(p_mastery, p_decay, p_delta_days),
                     CASE WHEN p_correct THEN 1 - p_slip ELSE p_slip END,
                     CASE WHEN p_correct THEN p_guess ELSE 1 - p_guess END),
        p_learning_rate, p_velocity)
$$;

COMMENT ON FUNCTION bkt_update(double precision, double precision, double precision, boolean,
                               double precision, double precision, double precision, double precision) IS
    'BKT update (DESIGN.md): forgetting, evidence, learning; the exact value or its limit, in [0,1].';
