"""Errors every entry point reports the same way (`kchip.cli.main`).

* `UsageError` - the input is wrong: a flow.yaml key, an input array, a model or ChipSpec file. Its message has
  the form ``FILE: key.path: value: what is allowed``; the CLI exits with code 2.
* `RunError` - the input was accepted but the run failed (a solver that diverged, a tool that stopped); the CLI
  exits with code 1.

Both are ordinary exceptions for library callers: `UsageError` is a `ValueError`, `RunError` a `RuntimeError`.
"""
from __future__ import annotations

from typing import Any, Optional

EXIT_USAGE = 2
EXIT_RUN = 1


def one_line(exc: BaseException) -> str:
    """An error's message on one line (whitespace runs joined), or its type where it has none."""
    return " ".join(str(exc).split()) or type(exc).__name__


def show(value: Any, limit: int = 60) -> str:
    """A value as an error message shows it: repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class KchipError(Exception):
    exit_code = EXIT_RUN


class UsageError(KchipError, ValueError):
    """Bad input. `UsageError(file, path, value, allowed)` renders ``file: path: value: allowed``; leave out
    `path` (None) for a whole-file problem and `value` (`NO_VALUE`) where no single value is at fault."""
    exit_code = EXIT_USAGE

    def __init__(self, file: Any, path: Optional[str], value: Any, allowed: str):
        self.file, self.path, self.value, self.allowed = str(file), path, value, allowed
        parts = [self.file] + ([path] if path else []) + ([show(value)] if value is not NO_VALUE else []) + [allowed]
        super().__init__(": ".join(parts))


class RunError(KchipError, RuntimeError):
    exit_code = EXIT_RUN


class _NoValue:
    def __repr__(self):
        return "<no value>"


NO_VALUE = _NoValue()
