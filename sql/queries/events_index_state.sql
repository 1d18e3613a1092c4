-- Whether the event feed can be read (dmdb/events/feed.py): its tables exist (0014) and
-- its index on learning_events (0015) is valid, else the partitions whose index is not
-- attached yet (`dmdb indexes build --table learning_events` builds them).
SELECT to_regclass('public.event_consumers') IS NOT NULL AS installed,
       i.indisvalid AS index_valid,
       array(SELECT p.inhrelid::regclass::text
               FROM pg_catalog.pg_inherits p
              WHERE p.inhparent = 'public.learning_events'::regclass
                AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits x
                                 JOIN pg_catalog.pg_index xi ON xi.indexrelid = x.inhrelid
                                WHERE x.inhparent = i.indexrelid
                                  AND xi.indrelid = p.inhrelid)
              ORDER BY 1) AS unindexed
  FROM (SELECT 1) AS one
  LEFT JOIN pg_catalog.pg_index i
    ON i.indexrelid = to_regclass('public.learning_events_feed_idx')
