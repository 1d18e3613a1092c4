"""Option values without pydantic: Typer (>= 0.26) coerces every option through a pydantic
TypeAdapter, and importing pydantic and building the adapters costs ~0.08 s of CPU, a
fifth of a `dmdb status`. The common values (a default, a plain word or number) are
coerced here to exactly what the adapter returns; anything else (a value out of range, a
path, a list, text that is not a plain number) goes to Typer's own adapter, built only
then, so its messages and edge cases stay Typer's.
"""

from __future__ import annotations

import re
from typing import Any

try:  # Typer's lazy per-parameter coercion (Typer >= 0.26); older Typer has none to skip
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - older Typer: nothing to speed up
    RuntimeParam = None

_INT = re.compile(r"[0-9]{1,18}")
_FLOAT = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?")


def _fast(annotation: Any, info: Any, value: Any) -> tuple[bool, Any]:
    """(True, the value Typer's adapter would return) when that is certain; else (False, _)."""
    if info.parser is not None:
        return False, None
    kind = type(value)
    if annotation is bool:
        return (True, value) if kind is bool else (False, None)
    if annotation is str:
        return (True, value) if kind is str else (False, None)
    if annotation is int:
        if kind is int:
            number = value
        elif kind is str and _INT.fullmatch(value):
            number = int(value)
        else:
            return False, None
    elif annotation is float:
        if kind is float:
            number = value
        elif kind is str and _FLOAT.fullmatch(value):
            number = float(value)
        else:
            return False, None
    else:
        return False, None
    # Out of range: Typer's adapter says so (or clamps) in its own words.
    if info.clamp or (info.min is not None and number < info.min) or (
            info.max is not None and number > info.max):
        return False, None
    return True, number


if RuntimeParam is not None:
    class FastRuntimeParam(RuntimeParam):
        """A parameter's coercion: the fast path, else Typer's adapter (built once, then)."""

        def __init__(self, descriptor) -> None:
            super().__init__(parameter_info=descriptor.parameter_info,
                             annotation=descriptor.annotation)
            object.__setattr__(self, "_descriptor", descriptor)
            object.__setattr__(self, "_typer", None)

        def _coerce_value(self, value, param, ctx):
            done, result = _fast(self.annotation, self.parameter_info, value)
            if done:
                return result
            if self._typer is None:
                object.__setattr__(self, "_typer", build_runtime_param(self._descriptor))
            return self._typer._coerce_value(value, param=param, ctx=ctx)


def _fit(param) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    if (isinstance(param, _TyperParameter) and descriptor is not None
            and getattr(param, "_runtime_param", "") is None):
        try:
            param._runtime_param = FastRuntimeParam(descriptor)
        except (TypeError, AttributeError):  # pragma: no cover - a Typer with other internals
            pass


def install(command) -> None:
    """Give every parameter of `command` and its subcommands the fast coercion (a value
    left unset needs no adapter at all: Typer's own `coerce` answers None first)."""
    if RuntimeParam is None:
        return
    for param in command.params:
        _fit(param)
    # --help is made on first use, per command: fit it then.
    make_help = getattr(command, "get_help_option", None)
    if make_help is not None:
        def get_help_option(ctx, make_help=make_help):
            option = make_help(ctx)
            if option is not None:
                _fit(option)
            return option

        command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        install(sub)
