"""Backups and restores (`dmdb backup`, `dmdb restore`): logical dumps, and physical base
backups with continuous WAL archiving for point-in-time recovery (docs/backup.md).

Modules:
- logical: `pg_dump -Fc` / `pg_restore` with the server's own major version of the tools;
- walnames: LSNs and WAL segment names (pure);
- repository: the backup repository (base/, wal/, scratch/) and its catalog, locks;
- process: running the backup tools (they die with dmdb; stderr read as it comes);
- providers: managed services that own PITR, named instead of failing obscurely;
- base: `backup base` (pg_basebackup, tar + gzip, manifest, --incremental);
- wal: `backup wal on|off|status|service` (basic_archive, pg_receivewal) and `backup mark`;
- restore: `restore --to` (the plan, pure: backup chain, range; then extract, combine,
  recover, promote, start);
- verify: `backup verify` (pg_verifybackup, WAL gaps and records);
- check: `restore --check` (restore, amcheck, row counts against the live server);
- expire: `backup expire` (the plan, pure; then delete);
- listing: `backup list` and the repository's state for `dmdb monitor`;
- barman: `backup barman-config`.

May import: the shared floor (errors, config, db, files, resources), dmdb.server (the
embedded server's layout and system user, tools) and dmdb.partitions.cron (its systemd
quoting, for the pg_receivewal unit).
"""
