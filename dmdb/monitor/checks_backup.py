"""`dmdb monitor` checks of the backup repository (#25): how old the newest base backup
is, how long ago a restore was last proven (`dmdb restore --check`; a failed
`backup verify` too), and whether WAL archiving into the repository fails or falls
behind. The repository is read through dmdb.backup.listing (the catalog and the archive
directory; the server is asked only for its archiver and current WAL file). Without a
repository the checks say physical backups are not set up, as wal_archiving says
archive_mode is off."""

from __future__ import annotations

from typing import Any

from dmdb.monitor.core import CheckResult, Status, Thresholds, _plural, _rows


def _state(settings):
    from dmdb.backup.listing import state

    return state(settings)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _not_set_up(name: str, repo: str | None) -> CheckResult:
    where = f" at {repo}" if repo else ""
    return CheckResult(name, Status.OK,
                       f"no backup repository{where}: physical backups are not set up "
                       "(`dmdb backup base`, docs/backup.md)", metrics={"configured": False})


def check_backup_age(conn, t: Thresholds, *, settings=None) -> CheckResult:
    """The newest base backup of the repository, against --backup-age-warn/critical."""
    if settings is None:
        return _not_set_up("backup_age", None)
    s = _state(settings)
    if not s.exists:
        return _not_set_up("backup_age", s.repo)
    age = s.newest_backup_age_seconds
    metrics: dict[str, Any] = {"configured": True, "backups": s.backups,
                               "newest": s.newest_backup, "newest_age_seconds": age}
    if age is None:
        return CheckResult("backup_age", Status.CRITICAL,
                           f"no base backup in {s.repo}: nothing to restore from; run "
                           "`dmdb backup base`", metrics=metrics)
    hours = age / 3600
    text = f"newest base backup {s.newest_backup} is {_age(age)} old ({_plural(s.backups, 'backup')})"
    if hours >= t.backup_age_critical_hours:
        return CheckResult("backup_age", Status.CRITICAL,
                           f"{text} (critical {t.backup_age_critical_hours:g} h): the WAL to "
                           "replay grows; run `dmdb backup base` (from cron)", metrics=metrics)
    if hours >= t.backup_age_warn_hours:
        return CheckResult("backup_age", Status.WARNING,
                           f"{text} (warning {t.backup_age_warn_hours:g} h): run `dmdb backup "
                           "base`", metrics=metrics)
    return CheckResult("backup_age", Status.OK, text, metrics=metrics)


def check_restore_check(conn, t: Thresholds, *, settings=None) -> CheckResult:
    """The newest restore proven by `dmdb restore --check`, and the last `backup verify`."""
    if settings is None:
        return _not_set_up("restore_check", None)
    s = _state(settings)
    if not s.exists:
        return _not_set_up("restore_check", s.repo)
    age = s.newest_check_ok_age_seconds
    last, verified = s.newest_check, s.newest_verification
    metrics: dict[str, Any] = {
        "configured": True, "proven_age_seconds": age,
        "last_check_ok": None if last is None else bool(last.get("ok")),
        "last_check_seconds": None if last is None else last.get("seconds"),
        "last_verify_ok": None if verified is None else bool(verified.get("ok"))}
    if last is not None and not last.get("ok"):
        why = (last.get("problems") or ["see `dmdb backup list`"])[0]
        return CheckResult("restore_check", Status.CRITICAL,
                           f"the last `dmdb restore --check` FAILED ({last['time'][:19]}): {why}",
                           metrics=metrics)
    if verified is not None and not verified.get("ok"):
        why = (verified.get("problems") or ["see `dmdb backup verify`"])[0]
        return CheckResult("restore_check", Status.CRITICAL,
                           f"the last `dmdb backup verify` FAILED ({verified['time'][:19]}): {why}",
                           metrics=metrics)
    if age is None:
        return CheckResult("restore_check", Status.WARNING,
                           "no restore of these backups was ever proven: run `dmdb restore "
                           "--check` (from cron)", metrics=metrics)
    days = age / 86400
    text = f"last proven restore {_age(age)} ago, in {last['seconds']:.0f} s"
    if days >= t.restore_check_critical_days:
        return CheckResult("restore_check", Status.CRITICAL,
                           f"{text} (critical {t.restore_check_critical_days:g} days): run "
                           "`dmdb restore --check`", metrics=metrics)
    if days >= t.restore_check_warn_days:
        return CheckResult("restore_check", Status.WARNING,
                           f"{text} (warning {t.restore_check_warn_days:g} days): run "
                           "`dmdb restore --check`", metrics=metrics)
    return CheckResult("restore_check", Status.OK, text, metrics=metrics)




def check_backup_wal(conn, t: Thresholds, *, settings=None) -> CheckResult:
    """WAL archiving into the repository: failing (the archiver's last attempt failed), or
    behind (complete segments the repository lacks, its newest older than the thresholds)."""
    from dmdb.backup.walnames import parse_segment

    if settings is None:
        return _not_set_up("backup_wal", None)
    s = _state(settings)
    if not s.exists:
        return _not_set_up("backup_wal", s.repo)
    server = _rows(conn, "backup_wal")[0]
    mode, failing, current = server["archive_mode"], server["failing"], server["current_wal"]
    failed_wal, failed_count = server["last_failed_wal"], server["failed_count"]
    newest = parse_segment(s.newest_segment) if s.newest_segment else None
    now = parse_segment(current) if current else None
    behind = (max(0, now.segno - newest.segno - 1) if newest is not None and now is not None
              else None)
    age = s.newest_segment_age_seconds
    metrics: dict[str, Any] = {"configured": True, "archive_mode": mode, "failing": bool(failing),
                               "newest_segment": s.newest_segment, "newest_age_seconds": age,
                               "segments_behind": behind, "current_wal": current,
                               "failed_count": failed_count}
    if failing and mode != "off":
        return CheckResult("backup_wal", Status.CRITICAL,
                           f"archiving fails: {failed_wal} could not be archived "
                           f"({failed_count:,} failures); the repository's WAL stops at "
                           f"{s.newest_segment or 'nothing'}: see the server log",
                           metrics=metrics)
    if newest is None:
        return CheckResult("backup_wal", Status.WARNING,
                           f"no WAL in {s.repo}: restores reach only the backups' ends; "
                           "`dmdb backup wal on` (embedded) or `dmdb backup wal service`",
                           metrics=metrics)
    text = (f"newest archived segment {s.newest_segment} is {_age(age)} old"
            + (f", {_plural(behind, 'complete segment')} not archived yet" if behind else ""))
    if behind and age is not None and age >= t.archive_behind_critical_seconds:
        return CheckResult("backup_wal", Status.CRITICAL,
                           f"{text} (critical {t.archive_behind_critical_seconds:g} s): a lost "
                           "disk loses everything since; is the archiver (or pg_receivewal) "
                           "running? (`dmdb backup wal status`)", metrics=metrics)
    if behind and age is not None and age >= t.archive_behind_warn_seconds:
        return CheckResult("backup_wal", Status.WARNING,
                           f"{text} (warning {t.archive_behind_warn_seconds:g} s): archiving "
                           "falls behind (`dmdb backup wal status`)", metrics=metrics)
    return CheckResult("backup_wal", Status.OK, text, metrics=metrics)


def emit_metrics(x, by: dict[str, CheckResult]) -> None:
    """Prometheus samples of these checks (render.to_prometheus calls this)."""
    g = "gauge"
    c = by.get("backup_age")
    if c:
        x.add("dmdb_backup_configured", g, "1 when a backup repository exists.",
              c.metrics.get("configured"))
        x.add("dmdb_backup_newest_age_seconds", g, "Age of the newest base backup.",
              c.metrics.get("newest_age_seconds"))
        x.add("dmdb_backup_count", g, "Base backups in the repository.", c.metrics.get("backups"))
    c = by.get("restore_check")
    if c:
        x.add("dmdb_backup_restore_proven_age_seconds", g,
              "Time since `dmdb restore --check` last proved a restore.",
              c.metrics.get("proven_age_seconds"))
        x.add("dmdb_backup_restore_check_duration_seconds", g,
              "How long the last `dmdb restore --check` took.",
              c.metrics.get("last_check_seconds"))
    c = by.get("backup_wal")
    if c:
        x.add("dmdb_backup_wal_newest_age_seconds", g,
              "Age of the newest WAL segment in the backup repository.",
              c.metrics.get("newest_age_seconds"))
        x.add("dmdb_backup_wal_segments_behind", g,
              "Complete WAL segments the server wrote that the repository lacks.",
              c.metrics.get("segments_behind"))
