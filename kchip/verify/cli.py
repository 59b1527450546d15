"""`kchip drc FILE.gds` and `kchip lvs FILE.gds SCHEMATIC.spice` (exit status 0: clean / match, 1: violations,
mismatch or a failed run, 2: usage)."""
from __future__ import annotations


def _add_drc(p):
    p.add_argument("gds", help="GDS file")
    p.add_argument("--top", default=None, help="top cell (default: the file's only top cell)")
    p.add_argument("--rules", default=None, help="only these rules of rules.yaml, comma separated")
    p.add_argument("--report", default=None, help="KLayout marker database to write (.lyrdb)")
    p.add_argument("--json", default=None, help="write the report as JSON here")
    p.add_argument("--pdk", default="sky130")


def _run_drc(args) -> int:
    from ..pdk import load_pdk
    from .drc import run_drc
    rules = [r.strip() for r in args.rules.split(",")] if args.rules else None
    rep = run_drc(args.gds, load_pdk(args.pdk), top=args.top, rules=rules, lyrdb=args.report, json_out=args.json)
    print(rep.summary())
    return 0 if rep.clean else 1


def _add_lvs(p):
    p.add_argument("gds", help="GDS file")
    p.add_argument("schematic", help="SPICE file holding the subcircuit")
    p.add_argument("--top", default=None, help="top cell of the GDS (default: its only top cell)")
    p.add_argument("--circuit", default=None, help="subcircuit to compare (default: the top cell's name)")
    p.add_argument("--report", default=None, help="KLayout LVS database to write (.lvsdb)")
    p.add_argument("--json", default=None, help="write the report as JSON here")
    p.add_argument("--pdk", default="sky130")


def _run_lvs(args) -> int:
    from ..pdk import load_pdk
    from .lvs import run_lvs
    rep = run_lvs(args.gds, args.schematic, load_pdk(args.pdk), top=args.top, circuit=args.circuit,
                  lvsdb=args.report, json_out=args.json)
    print(rep.summary())
    return 0 if rep.match else 1


COMMANDS = {"drc": ("design-rule check of a GDS against pdk/<name>/rules.yaml", _add_drc, _run_drc),
            "lvs": ("layout versus schematic: GDS against a SPICE subcircuit", _add_lvs, _run_lvs)}
