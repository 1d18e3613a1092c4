-- The time split of `dmdb models fit`: answers at or after this instant are held out
-- (the latest fraction 1 − q of the window's answers). NULL when the window is empty.
SELECT percentile_disc(%(q)s) WITHIN GROUP (ORDER BY e.occurred_at)
  FROM learning_events e
 WHERE e.event_type = 'question_answered'
   AND e.occurred_at >= %(since)s AND e.occurred_at < %(until)s
   AND e.is_correct IS NOT NULL AND e.concept_id IS NOT NULL
