-- Progress of the CREATE INDEX running in one backend (polled from a second connection).
SELECT phase, blocks_total, blocks_done, tuples_total, tuples_done,
       lockers_total, lockers_done, partitions_total, partitions_done
FROM pg_stat_progress_create_index
WHERE pid = %(pid)s;
