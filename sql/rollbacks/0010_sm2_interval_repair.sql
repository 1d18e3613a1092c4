-- Rollback of 0010_sm2_interval_repair: a data repair without a schema change, so the
-- schema is already as before. The repaired intervals are not put back: they were the
-- double precision errors that issue 16 fixed (as 0007's rollback does not restore
-- drifted EF values).
SELECT 1;
