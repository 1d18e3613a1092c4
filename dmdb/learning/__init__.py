"""The learning models seen from Python: `dmdb models` (report, fit) and `dmdb seed`.

The algorithms themselves run in PostgreSQL (sql/functions/); this package measures and
fits them and produces sample learners. Modules: models (report, fit), simulation
(learners that follow BKT exactly, for `models fit`'s truth test), seed (the reference
catalogue and simulated learners through `record_answers`). May import: the shared floor,
dmdb.migrate (the schema must be current), dmdb.partitions and dmdb.maintenance (the
seed creates its months and runs the rollup).
"""
