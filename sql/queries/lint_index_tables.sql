SELECT i.indrelid::bigint FROM pg_index i WHERE i.indexrelid = ANY (%s::oid[])
