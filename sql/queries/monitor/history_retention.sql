-- Bounded retention: snapshots older than the given number of days go, their table sizes
-- with them (ON DELETE CASCADE).
DELETE FROM dmdb_monitor.snapshots
WHERE taken_at < now() - make_interval(secs => %(days)s * 86400);
