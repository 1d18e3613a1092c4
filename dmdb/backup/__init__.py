"""Backups and restores (`dmdb backup`, `dmdb restore`).

Modules: logical (`pg_dump -Fc` / `pg_restore` with the server's own major version of
the tools). May import: the shared floor (errors, config, db) and dmdb.server (tools).
"""
