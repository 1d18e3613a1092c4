-- BKT parameters per concept by expectation–maximisation (`dmdb models fit`).
--
-- The model is the one record_answer runs (DESIGN.md, "The algorithms"), read as a
-- two-state hidden Markov model per (learner, concept) answer sequence: hidden state
-- K (knows) / U (does not); P(K) at the first answer = initial_knowledge (L0); answer
-- correct with 1 − slip in K, guess in U; between answer i and i+1 the learner first
-- learns (U → K with learning_rate T), then forgets (K → U with 1 − f, f = decay^Δdays).
-- So the transition is K→K f, K→U 1 − f, U→K T·f, U→U 1 − T·f. The forward pass is
-- exactly record_answer's filter (its prior is the predicted P(correct)'s p0).
--
-- E-step: forward filter, then the backward smoother in the filtered form
--   γ_i = α_i ⊙ Aᵢ (γ_{i+1} ⊘ prior_{i+1})      (no underflow: every quantity is a probability)
-- M-step (closed form): L0 = mean γ_first(K); guess = Σγ(U)·y / Σγ(U);
-- slip = Σγ(K)·(1−y) / Σγ(K); T = E[learning events] / E[steps spent in U], where a
-- step U→K is a learning event for sure and a step U→U hides one with posterior
-- T(1−f) / (1 − T·f) (learned, then forgot). decay is not fitted: it stays the concept's
-- current value (no closed-form M-step; it acts only through the gaps between answers).
-- velocity is taken as 1 (personal_learning_velocity is per learner, not per concept).
--
-- Parameters are kept inside the CHECK ranges during EM (L0, T in [1e-6, 1 − 1e-6];
-- guess, slip in [1e-6, 0.5]) and EM starts from the current parameters, which keeps
-- it in the non-degenerate mode (K answers better than U) when it starts there.
--
-- Time split: answers at or after p_cutoff are held out. EM sees only the earlier
-- answers; the held-out log loss of a parameter set runs its filter over each whole
-- sequence (so a held-out answer is predicted from everything before it) and scores
-- only the held-out answers. Sequences that began before p_since (the learner answered
-- the concept before the window) are left out: their first answer in the window does
-- not start from L0. Concepts with fewer than p_min_answers training answers or
-- p_min_learners learners are evaluated but not fitted (status 'too_few_answers').
--
-- Cost: O(answers) per EM iteration in PL/pgSQL over arrays (element access is O(1) on
-- fixed-width arrays without NULLs); one sort of the window's answers up front.
CREATE OR REPLACE FUNCTION models_bkt_fit(
    p_since timestamptz,
    p_until timestamptz,
    p_cutoff timestamptz,
    p_max_iterations integer DEFAULT 25,
    p_tolerance double precision DEFAULT 1e-6,
    p_min_answers integer DEFAULT 200,
    p_min_learners integer DEFAULT 20
) RETURNS TABLE (
    concept_id bigint,
    concept_code text,
    status text,
    train_answers bigint,
    train_learners bigint,
    holdout_answers bigint,
    iterations integer,
    converged boolean,
    current_initial_knowledge double precision,
    current_learning_rate double precision,
    current_guess double precision,
    current_slip double precision,
    temporal_decay double precision,
    initial_knowledge double precision,
    learning_rate double precision,
    guess double precision,
    slip double precision,
    train_log_loss_before double precision,
    train_log_loss_after double precision,
    holdout_log_loss_before double precision,
    holdout_log_loss_after double precision
)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    c_lo CONSTANT double precision := 1e-6;
    v_current jsonb;
    v_n integer;
    v_nc integer;
    v_iter integer := 0;
    v_active integer;
    i integer;
    c integer;
    -- per answer, ordered by concept, learner, time
    a_c integer[];
    a_cid bigint[];
    a_u bigint[];
    a_y boolean[];
    a_f double precision[];     -- decay^Δdays since the previous answer of the sequence
    a_first boolean[];
    a_held boolean[];
    a_alpha double precision[]; -- filtered P(K | answers so far), after the answer
    a_prior double precision[]; -- P(K | earlier answers), before the answer
    -- per concept
    k_id bigint[];
    k_code text[];
    k_decay double precision[];
    k_l0 double precision[];
    k_t double precision[];
    k_g double precision[];
    k_s double precision[];
    k_cur_l0 double precision[];
    k_cur_t double precision[];
    k_cur_g double precision[];
    k_cur_s double precision[];
    k_train bigint[];
    k_learners bigint[];
    k_held bigint[];
    k_fit boolean[];
    k_done boolean[];
    k_iter integer[];
    k_ll double precision[];
    k_ll_prev double precision[];
    k_ll_first double precision[];
    k_hold_before double precision[];
    k_hold_after double precision[];
    -- sufficient statistics per concept
    s_l0 double precision[];
    s_seq double precision[];
    s_learn double precision[];
    s_risk double precision[];
    s_gnum double precision[];
    s_gden double precision[];
    s_snum double precision[];
    s_sden double precision[];
    -- scratch
    v_pk double precision;
    v_a double precision;
    v_num double precision;
    v_den double precision;
    v_t double precision;
    v_f double precision;
    v_gk double precision;
    v_gu double precision;
    v_next_gk double precision;
    v_next_prior double precision;
    v_rk double precision;
    v_ru double precision;
    v_has_next boolean;
    v_p double precision;
BEGIN
    IF p_since IS NULL OR p_until IS NULL OR p_cutoff IS NULL OR p_max_iterations IS NULL
       OR p_max_iterations < 0 OR p_min_answers IS NULL OR p_min_learners IS NULL THEN
        RAISE EXCEPTION 'models_bkt_fit: window, cutoff, iterations and minimums must be given'
            USING ERRCODE = '22023';
    END IF;

    -- The parameters new knowledge states start from: bkt_concept_parameters where it
    -- exists and has the concept, else the column defaults of knowledge_states.
    -- (read dynamically: the table comes with migration 0007).
    v_current := '{}';
    IF to_regclass('bkt_concept_parameters') IS NOT NULL THEN
        EXECUTE 'SELECT coalesce(jsonb_object_agg(concept_id, jsonb_build_object(
                     ''l0'', initial_knowledge, ''t'', learning_rate, ''g'', guess_parameter,
                     ''s'', slip_parameter, ''d'', temporal_decay)), ''{}'')
                   FROM bkt_concept_parameters' INTO v_current;
    END IF;

    WITH ev AS (
        SELECT e.concept_id AS cid, e.user_id AS uid, e.occurred_at AS at, e.event_id AS eid,
               e.is_correct AS y
          FROM learning_events e
         WHERE e.event_type = 'question_answered'
           AND e.occurred_at >= p_since AND e.occurred_at < p_until
           AND e.is_correct IS NOT NULL AND e.concept_id IS NOT NULL
    ),
    started_before AS (
        SELECT DISTINCT ev.uid, ev.cid
          FROM ev
         WHERE p_since > '-infinity'
           AND EXISTS (SELECT 1 FROM learning_events b
                        WHERE b.user_id = ev.uid AND b.occurred_at < p_since
                          AND b.event_type = 'question_answered' AND b.concept_id = ev.cid)
    ),
    kept AS (
        SELECT ev.*, dense_rank() OVER (ORDER BY ev.cid)::integer AS k,
               lag(ev.at) OVER (PARTITION BY ev.cid, ev.uid ORDER BY ev.at, ev.eid) AS prev_at
          FROM ev
         WHERE NOT EXISTS (SELECT 1 FROM started_before s WHERE s.uid = ev.uid AND s.cid = ev.cid)
    )
    SELECT count(*)::integer,
           array_agg(kept.k ORDER BY kept.cid, kept.uid, kept.at, kept.eid),
           array_agg(kept.cid ORDER BY kept.cid, kept.uid, kept.at, kept.eid),
           array_agg(kept.uid ORDER BY kept.cid, kept.uid, kept.at, kept.eid),
           array_agg(kept.y ORDER BY kept.cid, kept.uid, kept.at, kept.eid),
           array_agg(CASE WHEN kept.prev_at IS NULL THEN 1::double precision
                          ELSE bkt_forget(1::double precision,
                                          coalesce(cp.temporal_decay, 0.98::double precision),
                                          greatest(0::double precision,
                                                   date_part('epoch', kept.at - kept.prev_at) / 86400.0))
                     END ORDER BY kept.cid, kept.uid, kept.at, kept.eid),
           array_agg(kept.prev_at IS NULL ORDER BY kept.cid, kept.uid, kept.at, kept.eid),
           array_agg(kept.at >= p_cutoff ORDER BY kept.cid, kept.uid, kept.at, kept.eid)
      INTO v_n, a_c, a_cid, a_u, a_y, a_f, a_first, a_held
      FROM kept
      LEFT JOIN LATERAL (SELECT (v_current -> kept.cid::text ->> 'd')::double precision
                                    AS temporal_decay) cp ON true;

    IF v_n = 0 THEN
        RETURN;
    END IF;

    WITH per AS (
        SELECT x.k, min(x.cid) AS cid,
               count(*) FILTER (WHERE NOT x.held) AS n_train,
               count(DISTINCT x.uid) FILTER (WHERE NOT x.held) AS n_learners,
               count(*) FILTER (WHERE x.held) AS n_held
          FROM unnest(a_c, a_cid, a_u, a_held) AS x (k, cid, uid, held)
         GROUP BY x.k
    )
    SELECT count(*)::integer,
           array_agg(per.cid ORDER BY per.k),
           array_agg(co.code ORDER BY per.k),
           array_agg(coalesce(cp.temporal_decay, 0.98) ORDER BY per.k),
           array_agg(coalesce(cp.initial_knowledge, 0.1) ORDER BY per.k),
           array_agg(coalesce(cp.learning_rate, 0.15) ORDER BY per.k),
           array_agg(coalesce(cp.guess_parameter, 0.2) ORDER BY per.k),
           array_agg(coalesce(cp.slip_parameter, 0.1) ORDER BY per.k),
           array_agg(per.n_train ORDER BY per.k),
           array_agg(per.n_learners ORDER BY per.k),
           array_agg(per.n_held ORDER BY per.k)
      INTO v_nc, k_id, k_code, k_decay, k_cur_l0, k_cur_t, k_cur_g, k_cur_s,
           k_train, k_learners, k_held
      FROM per
      LEFT JOIN concepts co ON co.concept_id = per.cid
      LEFT JOIN LATERAL (
          SELECT (v_current -> per.cid::text ->> 'l0')::double precision AS initial_knowledge,
                 (v_current -> per.cid::text ->> 't')::double precision AS learning_rate,
                 (v_current -> per.cid::text ->> 'g')::double precision AS guess_parameter,
                 (v_current -> per.cid::text ->> 's')::double precision AS slip_parameter,
                 (v_current -> per.cid::text ->> 'd')::double precision AS temporal_decay) cp ON true;
    a_cid := NULL;
    a_u := NULL;

    -- EM starts from the current parameters, kept inside the bounds it maintains.
    k_l0 := array_fill(0::double precision, ARRAY[v_nc]);
    k_t := k_l0; k_g := k_l0; k_s := k_l0;
    k_fit := array_fill(false, ARRAY[v_nc]);
    k_done := k_fit;
    k_iter := array_fill(0, ARRAY[v_nc]);
    k_ll_prev := array_fill('-infinity'::double precision, ARRAY[v_nc]);
    k_ll_first := array_fill(NULL::double precision, ARRAY[v_nc]);
    FOR c IN 1 .. v_nc LOOP
        k_l0[c] := least(greatest(k_cur_l0[c], c_lo), 1 - c_lo);
        k_t[c] := least(greatest(k_cur_t[c], c_lo), 1 - c_lo);
        k_g[c] := least(greatest(k_cur_g[c], c_lo), 0.5);
        k_s[c] := least(greatest(k_cur_s[c], c_lo), 0.5);
        k_fit[c] := k_train[c] >= p_min_answers AND k_learners[c] >= p_min_learners
                    AND k_train[c] > 0;
        k_done[c] := NOT k_fit[c];
    END LOOP;
    a_alpha := array_fill(0::double precision, ARRAY[v_n]);
    a_prior := a_alpha;

    LOOP
        -- The E-step runs once more after the last update to score the training data.
        SELECT count(*) FILTER (WHERE NOT d) INTO v_active FROM unnest(k_done) AS d;
        EXIT WHEN v_active = 0;

        -- Forward: the filter over training answers (record_answer's update).
        k_ll := array_fill(0::double precision, ARRAY[v_nc]);
        FOR i IN 1 .. v_n LOOP
            CONTINUE WHEN a_held[i];
            c := a_c[i];
            CONTINUE WHEN k_done[c];
            IF a_first[i] THEN
                v_pk := k_l0[c];
            ELSE
                v_a := a_alpha[i - 1];
                v_pk := a_f[i] * (v_a + (1 - v_a) * k_t[c]);
            END IF;
            IF a_y[i] THEN
                v_num := v_pk * (1 - k_s[c]);
                v_den := v_num + (1 - v_pk) * k_g[c];
            ELSE
                v_num := v_pk * k_s[c];
                v_den := v_num + (1 - v_pk) * (1 - k_g[c]);
            END IF;
            a_prior[i] := v_pk;
            a_alpha[i] := v_num / v_den;
            k_ll[c] := k_ll[c] + ln(v_den);
        END LOOP;

        -- Converged (or out of iterations): keep these parameters, score them.
        FOR c IN 1 .. v_nc LOOP
            IF NOT k_done[c] THEN
                IF k_ll_first[c] IS NULL THEN
                    k_ll_first[c] := k_ll[c];
                END IF;
                IF k_iter[c] >= p_max_iterations
                   OR (k_iter[c] > 0 AND (k_ll[c] - k_ll_prev[c]) <= p_tolerance * k_train[c]) THEN
                    k_done[c] := true;
                END IF;
                k_ll_prev[c] := k_ll[c];
            END IF;
        END LOOP;
        SELECT count(*) FILTER (WHERE NOT d) INTO v_active FROM unnest(k_done) AS d;
        EXIT WHEN v_active = 0;

        -- Backward smoother with the statistics of the M-step.
        s_l0 := array_fill(0::double precision, ARRAY[v_nc]);
        s_seq := s_l0; s_learn := s_l0; s_risk := s_l0;
        s_gnum := s_l0; s_gden := s_l0; s_snum := s_l0; s_sden := s_l0;
        v_has_next := false;
        FOR i IN REVERSE v_n .. 1 LOOP
            IF a_held[i] OR k_done[a_c[i]] THEN
                v_has_next := false;
                CONTINUE;
            END IF;
            c := a_c[i];
            v_a := a_alpha[i];
            IF v_has_next THEN
                -- ratios γ_{i+1} / prior_{i+1}; a zero prior has a zero posterior
                v_rk := CASE WHEN v_next_prior > 0 THEN v_next_gk / v_next_prior ELSE 0 END;
                v_ru := CASE WHEN v_next_prior < 1 THEN (1 - v_next_gk) / (1 - v_next_prior) ELSE 0 END;
                v_t := k_t[c];
                v_gk := v_a * (v_f * v_rk + (1 - v_f) * v_ru);
                v_gu := (1 - v_a) * (v_t * v_f * v_rk + (1 - v_t * v_f) * v_ru);
                -- learning events out of U: U→K surely, U→U when learned then forgotten
                s_learn[c] := s_learn[c] + (1 - v_a) * v_t * (v_f * v_rk + (1 - v_f) * v_ru);
                s_risk[c] := s_risk[c] + v_gu;
            ELSE
                v_gk := v_a;
                v_gu := 1 - v_a;
            END IF;
            IF a_y[i] THEN
                s_gnum[c] := s_gnum[c] + v_gu;
            ELSE
                s_snum[c] := s_snum[c] + v_gk;
            END IF;
            s_gden[c] := s_gden[c] + v_gu;
            s_sden[c] := s_sden[c] + v_gk;
            IF a_first[i] THEN
                s_l0[c] := s_l0[c] + v_gk;
                s_seq[c] := s_seq[c] + 1;
                v_has_next := false;
            ELSE
                v_has_next := true;
                v_next_gk := v_gk / (v_gk + v_gu);
                v_next_prior := a_prior[i];
                v_f := a_f[i];
            END IF;
        END LOOP;

        -- M-step.
        FOR c IN 1 .. v_nc LOOP
            CONTINUE WHEN k_done[c];
            k_iter[c] := k_iter[c] + 1;
            IF s_seq[c] > 0 THEN
                k_l0[c] := least(greatest(s_l0[c] / s_seq[c], c_lo), 1 - c_lo);
            END IF;
            IF s_risk[c] > 0 THEN
                k_t[c] := least(greatest(s_learn[c] / s_risk[c], c_lo), 1 - c_lo);
            END IF;
            IF s_gden[c] > 0 THEN
                k_g[c] := least(greatest(s_gnum[c] / s_gden[c], c_lo), 0.5);
            END IF;
            IF s_sden[c] > 0 THEN
                k_s[c] := least(greatest(s_snum[c] / s_sden[c], c_lo), 0.5);
            END IF;
        END LOOP;
    END LOOP;

    -- Held-out log loss of the current and of the fitted parameters: the filter over
    -- each whole sequence, scoring the held-out answers only.
    k_hold_before := array_fill(0::double precision, ARRAY[v_nc]);
    k_hold_after := k_hold_before;
    FOR pass IN 1 .. 2 LOOP
        FOR i IN 1 .. v_n LOOP
            c := a_c[i];
            IF a_first[i] THEN
                v_pk := CASE WHEN pass = 1 THEN k_cur_l0[c] ELSE k_l0[c] END;
            ELSE
                v_a := a_alpha[i - 1];
                v_pk := a_f[i] * (v_a + (1 - v_a) * CASE WHEN pass = 1 THEN k_cur_t[c] ELSE k_t[c] END);
            END IF;
            -- v_t = guess, v_f = slip in this pass
            IF pass = 1 THEN
                v_t := k_cur_g[c]; v_f := k_cur_s[c];
            ELSE
                v_t := k_g[c]; v_f := k_s[c];
            END IF;
            v_p := v_pk * (1 - v_f) + (1 - v_pk) * v_t;
            IF a_y[i] THEN
                v_num := v_pk * (1 - v_f);
                v_den := v_p;
            ELSE
                v_num := v_pk * v_f;
                v_den := 1 - v_p;
            END IF;
            a_alpha[i] := CASE WHEN v_den > 0 THEN v_num / v_den ELSE v_pk END;
            IF a_held[i] THEN
                v_p := least(greatest(v_p, 1e-9), 1 - 1e-9);
                IF pass = 1 THEN
                    k_hold_before[c] := k_hold_before[c] - CASE WHEN a_y[i] THEN ln(v_p) ELSE ln(1 - v_p) END;
                ELSE
                    k_hold_after[c] := k_hold_after[c] - CASE WHEN a_y[i] THEN ln(v_p) ELSE ln(1 - v_p) END;
                END IF;
            END IF;
        END LOOP;
    END LOOP;

    FOR c IN 1 .. v_nc LOOP
        concept_id := k_id[c];
        concept_code := k_code[c];
        status := CASE WHEN k_fit[c] THEN 'fitted' ELSE 'too_few_answers' END;
        train_answers := k_train[c];
        train_learners := k_learners[c];
        holdout_answers := k_held[c];
        iterations := k_iter[c];
        converged := k_fit[c] AND k_iter[c] < p_max_iterations;
        current_initial_knowledge := k_cur_l0[c];
        current_learning_rate := k_cur_t[c];
        current_guess := k_cur_g[c];
        current_slip := k_cur_s[c];
        temporal_decay := k_decay[c];
        initial_knowledge := CASE WHEN k_fit[c] THEN k_l0[c] END;
        learning_rate := CASE WHEN k_fit[c] THEN k_t[c] END;
        guess := CASE WHEN k_fit[c] THEN k_g[c] END;
        slip := CASE WHEN k_fit[c] THEN k_s[c] END;
        train_log_loss_before := CASE WHEN k_fit[c] THEN -k_ll_first[c] / k_train[c] END;
        train_log_loss_after := CASE WHEN k_fit[c] THEN -k_ll_prev[c] / k_train[c] END;
        holdout_log_loss_before := CASE WHEN k_held[c] > 0 THEN k_hold_before[c] / k_held[c] END;
        holdout_log_loss_after := CASE WHEN k_fit[c] AND k_held[c] > 0
                                       THEN k_hold_after[c] / k_held[c] END;
        RETURN NEXT;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION models_bkt_fit(timestamptz, timestamptz, timestamptz, integer, double precision,
                                   integer, integer) IS
    'BKT per concept by EM (forward-backward per learner sequence) with a time-split held-out log loss.';
