"""Citus readiness: the schema and the functions judged by Citus's rules for sharding every
learner's rows by `user_id` (`dmdb lint --citus`), and the DDL a team would run on a
Citus cluster (`dmdb citus plan`). Nothing here runs on Citus: Citus is not installable
on these machines, so the rules are checked statically, as Citus's documentation states
them (REFERENCES.md, "Citus readiness").

Modules: catalog (the live schema, classified: distributed by user_id, reference, local),
functions (function bodies parsed with PostgreSQL's own parser, pglast: which statements
a delegated call could not run on the learner's worker), audit (the rules, as findings),
plan (the ordered DDL). May import: the shared floor (errors, resources, db).
"""
