SELECT schemaname::text, sequencename::text, last_value
FROM pg_sequences
WHERE last_value IS NOT NULL AND schemaname NOT IN ('pg_catalog', 'information_schema')
