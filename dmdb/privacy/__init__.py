"""A learner's data found, exported and erased on request (GDPR Art. 15/17/20, CCPA).

Modules: inventory (every user-linked relation of the live catalog, classified by
sql/privacy.toml; an unclassified one is an error for `lint` and the suite), ledger (the
request record: a keyed hash of the subject, never the e-mail; times and per-relation
counts), export (one learner's rows as JSON lines, streamed), erase (one transaction:
covered rows deleted, archived months included, views refreshed, a tombstone for event
consumers; then the touched tables vacuumed). Functions take a connection: the CLI
connects. May import: the shared floor (errors, files, resources) only — `migrate.lint`
and `backup` use it.
"""
