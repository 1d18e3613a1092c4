-- transactional: false
-- Rollback of 0017: users UNIQUE (email) again (its index built CONCURRENTLY first), then
-- the mirror removed.

CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email_unique_idx ON users (email);

DO $do$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_constraint
               WHERE conname = 'users_email_key' AND conrelid = to_regclass('user_emails')) THEN
        ALTER TABLE user_emails RENAME CONSTRAINT users_email_key TO user_emails_pkey;
    END IF;
END
$do$;

ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_unique_idx;

DROP TRIGGER IF EXISTS users_email_mirror_truncate ON users;

DROP TRIGGER IF EXISTS users_email_mirror ON users;

DROP FUNCTION IF EXISTS user_emails_mirror();

DROP TABLE IF EXISTS user_emails;
