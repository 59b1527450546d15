"""`kchip` command line. Each stage module that exists contributes its sub-commands through a
`COMMANDS = {name: (help, add_arguments(parser), run(args) -> int)}` table; the CLI only dispatches.

Errors: one line on stderr, ``kchip COMMAND: error: ...``, never a traceback unless ``--debug``. Exit code 2 for
bad input (`kchip.errors.UsageError` and the ValueError / FileNotFoundError of the validation layers), 1 for a run
that failed on accepted input (`RunError`, ngspice, the operating system) and for an internal error."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from .errors import EXIT_RUN, EXIT_USAGE, KchipError, one_line

# stage modules that may contribute commands, in the order `kchip --help` lists them
COMMAND_MODULES = [
    "kchip.flow",
    "kchip.model.cli",
    "kchip.tasks.cli",
    "kchip.quantize.cli",
    "kchip.cells.cli",
    "kchip.netlist.cli",
    "kchip.sim.cli",
    "kchip.layout.cli",
    "kchip.verify.cli",
]


def _modules():
    for name in COMMAND_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            yield importlib.import_module(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kchip", description="KirchhoffNet -> sky130 analog chip generator")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _modules():
        for name, (help_text, add_args, run) in mod.COMMANDS.items():
            p = sub.add_parser(name, help=help_text, description=help_text)
            add_args(p)
            p.set_defaults(_run=run)
    return parser


def exit_code(exc: BaseException) -> int:
    """The exit code an error gives: 2 for bad input, 1 for a failed run or an internal error."""
    if isinstance(exc, KchipError):
        return exc.exit_code
    from .sim.ngspice import NgspiceError
    if isinstance(exc, NgspiceError) and not isinstance(exc, FileNotFoundError):
        return EXIT_RUN
    if isinstance(exc, (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return EXIT_USAGE
    return EXIT_RUN


def describe(exc: BaseException) -> str:
    """One line for an error: its message, or, for an error no validation layer raised, its type and message
    marked internal."""
    msg = one_line(exc)
    if isinstance(exc, (KchipError, ValueError, OSError)):
        return msg
    return f"internal error ({type(exc).__name__}: {msg}); run with --debug for the traceback"


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:                  # `kchip info m.kchip | head`: the reader went away
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"kchip {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place every error becomes one line
        if args.debug:
            raise
        print(f"kchip {args.command}: error: {describe(exc)}", file=sys.stderr)
        return exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
