-- Rollback of 0003: drop the learner-state tables (partitions go with their parent).

DROP TABLE bandit_arms;

DROP TABLE learning_sessions;

DROP TABLE review_schedule;

DROP TABLE knowledge_states;
