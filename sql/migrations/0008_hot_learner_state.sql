-- HOT updates for the per-answer writes of knowledge_states and review_schedule.
--
-- Every answer updates knowledge_states.mastery_probability and
-- review_schedule.next_review_at. Both columns were in an index (0003), so no such
-- update could be HOT: each wrote a new heap tuple AND a new entry in every index of
-- the table (primary key included), and left dead index entries for VACUUM. Without
-- them the updates are HOT (fillfactor 80 leaves the room on the page, 0003), and a new
-- review_schedule row pays one index insert instead of two. Measured (pg_stat_statements
-- on the 0007 schema): record_answer's WAL 1,478 -> 1,249 bytes per call, the
-- knowledge_states UPDATE 3 WAL records -> 1; bench/bench_record_answer.py prints WAL
-- and server CPU per answer (README, Benchmarks).
--
-- The query patterns they served are still served by the primary keys, led by
-- user_id: a learner has one row per concept (tens) and one per item seen (hundreds at
-- most), so "this user's rows, filtered and sorted" reads one small key range:
--   * user_id = $1 AND mastery_probability > 0.8 ORDER BY last_interaction DESC, and
--     next_questions' "mastered" set: knowledge_states_pkey, in the user's partition;
--   * next_questions' due reviews (next_review_at <= now ORDER BY next_review_at):
--     review_schedule_pkey, then a top-N sort.
-- bench/bench_next_questions.py prints both plans and next_questions' latency with and
-- without this migration (rolled back in the same run).
--
-- Dropping an index only changes the catalog, so the ACCESS EXCLUSIVE lock is held for
-- an instant; waiting for it is bounded by the engine's lock_timeout (and retried). A
-- partitioned index cannot be dropped CONCURRENTLY, and the file stays one transaction
-- so that both go or neither.

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX knowledge_states_user_mastery_idx;

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX review_schedule_user_due_idx;
