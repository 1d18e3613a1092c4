"""dmdb optimize (the by-hand tuning, as findings with their fix) and dmdb optimize indexes
(index advice from the workload, tried on a scratch copy)."""

from __future__ import annotations

import typer

from dmdb.render import console, human_bytes, print_json, show_progress

JSON = typer.Option(False, "--json", help="Print machine-readable JSON (keys in docs/optimize.md).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress; print only the advice.")
EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def _ms(value: float | None, digits: int = 3) -> str:
    return "?" if value is None else f"{value:.{digits}f}"


def _short(text: str, limit: int = 110) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


def _progress(quiet: bool, as_json: bool):
    """A one-line status on stderr for a person at a terminal, else nothing."""
    if as_json or not show_progress(quiet):
        return None, None
    status = console(stderr=True).status("dmdb optimize indexes")

    def update(text: str) -> None:
        status.update(f"dmdb optimize indexes: {text}")

    return status, update


def render_index_advice(advice) -> None:
    out = console()

    def say(text: str = "") -> None:
        out.print(text, markup=False, highlight=False)

    since = advice.stats_reset.isoformat(timespec="seconds") if advice.stats_reset else "?"
    say(f"Workload: {advice.statements} statement(s) of {advice.target} in "
        f"pg_stat_statements since {since}, read as {advice.role}; "
        f"{len(advice.considered)} searched a table and were considered")
    for note in advice.notes:
        say(f"note: {note}")
    kept = advice.suggestions
    say()
    if not kept:
        say("No index to add: no candidate served a statement enough to pay for its writes.")
    else:
        say(f"Suggested indexes ({len(kept)}), best first:")
    for i, d in enumerate(kept, 1):
        say(f"{i}. {d.definition.replace('CREATE INDEX', 'CREATE INDEX CONCURRENTLY', 1)}")
        say(f"   {d.reason}; size {human_bytes(d.size_bytes)}, built in "
            f"{_ms(d.build_ms, 0)} ms on the copy; insert {_ms(d.insert_ms_per_row_before, 4)}"
            f" -> {_ms(d.insert_ms_per_row_after, 4)} ms/row")
        for e in d.evidence:
            if not e.served:
                continue
            say(f"   {e.calls} calls, cost {_ms(e.cost_before, 1)} -> {_ms(e.cost_after, 1)}, "
                f"{_ms(e.ms_before)} -> {_ms(e.ms_after)} ms: {_short(e.query)}")
            say(f"     before: {_short(e.plan_before or '?', 150)}")
            say(f"     after:  {_short(e.plan_after or '?', 150)}")
    dropped = [d for d in advice.decisions if not d.kept]
    if dropped:
        say()
        say(f"Tried and dropped ({len(dropped)}):")
        for d in dropped:
            where = f" WHERE {d.where}" if d.where else ""
            say(f"- {d.table} ({', '.join(d.columns)}){where}: {d.reason}")
    if advice.skipped:
        say()
        say(f"Not tried ({len(advice.skipped)}):")
        for s in advice.skipped:
            where = f" WHERE {s['where']}" if s["where"] else ""
            say(f"- {s['table']} ({', '.join(s['columns'])}){where}: {s['reason']}")
    if advice.unused or advice.duplicates:
        say()
        say("Indexes to drop (dmdb indexes report):")
        for r in advice.unused:
            say(f"- {r['schema']}.{r['index']} on {r['table']}: unused, "
                f"{human_bytes(r['size_bytes'])}")
        for r in advice.duplicates:
            say(f"- {r['schema']}.{r['index']} on {r['table']}: covered by {r['covered_by']}, "
                f"{human_bytes(r['size_bytes'])}")
    if advice.copied:
        rows = sum(c.rows for c in advice.copied)
        say()
        say(f"Trial on scratch database {advice.scratch} ({len(advice.copied)} table(s), "
            f"{rows:,} rows, {human_bytes(sum(c.size_bytes for c in advice.copied))}; "
            "dropped again). The live database was only read.")
    if advice.cleaned:
        say(f"Dropped {len(advice.cleaned)} scratch database(s) a killed run left: "
            f"{', '.join(advice.cleaned)}")
    for label, written in (("Wrote", advice.migration), ("Wrote", advice.drop_migration)):
        if written is not None:
            say(f"{label} {written.migration}\n{label} {written.rollback}\n"
                "  review them, then `dmdb lint` and `dmdb up`")
    if kept and advice.migration is None:
        say("Write them as a migration: dmdb optimize indexes --write-migration")
    if (advice.unused or advice.duplicates) and advice.drop_migration is None:
        say("Drop the unused and duplicate ones: dmdb optimize indexes --write-drop-migration")
    say(f"({advice.seconds:.1f}s)")


def render_tuning(report) -> None:
    out = console()

    def say(text: str = "") -> None:
        out.print(text, markup=False, highlight=False)

    m = report.machine
    ram = human_bytes(m.ram_bytes) if m.ram_bytes else "unknown"
    say(f"dmdb optimize: {report.target} (memory {ram}, storage {m.storage or 'unknown'}: "
        f"{m.how})")
    pending = 0
    for c in report.checks:
        say(f"{c.status:<8} {c.name:<17} {c.summary}")
        for f in c.findings:
            say(f"    - {f.summary}")
            if f.fix:
                if f.applied:
                    state = f"  [applied in {f.seconds:.2f}s]"
                elif f.error:
                    state = f"  [failed: {f.error}]"
                else:
                    state = "  [safe: --apply runs it]" if f.safe else ""
                    pending += 1
                say(f"      fix: {f.fix}{state}")
    safe = [f for f in report.findings if f.safe and not f.applied and not f.error]
    say()
    if report.applied:
        done = [f for f in report.findings if f.applied]
        failed = [f for f in report.findings if f.error]
        say(f"--apply ran {len(done)} safe fix(es)" + (f", {len(failed)} failed" if failed else "")
            + "; the others are for you to run (settings, fillfactor, migrations).")
    elif safe:
        say(f"{len(safe)} safe fix(es) (ANALYZE, REINDEX CONCURRENTLY): dmdb optimize --apply")
    if pending and not safe:
        say("The fixes above are yours to run: settings need a reload or restart; "
            "migrations go through review.")
    say(f"({report.seconds:.1f}s)")


def register(app: typer.Typer) -> None:
    optimize_app = typer.Typer(
        help="The tuning an operator does by hand, as findings with their evidence and the "
        "command that fixes each; `dmdb optimize indexes`: index advice from the workload "
        "(pg_stat_statements), each candidate tried on a scratch copy.",
        invoke_without_command=True,
    )

    @optimize_app.callback()
    def optimize_all(
        ctx: typer.Context,
        apply: bool = typer.Option(
            False, "--apply", help="Run the safe, online fixes (ANALYZE, REINDEX "
            "CONCURRENTLY) and say what was done; the others are printed."),
        only: str | None = typer.Option(
            None, "--only", metavar="CHECKS", help="Comma-separated checks: stale_statistics, "
            "index_bloat, hot_updates, default_rows, shared_buffers, work_mem, max_wal_size, "
            "random_page_cost, indexes."),
        no_indexes: bool = typer.Option(False, "--no-indexes",
                                        help="Skip the index advice (its trial on a scratch copy)."),
        schema: list[str] = typer.Option(["public"], "--schema", metavar="SCHEMA",
                                         help="Schema of the tables to look at (repeatable)."),
        ram_gb: float | None = typer.Option(
            None, "--ram-gb", min=0.01, metavar="GB",
            help="The server machine's memory, when the server is not on this machine."),
        storage: str | None = typer.Option(
            None, "--storage", metavar="ssd|hdd",
            help="The server's storage, when the server is not on this machine."),
        bloat_ratio: float = typer.Option(2.0, "--bloat-ratio", min=1.0,
                                          help="Index bloat: estimated size / needed size."),
        bloat_min_size_mb: float = typer.Option(100.0, "--bloat-min-size-mb", min=0,
                                                help="Index bloat: at least this much wasted."),
        hot_min_updates: int = typer.Option(1000, "--hot-min-updates", min=1,
                                            help="HOT: tables with at least this many updates."),
        as_json: bool = JSON,
        quiet: bool = QUIET,
    ):
        """Find what an operator would tune by hand, each finding with its evidence and the
        command that fixes it: stale statistics (ANALYZE), bloated indexes (REINDEX
        CONCURRENTLY), updates that are not HOT (fillfactor), rows in a DEFAULT partition,
        shared_buffers, work_mem, max_wal_size and random_page_cost out of line with the
        machine and the workload, and the index advice of `dmdb optimize indexes`.

        Exit codes (the monitor's): 0 nothing to tune, 1 findings, 3 a check could not
        see what it needs (UNKNOWN); errors 1 (or 2, usage).

        Examples: dmdb optimize --no-indexes; dmdb optimize --apply
        """
        if ctx.invoked_subcommand is not None:
            return
        from dmdb.errors import ConfigError
        from dmdb.optimize.tuning import CHECKS, optimize

        chosen = None
        if only:
            chosen = [c.strip() for c in only.split(",") if c.strip()]
            unknown = [c for c in chosen if c not in CHECKS]
            if unknown:
                raise ConfigError(f"--only {','.join(unknown)}: no such check; choose from "
                                  f"{', '.join(CHECKS)}")
        if no_indexes:
            chosen = [c for c in (chosen or CHECKS) if c != "indexes"]
        if storage is not None and storage not in ("ssd", "hdd"):
            raise ConfigError(f"--storage {storage!r}: write ssd or hdd")
        settings = ctx.obj.settings()
        status, update = _progress(quiet, as_json)
        kwargs = dict(schemas=tuple(schema), only=chosen, apply=apply,
                      ram_bytes=int(ram_gb * 1024**3) if ram_gb else None, storage=storage,
                      bloat_ratio=bloat_ratio, bloat_min_bytes=int(bloat_min_size_mb * 1024**2),
                      hot_min_updates=hot_min_updates, progress=update)
        if status is not None:
            with status:
                report = optimize(settings, **kwargs)
        else:
            report = optimize(settings, **kwargs)
        if as_json:
            print_json(report.to_dict())
        else:
            render_tuning(report)
        raise typer.Exit(EXIT[report.status])

    @optimize_app.command("indexes")
    def indexes_cmd(
        ctx: typer.Context,
        top: int = typer.Option(50, "--top", min=1, help="Statements (by total time) whose "
                                "scans make candidates."),
        min_calls: int = typer.Option(2, "--min-calls", min=1,
                                      help="Ignore statements called fewer times."),
        min_rows: int = typer.Option(1000, "--min-rows", min=0,
                                     help="Tables with fewer rows get no index."),
        schema: list[str] = typer.Option(["public"], "--schema", metavar="SCHEMA",
                                         help="Schema of the tables to advise on (repeatable)."),
        max_per_table: int = typer.Option(3, "--max-per-table", min=1,
                                          help="At most this many new indexes per table."),
        candidates_per_table: int = typer.Option(8, "--candidates-per-table", min=1,
                                                 help="Candidates tried per table."),
        samples: int = typer.Option(5, "--samples", min=1,
                                    help="Sampled parameter values per timed statement."),
        write_rows: int = typer.Option(200, "--write-rows", min=1,
                                       help="Rows of the write sample (insert cost)."),
        statement_timeout: str = typer.Option("30s", "--statement-timeout",
                                              help="Bound of each timed run on the copy."),
        unused_min_size_mb: float = typer.Option(
            10.0, "--unused-min-size-mb", min=0,
            help="Unused indexes smaller than this are not offered for dropping."),
        write_migration: bool = typer.Option(
            False, "--write-migration",
            help="Write the suggested indexes as a migration pair (CREATE INDEX CONCURRENTLY) "
            "in the project's SQL tree."),
        write_drop_migration: bool = typer.Option(
            False, "--write-drop-migration",
            help="Write the unused and duplicate indexes' drop as a migration pair."),
        as_json: bool = JSON,
        quiet: bool = QUIET,
    ):
        """Index advice from the real workload: pg_stat_statements' statements parsed with
        PostgreSQL's parser into per-table scans, candidate indexes built for real on a
        scratch copy of the searched tables (a database on the same server, dropped at the
        end), each statement explained and timed before and after, kept when the time it
        saves pays for its writes. The live database is only read. Needs a session
        (DMDB_DIRECT_URL through a pooler) and CREATEDB.

        Exit codes: 0 nothing to change, 1 indexes to add or drop, 3 statements of other
        roles hidden (grant pg_read_all_stats); errors 1 (or 2, usage).

        Example: dmdb optimize indexes --write-migration
        """
        import re

        from dmdb.errors import ConfigError
        from dmdb.optimize import advise_indexes

        if not re.fullmatch(r"[1-9][0-9]*\s*(ms|s|min)?", statement_timeout.strip()):
            raise ConfigError(f"--statement-timeout {statement_timeout!r}: write it as 500ms, "
                              "30s or 2min (0, unlimited, is refused)")
        settings = ctx.obj.settings()
        if (write_migration or write_drop_migration) and settings.sql_dir is None:
            raise ConfigError(
                "no project SQL tree to write the migration to (outside a project dmdb reads "
                "the shipped one); run it inside a project or pass --sql-dir DIR")
        status, update = _progress(quiet, as_json)
        kwargs = dict(top=top, min_calls=min_calls, min_rows=min_rows, schemas=tuple(schema),
                      max_per_table=max_per_table, candidates_per_table=candidates_per_table,
                      samples=samples, write_rows=write_rows,
                      statement_timeout=statement_timeout,
                      unused_min_size_mb=unused_min_size_mb, sql_dir=settings.sql_dir,
                      write_migration=write_migration,
                      write_drop_migration=write_drop_migration, progress=update)
        if status is not None:
            with status:
                advice = advise_indexes(settings, **kwargs)
        else:
            advice = advise_indexes(settings, **kwargs)
        if as_json:
            print_json(advice.to_dict())
        else:
            render_index_advice(advice)
        raise typer.Exit(EXIT[advice.status])

    app.add_typer(optimize_app, name="optimize")
