-- dmdb backup base: what a physical backup needs to know of the server.
SELECT current_setting('server_version') AS version,
       current_setting('server_version_num')::int AS version_num,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size,
       current_setting('summarize_wal', true) AS summarize_wal,
       (SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user) AS may_replicate,
       current_user AS role,
       clock_timestamp() AS now
