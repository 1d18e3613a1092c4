"""The PostgreSQL server dmdb runs or talks to, below the connection layer.

Modules: embedded (the embedded PostgreSQL 18 and its replica: `dmdb server`), postmaster
(whether a data directory's server really runs, and why a start failed), tools
(client tools matched to a server's major version: pg_dump, pg_restore, psql),
psql (`dmdb psql`'s command line), pgbouncer (`dmdb pgbouncer config`). May import only
the shared floor's errors, config, files and resources: dmdb.db imports this package to
start the embedded server, so nothing here imports dmdb.db.
"""
