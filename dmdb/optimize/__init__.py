"""`dmdb optimize`: the tuning an operator would do by hand, from the database's own
evidence, and index advice from the real workload (docs/optimize.md).

Modules: workload (pg_stat_statements and the live tables, read), parse (a statement's
per-table scans, with pglast; pure), candidates (one- and two-column, partial; pure),
trial (the scratch copy: candidates built, statements explained and timed), choose (kept
or dropped, and why: benefit against write cost; pure), migration (the migration pairs
it writes), advise (`advise_indexes`: the whole run). This front door re-exports the
public names. May import: the shared floor (errors, config, db, resources), dmdb.migrate
(the schema copy, `dmdb new`'s numbering), dmdb.indexes (the existing indexes, their
usage, the build steps), dmdb.maintenance (table statistics) and dmdb.partitions
(partition bounds, DEFAULT rows).
"""

from __future__ import annotations

from dmdb.optimize.advise import IndexAdvice, advise_indexes  # noqa: F401
from dmdb.optimize.candidates import Candidate, ExistingIndex, generate  # noqa: F401
from dmdb.optimize.choose import Decision, Evidence, decide  # noqa: F401
from dmdb.optimize.parse import Parsed, Scan, Table, Tables, parse_statement  # noqa: F401
from dmdb.optimize.trial import PREFIX as SCRATCH_PREFIX  # noqa: F401
from dmdb.optimize.workload import NoWorkload, Statement, Workload  # noqa: F401
