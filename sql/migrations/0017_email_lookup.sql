-- transactional: false
-- E-mail uniqueness that survives sharding by user_id. users UNIQUE (email) could only be
-- enforced within one shard on Citus; the same guarantee now lives in user_emails, keyed
-- by the e-mail (distributed by it on Citus, `dmdb citus plan`), kept in the same
-- transaction as users by triggers. A duplicate e-mail is still refused with 23505 (unique
-- violation); the constraint is named users_email_key again once the old one is gone,
-- so the error names it as before. A user is found by e-mail through it:
-- SELECT user_id FROM user_emails WHERE email = $1.
--
-- user_emails holds personal data (the e-mail): the privacy inventory lists it beside
-- users, and erasing a user erases its row (the DELETE trigger).
--
-- Lock-light: the triggers first (from then on every write is mirrored, and the old
-- constraint still refuses duplicates), then the backfill, then the old constraint
-- dropped in one short statement. Every statement may run again.
--
-- squawk, silenced for this file: ban-drop-constraint, because the guarantee it gave is
-- kept by user_emails' key, under the same constraint name, before it is dropped.
-- squawk-ignore-file ban-drop-constraint

CREATE TABLE IF NOT EXISTS user_emails (
    email text NOT NULL,
    user_id bigint NOT NULL,
    CONSTRAINT user_emails_pkey PRIMARY KEY (email)
);

COMMENT ON TABLE user_emails IS
    'The e-mail of every user, unique: users.email mirrored by triggers (migration 0017).';

CREATE OR REPLACE FUNCTION user_emails_mirror() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE user_emails;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM user_emails WHERE email = OLD.email AND user_id = OLD.user_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO user_emails (email, user_id) VALUES (NEW.email, NEW.user_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER users_email_mirror
    AFTER INSERT OR DELETE OR UPDATE OF email, user_id ON users
    FOR EACH ROW EXECUTE FUNCTION user_emails_mirror();

CREATE OR REPLACE TRIGGER users_email_mirror_truncate
    AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION user_emails_mirror();

INSERT INTO user_emails (email, user_id)
SELECT email, user_id FROM users
ON CONFLICT (email) DO NOTHING;

ALTER TABLE users DROP CONSTRAINT IF EXISTS users_email_key;

-- The name clients and logs know (an index and a constraint share the name space).
DO $do$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_constraint
               WHERE conname = 'user_emails_pkey' AND conrelid = 'user_emails'::regclass) THEN
        ALTER TABLE user_emails RENAME CONSTRAINT user_emails_pkey TO users_email_key;
    END IF;
END
$do$;
