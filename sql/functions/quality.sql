-- SM-2 quality (0..5) from an answer, when the caller gives none (DESIGN.md):
--   correct, no hints, within the item's average response time (or no average yet) → 5
--   correct, no hints (slower than the average)                                   → 4
--   correct with hints                                                             → 3
--   incorrect                                                                      → 1
-- "Within" means response_time_ms <= average_response_time_ms. hints_used NULL
-- counts as 0; a NULL response time with an average known counts as "not within".
-- Not STRICT: a NULL average is meaningful ("no average yet").
CREATE OR REPLACE FUNCTION answer_quality(
    p_is_correct boolean,
    p_hints_used integer,
    p_response_time_ms double precision,
    p_average_response_time_ms double precision
) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT (CASE
        WHEN p_is_correct IS NULL THEN NULL
        WHEN NOT p_is_correct THEN 1
        WHEN coalesce(p_hints_used, 0) > 0 THEN 3
        WHEN p_average_response_time_ms IS NULL
             OR p_response_time_ms <= p_average_response_time_ms THEN 5
        ELSE 4
    END)::smallint
$$;

COMMENT ON FUNCTION answer_quality(boolean, integer, double precision, double precision) IS
    'SM-2 quality from an answer: 5 fast correct, 4 correct, 3 correct with hints, 1 wrong.';
