-- Extensions, group roles dm_readonly / dm_app, their schema grants and default privileges.
--
-- Roles are cluster-wide, pg_stat_statements may already be installed, and schema public
-- and default privileges may have been touched by hand: this migration changes only what
-- is not already in effect, and records each change it makes in dmdb_bootstrap together
-- with the statement that undoes it. The rollback runs those statements, newest first,
-- and nothing else, so apply + rollback leaves any database exactly as it found it.
-- Roles it creates are recorded without an undo: a rollback does not drop roles.
--
-- Default privileges are set here, before any table exists, so every table, sequence,
-- materialized view and function the later migrations create (run by the same owner
-- role) is covered without per-object GRANTs:
--   dm_readonly: USAGE on schema public; SELECT on tables, views, sequences;
--   dm_app:      USAGE on schema public; SELECT, INSERT, UPDATE, DELETE on tables;
--                USAGE on sequences; EXECUTE on functions;
--   PUBLIC:      no EXECUTE on the owner's new functions (only dm_app may call them);
--                no CREATE on schema public (the PostgreSQL 15+ default, enforced).

CREATE TABLE dmdb_bootstrap (
    step bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    change text NOT NULL,
    undo_sql text,
    made_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE dmdb_bootstrap IS
    'What 0001 changed in pre-existing state, and how to undo it; read by its rollback.';

DO $do$
DECLARE
    v_owner oid := current_user::regrole::oid;
    v_public oid := 'public'::regnamespace::oid;
    v_superuser boolean := (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user);
BEGIN
    -- Group roles: created if missing, never dropped by the rollback.
    IF NOT (v_superuser OR (SELECT rolcreaterole FROM pg_catalog.pg_roles
                            WHERE rolname = current_user))
       AND (SELECT count(*) FROM pg_catalog.pg_roles
            WHERE rolname IN ('dm_readonly', 'dm_app')) < 2 THEN
        RAISE EXCEPTION 'roles dm_readonly and dm_app are missing and % may not create roles',
                current_user
            USING HINT = 'Run this migration once as a role with CREATEROLE, or have a DBA run: '
                         'CREATE ROLE dm_readonly NOLOGIN; CREATE ROLE dm_app NOLOGIN;';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'dm_readonly') THEN
        CREATE ROLE dm_readonly NOLOGIN;
        INSERT INTO dmdb_bootstrap (change) VALUES ('created role dm_readonly (kept on rollback)');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'dm_app') THEN
        CREATE ROLE dm_app NOLOGIN;
        INSERT INTO dmdb_bootstrap (change) VALUES ('created role dm_app (kept on rollback)');
    END IF;

    -- pg_stat_statements feeds `dmdb monitor`: installed when the server ships it, it is
    -- not installed yet and we may (it is not a trusted extension). Its statistics also
    -- need shared_preload_libraries; the extension itself installs without it.
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_stat_statements') THEN
        RAISE NOTICE 'pg_stat_statements already installed: left as it is';
    ELSIF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions
                      WHERE name = 'pg_stat_statements') THEN
        RAISE NOTICE 'pg_stat_statements is not available on this server: skipped';
    ELSIF NOT v_superuser THEN
        RAISE NOTICE 'pg_stat_statements needs a superuser to install: skipped';
    ELSE
        CREATE EXTENSION pg_stat_statements;
        INSERT INTO dmdb_bootstrap (change, undo_sql)
        VALUES ('created extension pg_stat_statements', 'DROP EXTENSION pg_stat_statements');
    END IF;

    -- PostgreSQL 15+ does not grant CREATE on schema public to PUBLIC; a database
    -- upgraded from an older major version may still.
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n, aclexplode(n.nspacl) a
               WHERE n.oid = v_public AND a.grantee = 0 AND a.privilege_type = 'CREATE') THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        INSERT INTO dmdb_bootstrap (change, undo_sql)
        VALUES ('revoked CREATE on schema public from PUBLIC',
                'GRANT CREATE ON SCHEMA public TO PUBLIC');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n, aclexplode(n.nspacl) a
                   WHERE n.oid = v_public AND a.privilege_type = 'USAGE'
                     AND a.grantee = 'dm_readonly'::regrole) THEN
        GRANT USAGE ON SCHEMA public TO dm_readonly;
        INSERT INTO dmdb_bootstrap (change, undo_sql)
        VALUES ('granted USAGE on schema public to dm_readonly',
                'REVOKE USAGE ON SCHEMA public FROM dm_readonly');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n, aclexplode(n.nspacl) a
                   WHERE n.oid = v_public AND a.privilege_type = 'USAGE'
                     AND a.grantee = 'dm_app'::regrole) THEN
        GRANT USAGE ON SCHEMA public TO dm_app;
        INSERT INTO dmdb_bootstrap (change, undo_sql)
        VALUES ('granted USAGE on schema public to dm_app',
                'REVOKE USAGE ON SCHEMA public FROM dm_app');
    END IF;

    -- Default privileges in schema public for objects the owner creates from now on.
    -- defaclobjtype: r = tables (and views, materialized views), S = sequences, f = functions.
    DECLARE
        r record;
    BEGIN
        FOR r IN
            SELECT v.*, CASE v.objtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
                                       ELSE 'FUNCTIONS' END AS objects
            FROM (VALUES
                ('r', 'SELECT', 'dm_readonly'),
                ('S', 'SELECT', 'dm_readonly'),
                ('r', 'SELECT', 'dm_app'),
                ('r', 'INSERT', 'dm_app'),
                ('r', 'UPDATE', 'dm_app'),
                ('r', 'DELETE', 'dm_app'),
                ('S', 'USAGE', 'dm_app'),
                ('f', 'EXECUTE', 'dm_app')
            ) AS v (objtype, privilege, grantee)
        LOOP
            CONTINUE WHEN EXISTS (
                SELECT 1 FROM pg_catalog.pg_default_acl d, aclexplode(d.defaclacl) a
                WHERE d.defaclrole = v_owner AND d.defaclnamespace = v_public
                  AND d.defaclobjtype = r.objtype::"char"
                  AND a.grantee = r.grantee::regrole AND a.privilege_type = r.privilege);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT %s ON %s TO %I',
                           r.privilege, r.objects, r.grantee);
            INSERT INTO dmdb_bootstrap (change, undo_sql)
            VALUES (format('default privilege: %s on new %s in schema public to %s',
                           r.privilege, lower(r.objects), r.grantee),
                    format('ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE %s ON %s FROM %I',
                           r.privilege, r.objects, r.grantee));
        END LOOP;
    END;

    -- Functions are executable by PUBLIC unless the owner's role-wide default says
    -- otherwise (per-schema defaults can only add privileges). Without a role-wide entry
    -- for functions, the built-in default (PUBLIC may execute) is in effect.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_default_acl d
                   WHERE d.defaclrole = v_owner AND d.defaclnamespace = 0
                     AND d.defaclobjtype = 'f')
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_default_acl d, aclexplode(d.defaclacl) a
                  WHERE d.defaclrole = v_owner AND d.defaclnamespace = 0
                    AND d.defaclobjtype = 'f' AND a.grantee = 0
                    AND a.privilege_type = 'EXECUTE') THEN
        ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
        INSERT INTO dmdb_bootstrap (change, undo_sql)
        VALUES ('default privilege: EXECUTE on new functions revoked from PUBLIC',
                'ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO PUBLIC');
    END IF;
END
$do$;
