"""dmdb: DriveMaster's PostgreSQL toolkit.

The library (dmdb.migrate.engine, dmdb.partitions, ...) works on plain psycopg connections
and returns data; dmdb.cli is a thin Typer layer over it.
"""

__version__ = "0.1.0"
