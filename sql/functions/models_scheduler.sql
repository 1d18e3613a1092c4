-- FSRS-6's predicted recall against the outcome of each review (`dmdb models report`,
-- scheduler section).
--
-- The events do not store FSRS's state, so its prediction for each review is replayed
-- the way the srs-benchmark evaluates FSRS: every (learner, item) pair with an answer in
-- the window has its whole answer history up to p_until run through fsrs_step (the
-- scheduler's own function, with the deployment's parameters from algorithm_settings),
-- and before each review in the window the card's retrievability
-- R = fsrs_retrievability(stability, whole days since the last review) is the predicted
-- P(recall); the outcome is is_correct. Reviews less than one whole day after the
-- previous answer are counted but not scored: FSRS-6 states R = 1 for them (elapsed
-- days = 0), a short-term memory it does not claim to predict (the srs-benchmark
-- leaves them out the same way). Metrics as models_bkt_report: log loss (R clamped to
-- [1e-9, 1 − 1e-9]), RMSE over p_bins bins, AUC (ties ½), and the constant baseline =
-- the mean recall of the scored reviews.
--
-- Cost: one sort of the answers before p_until and one fsrs_step call (PL/pgSQL, ~10-20 µs)
-- per answer of the pairs replayed: the slow part of the report when FSRS is evaluated.
CREATE OR REPLACE FUNCTION models_fsrs_report(
    p_since timestamptz,
    p_until timestamptz,
    p_bins integer DEFAULT 20
) RETURNS TABLE (
    reviews bigint,
    same_day_reviews bigint,
    recalled bigint,
    mean_predicted double precision,
    log_loss double precision,
    rmse_bins double precision,
    auc double precision,
    baseline_log_loss double precision,
    baseline_rmse_bins double precision,
    baseline_auc double precision
)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    v_w double precision[];
    v_retention double precision;
    v_learning integer[];
    v_relearning integer[];
    v_maximum integer;
    v_user bigint;
    v_content bigint;
    v_state smallint;
    v_step smallint;
    v_s double precision;
    v_d double precision;
    v_last timestamptz;
    v_days bigint;
    v_card record;
    v_same_day bigint := 0;
    a_p double precision[] := '{}';
    a_y integer[] := '{}';
    r record;
BEGIN
    SELECT s.fsrs_parameters, s.fsrs_desired_retention, s.fsrs_learning_steps,
           s.fsrs_relearning_steps, s.fsrs_maximum_interval
      INTO v_w, v_retention, v_learning, v_relearning, v_maximum
      FROM algorithm_settings s;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'models_fsrs_report: algorithm_settings has no row'
            USING ERRCODE = '55000';
    END IF;

    -- Only pairs with two answers or more, the latest in the window, can hold a review
    -- to score; a pair answered once (most of them) is not replayed.
    FOR r IN
        SELECT x.user_id, x.content_id, x.occurred_at, x.is_correct, x.quality,
               x.occurred_at >= p_since AS in_window
          FROM (SELECT e.user_id, e.content_id, e.occurred_at, e.event_id, e.is_correct, e.quality,
                       count(*) OVER pair AS answers, max(e.occurred_at) OVER pair AS latest
                  FROM learning_events e
                 WHERE e.event_type = 'question_answered' AND e.occurred_at < p_until
                   AND e.quality IS NOT NULL
                WINDOW pair AS (PARTITION BY e.user_id, e.content_id)) x
         WHERE x.answers >= 2 AND x.latest >= p_since
         ORDER BY x.user_id, x.content_id, x.occurred_at, x.event_id
    LOOP
        IF r.user_id IS DISTINCT FROM v_user OR r.content_id IS DISTINCT FROM v_content THEN
            v_user := r.user_id;
            v_content := r.content_id;
            v_state := NULL; v_step := NULL; v_s := NULL; v_d := NULL; v_last := NULL;
        END IF;
        IF r.in_window AND v_s IS NOT NULL AND r.is_correct IS NOT NULL THEN
            v_days := floor(extract(epoch FROM r.occurred_at - v_last) / 86400);
            IF v_days >= 1 THEN
                a_p := a_p || least(greatest(fsrs_retrievability(v_s, v_days::integer, v_w),
                                             1e-9::double precision), 1 - 1e-9::double precision);
                a_y := a_y || r.is_correct::integer;
            ELSE
                v_same_day := v_same_day + 1;
            END IF;
        END IF;
        v_card := fsrs_step(v_state, v_step, v_s, v_d, v_last, fsrs_rating(r.quality),
                            r.occurred_at, v_w, v_retention, v_learning, v_relearning, v_maximum);
        v_state := v_card.state;
        v_step := v_card.step;
        v_s := v_card.stability;
        v_d := v_card.difficulty;
        v_last := greatest(v_last, r.occurred_at);
    END LOOP;

    RETURN QUERY
    WITH ev AS (
        SELECT x.p, x.y FROM unnest(a_p, a_y) AS x (p, y)
    ),
    tot AS (
        SELECT count(*) AS n, coalesce(sum(ev.y), 0)::bigint AS pos, sum(ev.p) AS sp,
               sum(CASE WHEN ev.y = 1 THEN ln(ev.p) ELSE ln(1 - ev.p) END) AS ll
          FROM ev
    ),
    bins AS (
        SELECT count(*) AS n, sum(ev.p) AS sp, sum(ev.y)::double precision AS sy
          FROM ev
         GROUP BY least(floor(ev.p * p_bins)::integer, p_bins - 1)
    ),
    auc AS (
        SELECT sum(x.neg_le - x.neg_eq / 2.0) FILTER (WHERE x.y = 1) AS num
          FROM (SELECT ev.y,
                       sum(1 - ev.y) OVER (ORDER BY ev.p) AS neg_le,
                       sum(1 - ev.y) OVER (ORDER BY ev.p
                                            RANGE BETWEEN CURRENT ROW AND CURRENT ROW) AS neg_eq
                  FROM ev) x
    ),
    base AS (
        SELECT least(greatest(tot.pos::double precision / nullif(tot.n, 0), 1e-9::double precision),
                     1 - 1e-9::double precision) AS ybar
          FROM tot
    )
    SELECT tot.n, v_same_day, tot.pos,
           tot.sp / nullif(tot.n, 0),
           -tot.ll / nullif(tot.n, 0),
           (SELECT sqrt(sum((bins.sp - bins.sy) ^ 2 / bins.n) / nullif(sum(bins.n), 0)) FROM bins),
           CASE WHEN tot.pos > 0 AND tot.pos < tot.n
                THEN (auc.num / (tot.pos::numeric * (tot.n - tot.pos)))::double precision END,
           -(tot.pos * ln(base.ybar) + (tot.n - tot.pos) * ln(1 - base.ybar)) / nullif(tot.n, 0),
           CASE WHEN tot.n > 0 THEN 0::double precision END,
           CASE WHEN tot.pos > 0 AND tot.pos < tot.n THEN 0.5::double precision END
      FROM tot CROSS JOIN auc CROSS JOIN base;
END;
$$;

COMMENT ON FUNCTION models_fsrs_report(timestamptz, timestamptz, integer) IS
    'FSRS-6 retrievability (replayed per learner and item) vs the outcome of each review in a window.';
