-- bench/bench_anchors.py's `app`: what an application would write instead of
-- record_answer, for pgbench -M prepared (the bench puts its \set lines of the learner,
-- item, concept, response time and correctness in front). 11 round trips: BEGIN, five
-- reads (the learner FOR UPDATE, the settings, the item, the knowledge state and the
-- review state FOR UPDATE), the four writes, COMMIT. BKT (DESIGN.md), SM-2 exact in
-- hundredths, FSRS-6's review-state formulas (py-fsrs 6: retrievability with the
-- settings' decay w20, next difficulty with mean reversion to D0(4), recall or forget
-- stability, the interval for the desired retention) and the streak are computed in
-- the client by pgbench's expressions.
BEGIN;
SELECT xp, current_streak AS cs, longest_streak AS ls, coalesce(last_active_date - CURRENT_DATE, -2) AS lad FROM users WHERE user_id = :u FOR UPDATE \gset
SELECT fsrs_parameters[1] AS w0, fsrs_parameters[2] AS w1, fsrs_parameters[3] AS w2, fsrs_parameters[4] AS w3, fsrs_parameters[5] AS w4, fsrs_parameters[6] AS w5, fsrs_parameters[7] AS w6, fsrs_parameters[8] AS w7, fsrs_parameters[9] AS w8, fsrs_parameters[10] AS w9, fsrs_parameters[11] AS w10, fsrs_parameters[12] AS w11, fsrs_parameters[13] AS w12, fsrs_parameters[14] AS w13, fsrs_parameters[15] AS w14, fsrs_parameters[16] AS w15, fsrs_parameters[17] AS w16, fsrs_parameters[18] AS w17, fsrs_parameters[19] AS w18, fsrs_parameters[20] AS w19, fsrs_parameters[21] AS w20, fsrs_desired_retention AS ret, fsrs_maximum_interval AS maxi, (scheduler = 'fsrs')::int AS usefsrs FROM algorithm_settings \gset
SELECT concept_id AS ic, coalesce(average_response_time_ms, 0) AS avgrt FROM content WHERE content_id = :i \gset
SELECT mastery_probability AS m, temporal_decay AS dec, guess_parameter AS g, slip_parameter AS s, learning_rate AS lr, personal_learning_velocity AS v, coalesce(greatest(0, extract(epoch FROM now() - last_interaction)) / 86400.0, 0) AS dd, (mastered_at IS NULL)::int AS notmastered FROM knowledge_states WHERE user_id = :u AND concept_id = :ic FOR UPDATE \gset
SELECT (easiness * 100)::int AS ef100, interval_days AS iv, repetitions AS reps, coalesce(fsrs_stability, 1) AS fs, coalesce(fsrs_difficulty, 5) AS fd, coalesce(greatest(0, extract(epoch FROM now() - last_reviewed_at)) / 86400.0, 0) AS fel FROM review_schedule WHERE user_id = :u AND content_id = :i FOR UPDATE \gset
\set ok CASE WHEN :cr < 7 THEN 1 ELSE 0 END
\set p0 :m * pow(:dec, :dd)
\set p1 CASE WHEN :ok = 1 THEN :p0 * (1 - :s) / (:p0 * (1 - :s) + (1 - :p0) * :g) ELSE :p0 * :s / (:p0 * :s + (1 - :p0) * (1 - :g)) END
\set m1 :p1 + (1 - :p1) * least(1.0, :lr * :v)
\set pc :p0 * (1 - :s) + (1 - :p0) * :g
\set newmast CASE WHEN :notmastered = 1 AND :m1 >= 0.95 THEN 1 ELSE 0 END
\set q CASE WHEN :ok = 0 THEN 1 WHEN :avgrt = 0 OR :rt <= :avgrt THEN 5 ELSE 4 END
\set reps1 CASE WHEN :q < 3 THEN 0 ELSE :reps + 1 END
\set iv1 CASE WHEN :q < 3 THEN 1 WHEN :reps = 0 THEN 1 WHEN :reps = 1 THEN 6 ELSE (:iv * :ef100 + 99) / 100 END
\set ef1 greatest(130, :ef100 + 10 - (5 - :q) * (8 + (5 - :q) * 2))
\set grade CASE WHEN :q < 3 THEN 1 WHEN :q = 3 THEN 2 WHEN :q = 4 THEN 3 ELSE 4 END
\set decay -1.0 * :w20
\set factor pow(0.9, 1.0 / :decay) - 1
\set r pow(1 + :factor * :fel / :fs, :decay)
\set dnext :fd - :w6 * (:grade - 3) * (10 - :fd) / 9
\set fd1 least(10.0, greatest(1.0, :w7 * (:w4 - exp(:w5 * 3) + 1) + (1 - :w7) * :dnext))
\set fs1 CASE WHEN :grade = 1 THEN least(:fs, :w11 * pow(:fd, -1.0 * :w12) * (pow(:fs + 1, :w13) - 1) * exp(:w14 * (1 - :r))) ELSE :fs * (1 + exp(:w8) * (11 - :fd) * pow(:fs, -1.0 * :w9) * (exp(:w10 * (1 - :r)) - 1) * (CASE WHEN :grade = 2 THEN :w15 ELSE 1 END) * (CASE WHEN :grade = 4 THEN :w16 ELSE 1 END)) END
\set fiv least(:maxi, greatest(1, int(:fs1 / :factor * (pow(:ret, 1.0 / :decay) - 1) + 0.5)))
\set due CASE WHEN :usefsrs = 1 THEN :fiv ELSE :iv1 END
\set cs1 CASE WHEN :lad = 0 THEN :cs WHEN :lad = -1 THEN :cs + 1 ELSE 1 END
\set ls1 greatest(:ls, :cs1)
\set xp1 :xp + CASE WHEN :ok = 1 THEN 10 ELSE 2 END
UPDATE users SET xp = :xp1, current_streak = :cs1, longest_streak = :ls1, last_active_date = CURRENT_DATE WHERE user_id = :u;
UPDATE knowledge_states SET mastery_probability = :m1, last_interaction = now(), attempts = attempts + 1, correct_attempts = correct_attempts + :ok, mastered_at = CASE WHEN :newmast = 1 THEN now() ELSE mastered_at END WHERE user_id = :u AND concept_id = :ic;
UPDATE review_schedule SET easiness = :ef1 / 100.0, interval_days = :iv1, repetitions = :reps1, next_review_at = now() + :due * interval '1 day', last_quality = :q, last_reviewed_at = now(), sm2_due = now() + :iv1 * interval '1 day', fsrs_state = 2, fsrs_step = 0, fsrs_stability = :fs1, fsrs_difficulty = :fd1, fsrs_due = now() + :fiv * interval '1 day' WHERE user_id = :u AND content_id = :i;
INSERT INTO learning_events (user_id, occurred_at, event_type, concept_id, content_id, session_id, is_correct, response_time_ms, hints_used, quality, mastery_before, mastery_after, response_data, context_data) VALUES (:u, now(), 'question_answered', :ic, :i, NULL, :ok = 1, :rt, 0, :q, :p0, :m1, jsonb_build_object('predicted_correct', :pc::double precision), '{}');
END;
