"""`kchip` command line. Each stage module that exists contributes its sub-commands through a
`COMMANDS = {name: (help, add_arguments(parser), run(args) -> int)}` table; the CLI only dispatches."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _modules():
        for name, (help_text, add_args, run) in mod.COMMANDS.items():
            p = sub.add_parser(name, help=help_text, description=help_text)
            add_args(p)
            p.set_defaults(_run=run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"kchip {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
