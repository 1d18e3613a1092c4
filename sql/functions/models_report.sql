-- How well the learning models predict, computed where the events are (`dmdb models report`).
--
-- Every question_answered event carries BKT's predicted P(correct) before the answer
-- (response_data->>'predicted_correct', written by record_answer(s)) and the outcome
-- (is_correct). Over the events of a window [p_since, p_until):
--   log loss   −mean(y·ln p + (1−y)·ln(1−p)), p clamped to [1e-9, 1 − 1e-9] (a fitted
--              guess or slip of 0 can predict exactly 0 or 1; one such miss would be ∞);
--   RMSE(bins) sqrt(Σ_b n_b·(mean p_b − mean y_b)² / Σ n_b) over p_bins equal-width bins of
--              the prediction, bin = least(floor(p·p_bins), p_bins − 1): the calibration
--              error (the srs-benchmark's metric, binned on the prediction alone);
--   AUC        Mann–Whitney: the probability that a correct answer was predicted higher
--              than a wrong one, ties counted ½; exact (integer counts in numeric); NULL
--              when the window holds only one outcome;
-- beside the constant baseline that predicts the window's mean correctness ȳ for every
-- answer (its AUC is ½; overall, its RMSE(bins) is 0 by construction, per concept it is
-- |ȳ − ȳ_concept|). One row per concept plus the overall row (concept_id NULL).
--
-- Cost: one scan of the window's partitions (kept in a tuplestore), one hash aggregate
-- into bins, and two sorts for the AUC (per concept, overall), each with running sums.
CREATE OR REPLACE FUNCTION models_bkt_report(
    p_since timestamptz,
    p_until timestamptz,
    p_bins integer DEFAULT 20
) RETURNS TABLE (
    concept_id bigint,
    concept_code text,
    answers bigint,
    correct bigint,
    mean_predicted double precision,
    log_loss double precision,
    rmse_bins double precision,
    auc double precision,
    baseline_log_loss double precision,
    baseline_rmse_bins double precision,
    baseline_auc double precision
)
LANGUAGE sql STABLE
AS $$
    WITH ev AS (
        SELECT e.concept_id AS c,
               e.is_correct::integer AS y,
               least(greatest((e.response_data ->> 'predicted_correct')::double precision,
                              1e-9::double precision), 1 - 1e-9::double precision) AS p
          FROM learning_events e
         WHERE e.event_type = 'question_answered'
           AND e.occurred_at >= p_since AND e.occurred_at < p_until
           AND e.is_correct IS NOT NULL
           AND e.response_data ? 'predicted_correct'
    ),
    -- Counts, log-likelihood and prediction sums per calibration bin, per concept and
    -- overall (g = 1): one hash aggregate into at most (concepts + 1) × p_bins groups.
    bins AS (
        SELECT grouping(ev.c) AS g, ev.c, least(floor(ev.p * p_bins)::integer, p_bins - 1) AS bin,
               count(*) AS n, sum(ev.y)::bigint AS pos, sum(ev.p) AS sp,
               sum(CASE WHEN ev.y = 1 THEN ln(ev.p) ELSE ln(1 - ev.p) END) AS ll
          FROM ev
         GROUP BY GROUPING SETS ((ev.c, 3), (3))
    ),
    grp AS (
        SELECT b.g, b.c, sum(b.n)::bigint AS n, sum(b.pos)::bigint AS pos, sum(b.sp) AS sum_p,
               sum(b.ll) AS ll, sqrt(sum((b.sp - b.pos) ^ 2 / b.n) / sum(b.n)) AS rmse
          FROM bins b
         GROUP BY b.g, b.c
    ),
    -- AUC, doubled to stay in integers: Σ over correct answers of (wrong answers predicted
    -- lower + wrong answers predicted lower or equal), i.e. ties count ½. In the order
    -- (p, y DESC) a correct answer precedes the wrong ones of its own prediction, so the
    -- running count of wrong answers up to it (ROWS) is "lower", and the count over its
    -- peers in p (RANGE, the default frame) is "lower or equal": one sort per ordering.
    auc AS (
        SELECT 0 AS g, x.c, sum(x.lt + x.le) FILTER (WHERE x.y = 1) AS auc2
          FROM (SELECT ev.c, ev.y,
                       sum(1 - ev.y) OVER (PARTITION BY ev.c ORDER BY ev.p, ev.y DESC
                                           ROWS UNBOUNDED PRECEDING) AS lt,
                       sum(1 - ev.y) OVER (PARTITION BY ev.c ORDER BY ev.p) AS le
                  FROM ev) x
         GROUP BY x.c
        UNION ALL
        SELECT 1, NULL, sum(x.lt + x.le) FILTER (WHERE x.y = 1)
          FROM (SELECT ev.y,
                       sum(1 - ev.y) OVER (ORDER BY ev.p, ev.y DESC ROWS UNBOUNDED PRECEDING) AS lt,
                       sum(1 - ev.y) OVER (ORDER BY ev.p) AS le
                  FROM ev) x
    ),
    base AS (
        SELECT least(greatest(grp.pos::double precision / grp.n, 1e-9::double precision),
                     1 - 1e-9::double precision) AS ybar
          FROM grp
         WHERE grp.g = 1
    )
    SELECT grp.c, co.code, grp.n, grp.pos,
           grp.sum_p / grp.n,
           -grp.ll / grp.n,
           grp.rmse,
           CASE WHEN grp.pos > 0 AND grp.pos < grp.n
                THEN (auc.auc2 / (2 * grp.pos::numeric * (grp.n - grp.pos)))::double precision END,
           -(grp.pos * ln(base.ybar) + (grp.n - grp.pos) * ln(1 - base.ybar)) / grp.n,
           abs(base.ybar - grp.pos::double precision / grp.n),
           CASE WHEN grp.pos > 0 AND grp.pos < grp.n THEN 0.5::double precision END
      FROM grp
      JOIN auc ON auc.g = grp.g AND auc.c IS NOT DISTINCT FROM grp.c
      CROSS JOIN base
      LEFT JOIN concepts co ON co.concept_id = grp.c
     ORDER BY grp.g DESC, co.code, grp.c
$$;

COMMENT ON FUNCTION models_bkt_report(timestamptz, timestamptz, integer) IS
    'BKT log loss, RMSE(bins), AUC and the constant baseline over a window of question_answered events; concept_id NULL = overall.';

-- SM-2 states no probability of recall (it schedules an interval from quality grades),
-- so it has no log loss, RMSE or AUC. What the events do show is how its reviews went:
-- a review is an answer to an item the same learner answered before (within the
-- window); the recall rate is the share of those answered correctly, overall and by the
-- gap since the previous answer of that item.
CREATE OR REPLACE FUNCTION models_review_outcomes(
    p_since timestamptz,
    p_until timestamptz
) RETURNS TABLE (
    gap text,
    reviews bigint,
    recalled bigint,
    recall_rate double precision
)
LANGUAGE sql STABLE
AS $$
    WITH ev AS (
        SELECT e.is_correct,
               e.occurred_at - lag(e.occurred_at) OVER (
                   PARTITION BY e.user_id, e.content_id ORDER BY e.occurred_at, e.event_id) AS since_last
          FROM learning_events e
         WHERE e.event_type = 'question_answered'
           AND e.occurred_at >= p_since AND e.occurred_at < p_until
           AND e.is_correct IS NOT NULL
    ),
    r AS (
        SELECT CASE WHEN ev.since_last < interval '1 day' THEN '< 1 day'
                    WHEN ev.since_last < interval '7 days' THEN '1-7 days'
                    WHEN ev.since_last < interval '30 days' THEN '7-30 days'
                    ELSE '>= 30 days' END AS gap,
               width_bucket(extract(epoch FROM ev.since_last), ARRAY[86400, 604800, 2592000]) AS gap_order,
               ev.is_correct
          FROM ev
         WHERE ev.since_last IS NOT NULL
    )
    SELECT coalesce(r.gap, 'all'), count(*), count(*) FILTER (WHERE r.is_correct),
           (count(*) FILTER (WHERE r.is_correct))::double precision / count(*)
      FROM r
     GROUP BY ROLLUP (r.gap)
    HAVING count(*) > 0
     ORDER BY r.gap IS NULL DESC, min(r.gap_order)
$$;

COMMENT ON FUNCTION models_review_outcomes(timestamptz, timestamptz) IS
    'Reviews (repeat answers of an item by a learner) in a window and their recall rate, by gap.';
