-- When this database's statistics were last reset (NULL: never since initdb). Index scan
-- counts, and so "unused", only cover the time since then.
SELECT stats_reset FROM pg_stat_database WHERE datname = current_database();
