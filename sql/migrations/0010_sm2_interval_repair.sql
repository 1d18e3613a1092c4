-- Data repair: SM-2 intervals stored by the double precision arithmetic before 0007.
--
-- Before 0007 the easiness factor drifted in double precision (1.3 + 0.1 + 0.1 =
-- 1.5000000000000002) and ceil(interval × EF) came out one day too long in about 7% of
-- review sequences (issue 16). 0007 made EF exact and put it back on its 0.02 grid, but
-- kept the stored interval_days; SM-2's next interval is ceil(interval × EF) of the stored
-- one, so a wrong stored interval would keep every later interval of that pair wrong.
--
-- For each review_schedule row whose interval came from ceil(interval × EF)
-- (repetitions >= 3), its question_answered events are replayed in arrival order
-- (event_id) twice: with the old double precision arithmetic, exactly as the pre-0007
-- functions computed it, and exactly (numeric). The row is repaired only when the old
-- replay reproduces the stored state (EF on its grid, interval, repetitions): then the
-- events are its whole history and the stored interval is the old code's. interval_days
-- becomes the exact one, and the SM-2 due (sm2_due, and next_review_at where it is
-- SM-2's due: sm2_due NULL, the pre-0007 rows, or equal to it) moves by the difference
-- in days. A row whose history is incomplete (partitions dropped by retention) or that
-- has been answered since 0007 is left as it is. Applied right after 0007 (both in the
-- same release), every row with its events retained is in the first case.
--
-- One pass over the candidate rows' events in (user, item, event_id) order; the number of
-- rows repaired is reported in a NOTICE.
DO $repair$
DECLARE
    v_fef double precision;
    v_xef numeric;
    v_fint integer;
    v_xint integer;
    v_reps integer;
    v_repaired bigint := 0;
    r record;
BEGIN
    FOR r IN
        SELECT rs.user_id, rs.content_id, rs.easiness, rs.interval_days, rs.repetitions,
               e.quality,
               row_number() OVER w = 1 AS is_first,
               row_number() OVER w = count(*) OVER w AS is_last
          FROM review_schedule rs
          JOIN learning_events e ON e.user_id = rs.user_id AND e.content_id = rs.content_id
         WHERE rs.repetitions >= 3 AND e.event_type = 'question_answered'
           AND e.quality IS NOT NULL
        WINDOW w AS (PARTITION BY rs.user_id, rs.content_id ORDER BY e.event_id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
         ORDER BY rs.user_id, rs.content_id, e.event_id
    LOOP
        IF r.is_first THEN
            v_fef := 2.5;
            v_xef := 2.5;
            v_fint := 0;
            v_xint := 0;
            v_reps := 0;
        END IF;
        -- the pre-0007 sm2_next_interval / sm2_next_easiness (double precision), and the
        -- exact ones (sm2.sql); repetitions do not depend on EF
        v_fint := CASE WHEN r.quality < 3 OR v_reps = 0 THEN 1 WHEN v_reps = 1 THEN 6
                       ELSE least(36500::double precision, ceil(v_fint * v_fef))::integer END;
        v_xint := CASE WHEN r.quality < 3 OR v_reps = 0 THEN 1 WHEN v_reps = 1 THEN 6
                       ELSE least(36500::numeric, ceil(v_xint * v_xef))::integer END;
        v_reps := CASE WHEN r.quality < 3 THEN 0 ELSE v_reps + 1 END;
        v_fef := greatest(1.3::double precision,
                          v_fef + 0.1::double precision
                          - (5 - r.quality) * (0.08::double precision
                                               + (5 - r.quality) * 0.02::double precision));
        v_xef := greatest(1.30, v_xef + 0.10 - (5 - r.quality) * (0.08 + (5 - r.quality) * 0.02));
        IF r.is_last AND v_xint <> v_fint AND v_fint = r.interval_days
           AND v_reps = r.repetitions AND v_xef = r.easiness
           AND round((v_fef * 50)::numeric) / 50 = r.easiness THEN
            UPDATE review_schedule rs
               SET interval_days = v_xint,
                   next_review_at = CASE WHEN rs.sm2_due IS NULL OR rs.next_review_at = rs.sm2_due
                                         THEN rs.next_review_at + (v_xint - v_fint) * interval '24 hours'
                                         ELSE rs.next_review_at END,
                   sm2_due = rs.sm2_due + (v_xint - v_fint) * interval '24 hours'
             WHERE rs.user_id = r.user_id AND rs.content_id = r.content_id;
            v_repaired := v_repaired + 1;
        END IF;
    END LOOP;
    RAISE NOTICE '0010: % SM-2 intervals repaired', v_repaired;
END
$repair$;
