-- IRT three-parameter logistic model (DESIGN.md):
--   P(θ) = c + (1 − c) / (1 + exp(−1.7·a·(θ − b)))
-- The exponent is clamped to ±700: PostgreSQL raises on exp() overflow/underflow,
-- and beyond ±700 the logistic term is 0 or 1 to double precision anyway
-- (the error is below 1e-300).
CREATE OR REPLACE FUNCTION irt_probability(
    p_theta double precision,
    p_difficulty double precision,
    p_discrimination double precision,
    p_guess double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT p_guess + (1 - p_guess)
           / (1 + exp(greatest(-700::double precision, least(700::double precision,
                  -1.7 * p_discrimination * (p_theta - p_difficulty)))))
$$;

COMMENT ON FUNCTION irt_probability(double precision, double precision, double precision, double precision) IS
    'IRT 3PL: P(correct | ability θ) for difficulty b, discrimination a, guess c.';
