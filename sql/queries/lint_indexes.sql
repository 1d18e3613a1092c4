SELECT i.indexrelid::bigint FROM pg_index i WHERE i.indrelid = ANY (%s::oid[])
