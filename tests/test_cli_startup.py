"""The CLI's start-up shortcuts change nothing a user sees: a command line builds only its
command's module, and plain option values are coerced without pydantic, to what Typer's
own adapter returns (issue 19)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main
from typer.testing import CliRunner

from conftest import REPO, _dmdb_env
from dmdb import cli as dmdb_cli


def _commands(modules) -> dict:
    return typer.main.get_command(dmdb_cli._make_app(modules)).commands


def test_the_command_table_names_what_each_module_registers():
    seen = []
    for module in dmdb_cli._MODULES:
        names = set(_commands((module,)))
        assert names == {c for c, m in dmdb_cli._COMMAND_MODULE.items() if m == module}, module
        seen.extend(names)
    assert sorted(seen) == sorted(_commands(dmdb_cli._MODULES))


def test_the_root_options_that_take_a_value_are_known():
    root = typer.main.get_command(dmdb_cli._make_app(()))
    takes_value = {opt for p in root.params if not getattr(p, "is_flag", False)
                   for opt in p.opts if opt.startswith("--")}
    assert takes_value == dmdb_cli._ROOT_VALUE_OPTIONS


@pytest.mark.parametrize("args", [
    ["status", "--help"],
    ["--json", "status", "--help"],
    ["--dbname", "status", "seed", "--help"],
    ["--port", "x", "status"],
    ["--port=99999", "up"],
    ["up", "--lock-timeout", "abc"],
    ["up", "--attempts", "-3"],
    ["status", "--nope"],
    ["partitions", "list", "--help"],
    ["partitions", "nope"],
    ["statu"],
    ["bogus", "status"],
    ["--to", "0003", "up", "--help"],
    ["--", "status"],
    [],
])
def test_a_command_line_behaves_as_with_every_command_built(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    modules = dmdb_cli._modules_for(args)
    runner = CliRunner()
    few = runner.invoke(dmdb_cli._make_app(modules), args, catch_exceptions=False)
    every = runner.invoke(dmdb_cli._make_app(), args, catch_exceptions=False)
    assert (few.exit_code, few.stdout, few.stderr) == (every.exit_code, every.stdout,
                                                       every.stderr)


def test_a_known_command_builds_only_its_module():
    assert dmdb_cli._modules_for(["--sql-dir", "up", "status", "--json"]) == ("migrate",)
    assert dmdb_cli._modules_for(["--json", "partitions", "list"]) == ("partitions",)
    assert dmdb_cli._modules_for(["--help"]) == dmdb_cli._MODULES


_SAMPLES = ("5", "0", "007", "1", "16", "17", "50", "65535", "65536", "1.5", "60", "0.25",
            "-1", "abc", "", " 7", "7 ", "1e3", "1_000", "+3", "1.", ".5", "true", "0x10",
            5, 0, 60.0, 1.5, True, False, "postgresql://x", "é")


def _outcome(runtime, value, param, ctx):
    try:
        result = runtime._coerce_value(value, param=param, ctx=ctx)
    except Exception as exc:  # the message and kind are what a user sees
        return ("error", type(exc).__name__, str(getattr(exc, "message", exc)))
    return ("value", type(result), result)


def test_fast_coercion_returns_what_typers_adapter_returns():
    from typer._click import Context
    from typer._coercion import build_runtime_param

    from dmdb.cli.coercion import FastRuntimeParam

    checked = 0

    def walk(command):
        nonlocal checked
        ctx = Context(command, info_name=command.name)
        for param in command.params:
            descriptor = getattr(param, "type_descriptor", None)
            if descriptor is None or descriptor.annotation not in (str, int, float, bool):
                continue
            fast, typer_own = FastRuntimeParam(descriptor), build_runtime_param(descriptor)
            for value in _SAMPLES:
                assert _outcome(fast, value, param, ctx) == _outcome(
                    typer_own, value, param, ctx), (command.name, param.name, value)
                checked += 1
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(dmdb_cli._make_app()))
    assert checked > 1000


@pytest.mark.parametrize("command", ["status", "up"])
def test_status_and_a_no_op_up_load_only_what_they_use(command, schema_url):
    code = (
        "import sys; import dmdb.cli\n"
        f"sys.argv = ['dmdb', {command!r}]\n"
        "try:\n    dmdb.cli.main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = ('pydantic', 'yoyo', 'sqlparse', 'jinja2', 'rich', 'dmdb.cli.monitor',"
        " 'dmdb.cli.partitions', 'dmdb.server.embedded')\n"
        "sys.stderr.write('LOADED:' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_dmdb_env({"DATABASE_URL": schema_url,
                                         "PYTHONPATH": str(REPO)}), cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "applied" in done.stdout or "Nothing to do" in done.stdout
    assert done.stderr.rsplit("LOADED:", 1)[1] == ""
