"""The schema's migrations: `dmdb up / rollback / status / new / verify / repair / lint /
drift / baseline`.

Modules, lowest first: files (reading migration, rollback and function files), retry
(lock waits, backoff, named blockers), runner (one file on one connection), engine (the
yoyo-format ledger, status, up, rollback, repair), new (`dmdb new`), verify (the
exact-inverse check and scratch databases), drift, lint. May import: the shared floor
(errors, config, db, resources, render) and dmdb.server (client tools for scratch
copies); no other subject package.
"""
