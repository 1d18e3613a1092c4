-- The privacy request ledger (`dmdb privacy`): every export and erasure of a learner's
-- data, with per-relation counts and the date after which backups no longer hold it.
-- The subject is a keyed hash (HMAC-SHA256 of the learner id with this database's own
-- key): the ledger names no one, yet a restored backup can be matched against it and
-- the erasures made after it re-applied. Only the owner reads it (dm_app and dm_readonly
-- get nothing: the schema is not theirs).

CREATE SCHEMA dmdb_privacy;

CREATE TABLE dmdb_privacy.requests (
    request_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL CONSTRAINT requests_kind_check CHECK (kind IN ('export', 'erase')),
    subject text NOT NULL,
    received_at timestamptz NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now(),
    counts jsonb NOT NULL DEFAULT '{}',
    backups_clean_after timestamptz,
    requested_by text NOT NULL DEFAULT current_user,
    reapplied_from bigint
);

CREATE INDEX requests_subject_idx ON dmdb_privacy.requests (subject);

-- The key of the subject hashes: 32 random bytes (gen_random_uuid draws from the
-- server's strong random source; the embedded build has no pgcrypto).
CREATE TABLE dmdb_privacy.subject_key (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT subject_key_singleton CHECK (singleton),
    key bytea NOT NULL DEFAULT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text,
                                              '-', ''), 'hex')
);

INSERT INTO dmdb_privacy.subject_key DEFAULT VALUES;

REVOKE ALL ON SCHEMA dmdb_privacy FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA dmdb_privacy FROM dm_app, dm_readonly;
