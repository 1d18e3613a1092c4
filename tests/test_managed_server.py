"""The managed-like lane (tests/managed.py) is what it claims to be, so that the tests that
use it cannot silently run against something easier: TLS required and verified, SCRAM, an
owner that is not superuser, the provider's pg_stat_statements, and a TLS PgBouncer in
transaction-pooling mode."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from managed import ADMIN, MONITOR_LOGIN, OWNER
from psycopg import sql


def _one(url: str, query: str, params=None, **kwargs):
    with psycopg.connect(url, autocommit=True, **kwargs) as conn:
        return conn.execute(query, params).fetchone()


def _without_tls(url: str) -> str:
    assert "sslmode=verify-full" in url
    return url.replace("sslmode=verify-full", "sslmode=disable")


# ------------------------------------------------------------------ PostgreSQL


def test_a_login_without_tls_is_refused(managed):
    with pytest.raises(psycopg.OperationalError, match="rejects connection.*no encryption"):
        psycopg.connect(_without_tls(managed.owner_url), connect_timeout=5)


def test_verify_full_logs_in_over_tls_with_scram(managed):
    with psycopg.connect(managed.owner_url, autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.info.parameter_status("server_version").startswith("18.")
        ssl, = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert ssl is True
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
        assert conn.execute("SHOW data_checksums").fetchone() == ("on",)
    secret, = _one(managed.admin_url, "SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                   (OWNER,))
    assert secret.startswith("SCRAM-SHA-256$")
    wrong = managed.url(OWNER, "not-" + managed.passwords[OWNER])
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5)


def test_the_owner_is_no_superuser_but_monitors(managed):
    row = _one(managed.owner_url,
               "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls,"
               " pg_has_role(current_user, 'pg_monitor', 'MEMBER'),"
               " (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database())"
               " FROM pg_roles WHERE rolname = current_user")
    assert row == (False, True, True, False, False, True, OWNER)
    row = _one(managed.monitor_url,
               "SELECT rolsuper, rolcreatedb, rolcreaterole,"
               " pg_has_role(current_user, 'pg_monitor', 'MEMBER')"
               " FROM pg_roles WHERE rolname = current_user")
    assert row == (False, False, False, False)
    assert _one(managed.admin_url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                ) == (True,)


def test_pg_stat_statements_is_the_providers(managed):
    owner, = _one(managed.owner_url, "SELECT extowner::regrole::text FROM pg_extension"
                  " WHERE extname = 'pg_stat_statements'")
    assert owner == ADMIN
    assert "pg_stat_statements" in _one(managed.owner_url, "SHOW shared_preload_libraries")[0]
    # pg_monitor (pg_read_all_stats) lets the owner read it, the provider's texts included.
    marker = uuid.uuid4().hex
    _one(managed.admin_url, f"SELECT 1 /* {marker} */")
    seen, = _one(managed.owner_url, "SELECT count(*) FROM pg_stat_statements"
                 " WHERE userid = %s::regrole AND query LIKE %s", (ADMIN, f"%{marker}%"))
    assert seen == 1


# ------------------------------------------------------------------ PgBouncer


def test_the_pooler_requires_tls(managed):
    with pytest.raises(psycopg.OperationalError, match="SSL required"):
        psycopg.connect(_without_tls(managed.pooled_owner_url), connect_timeout=5)


def test_the_pooler_speaks_tls_on_both_sides(managed):
    with psycopg.connect(managed.pooled_owner_url, autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use  # client <-> PgBouncer
        user, ssl = conn.execute("SELECT current_user, ssl FROM pg_stat_ssl"
                                 " WHERE pid = pg_backend_pid()").fetchone()
        assert (user, ssl) == (OWNER, True)  # PgBouncer <-> PostgreSQL
        # PgBouncer hands out its own cancel key: the pid the client was told is not the
        # backend's. True of any pooler, so this only shows one is in between.
        assert conn.info.backend_pid != conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def test_the_pooler_pools_transactions(managed):
    """A session SET made in one client's transaction is seen by another client: both ran
    on the same server connection, one after the other. With session pooling the second
    client would have a server of its own (the first keeps its one while connected) and
    see nothing. PgBouncer reuses the server released last (server_round_robin = 0), and
    no other client runs meanwhile, so the second client gets the first one's server."""
    marker = uuid.uuid4().hex
    with psycopg.connect(managed.pooled_owner_url) as first, \
            psycopg.connect(managed.pooled_owner_url) as second:
        with first.transaction():
            first.execute(sql.SQL("SET dmdb_lane.marker = {}").format(sql.Literal(marker)))
            first_pid, = first.execute("SELECT pg_backend_pid()").fetchone()
        with second.transaction():
            seen, second_pid = second.execute(
                "SELECT current_setting('dmdb_lane.marker', true), pg_backend_pid()").fetchone()
    assert (seen, second_pid) == (marker, first_pid)


def test_the_pooler_refuses_the_options_startup_parameter(managed):
    """PgBouncer 1.18 cannot pass `options` on; refused rather than ignored, so a client
    never believes that `-c lock_timeout=...` applied. application_name is tracked."""
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(managed.pooled_owner_url, options="-c lock_timeout=1s", connect_timeout=5)
    name = f"dmdb-{uuid.uuid4().hex[:8]}"
    assert _one(managed.pooled_monitor_url, "SELECT current_user, current_setting('application_name')",
                application_name=name) == (MONITOR_LOGIN, name)


def test_a_role_made_later_logs_in_through_the_pooler_once_synced(managed):
    role, password = f"dm_lane_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(managed.owner_url, autocommit=True) as conn:  # CREATEROLE
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
    url = managed.url(role, password, pooled=True)
    try:
        with pytest.raises(psycopg.OperationalError, match="SASL authentication failed"):
            psycopg.connect(url, connect_timeout=5)
        managed.sync_pooler_users()
        assert _one(url, "SELECT current_user") == (role,)
    finally:
        with psycopg.connect(managed.owner_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        managed.sync_pooler_users()
