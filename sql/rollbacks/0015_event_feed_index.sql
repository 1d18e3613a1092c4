-- Rollback of 0015: the feed's index, with its partitions' indexes.

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX learning_events_feed_idx;
