"""Managed services that own point-in-time recovery themselves (RDS, Cloud SQL, Azure,
Supabase, Neon): found by the host name or by the provider's administrator role, so that
a physical backup or WAL archiving refused there is explained in one line — the
provider's PITR is the way — instead of failing obscurely (docs/backup.md)."""

from __future__ import annotations

from dmdb.config import Settings

# key: (name, how its point-in-time restore is done)
PROVIDERS = {
    "rds": ("Amazon RDS/Aurora",
            "automated backups restore to any second of the retention period "
            "(`aws rds restore-db-instance-to-point-in-time`)"),
    "cloudsql": ("Google Cloud SQL",
                 "point-in-time recovery clones the instance at a time "
                 "(`gcloud sql instances clone --point-in-time`)"),
    "azure": ("Azure Database for PostgreSQL",
              "point-in-time restore makes a new server at a time "
              "(`az postgres flexible-server restore --restore-time`)"),
    "supabase": ("Supabase", "point-in-time recovery is a project add-on (dashboard, Database > Backups)"),
    "neon": ("Neon", "a branch at a past time or LSN is its point-in-time restore"),
}
_HOSTS = (("rds.amazonaws.com", "rds"), ("postgres.database.azure.com", "azure"),
          ("supabase.co", "supabase"), ("supabase.com", "supabase"), ("neon.tech", "neon"),
          ("/cloudsql/", "cloudsql"))
_ROLES = (("rds_superuser", "rds"), ("cloudsqlsuperuser", "cloudsql"),
          ("azure_pg_admin", "azure"), ("supabase_admin", "supabase"),
          ("neon_superuser", "neon"))


def detect(settings: Settings, conn=None) -> str | None:
    """The provider of the server, from its host name, else from the roles it has."""
    host = (settings.host or "").lower()
    for suffix, key in _HOSTS:
        if suffix in host:
            return key
    if conn is None:
        return None
    try:
        names = {r[0] for r in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
            ([r for r, _ in _ROLES],)).fetchall()}
    except Exception:  # noqa: BLE001 - a guess only; the caller has the real error
        return None
    return next((key for role, key in _ROLES if role in names), None)


def explain(provider: str, what: str) -> str:
    name, how = PROVIDERS[provider]
    return (f"{what} is not permitted on {name}, which runs point-in-time recovery itself: "
            f"{how}; use that, and `dmdb backup --out FILE` for a logical copy "
            "(docs/backup.md)")
