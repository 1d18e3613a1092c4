-- Rollback of 0018: the ledger and its key dropped.

DROP TABLE dmdb_privacy.subject_key;

DROP TABLE dmdb_privacy.requests;

DROP SCHEMA dmdb_privacy;
