-- The event feed's index (#26, docs/events.md): (feed_tx, event_id) of learning_events,
-- the order a consumer reads in ("the events after my position, below the horizon"):
-- each batch is one index range per partition, merged. Partial: rows written before
-- 0014 have no feed_tx and are not in the feed.
--
-- A partitioned table's index cannot be built CONCURRENTLY, and a plain build blocks
-- writes for as long as it scans. So, as `dmdb indexes build` does:
--   1. CREATE INDEX ... ON ONLY learning_events: the parent's index alone, no scan (it
--      stays invalid until every partition's index is attached); partitions created
--      from now on get theirs with it;
--   2. each partition that holds no row gets its index here (nothing to scan: a SHARE
--      lock on an empty table for an instant) and it is attached;
--   3. a partition that holds rows is left to `dmdb indexes build --table
--      learning_events` (CREATE INDEX CONCURRENTLY, then ATTACH): the NOTICE below
--      names them, and `dmdb events` refuses to read until the index is valid (without
--      it each batch would scan those partitions).
-- Partition indexes are named as PostgreSQL (and `dmdb indexes build`) name them:
-- <partition>_feed_tx_event_id_idx.

-- dmdb-lint: ignore non-concurrent-index -- ON ONLY builds nothing: the parent's index alone, invalid until each partition's is attached
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX learning_events_feed_idx ON ONLY learning_events (feed_tx, event_id)
    WHERE feed_tx IS NOT NULL;

-- dmdb-lint: ignore non-concurrent-index -- only partitions without a row (checked again under the SHARE lock the build takes) are indexed here; the others by `dmdb indexes build`
DO $do$
DECLARE
    v_part record;
    v_index text;
    v_rows boolean;
    v_left text[] := '{}';
BEGIN
    FOR v_part IN
        SELECT c.oid::regclass AS rel, c.relname::text AS relname
          FROM pg_catalog.pg_inherits i
          JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'learning_events'::regclass
         ORDER BY c.relname
    LOOP
        v_index := v_part.relname || '_feed_tx_event_id_idx';
        EXECUTE format('SELECT EXISTS (SELECT FROM ONLY %s)', v_part.rel) INTO v_rows;
        IF NOT v_rows AND octet_length(v_index) <= 63 THEN
            EXECUTE format('LOCK TABLE ONLY %s IN SHARE MODE', v_part.rel);
            EXECUTE format('SELECT EXISTS (SELECT FROM ONLY %s)', v_part.rel) INTO v_rows;
        END IF;
        IF v_rows OR octet_length(v_index) > 63 THEN
            v_left := v_left || v_part.relname;
            CONTINUE;
        END IF;
        EXECUTE format('CREATE INDEX %I ON %s (feed_tx, event_id) WHERE feed_tx IS NOT NULL',
                       v_index, v_part.rel);
        EXECUTE format('ALTER INDEX learning_events_feed_idx ATTACH PARTITION %I', v_index);
    END LOOP;
    IF cardinality(v_left) > 0 THEN
        RAISE NOTICE 'learning_events_feed_idx: % partition(s) hold rows and are indexed without blocking writes by `dmdb indexes build --table learning_events`: %; `dmdb events` reads once it is valid',
            cardinality(v_left), array_to_string(v_left, ', ');
    END IF;
END
$do$;
