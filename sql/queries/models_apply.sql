-- `dmdb models fit --apply`: one concept's fitted BKT parameters, which every new
-- knowledge_states row of that concept starts from (record_answer/record_answers).
-- temporal_decay is not fitted: the concept's current value is written back.
INSERT INTO bkt_concept_parameters AS p (concept_id, initial_knowledge, learning_rate,
                                         guess_parameter, slip_parameter, temporal_decay,
                                         fitted_at, answers_used)
VALUES (%(concept_id)s, %(initial_knowledge)s, %(learning_rate)s, %(guess)s, %(slip)s,
        %(temporal_decay)s, now(), %(answers_used)s)
ON CONFLICT (concept_id) DO UPDATE
   SET initial_knowledge = EXCLUDED.initial_knowledge,
       learning_rate = EXCLUDED.learning_rate,
       guess_parameter = EXCLUDED.guess_parameter,
       slip_parameter = EXCLUDED.slip_parameter,
       temporal_decay = EXCLUDED.temporal_decay,
       fitted_at = EXCLUDED.fitted_at,
       answers_used = EXCLUDED.answers_used
