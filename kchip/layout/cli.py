"""`kchip layout-cells`: lay out, DRC and LVS the cell library (golden copy in layouts/)."""
from __future__ import annotations

import sys


def _add(p):
    p.add_argument("-o", "--out", default="build/layouts", help="output folder (the committed copy: layouts/)")
    p.add_argument("--cell", default=None, help="library cells, comma separated (default: all)")
    p.add_argument("--no-png", action="store_true", help="skip the PNG renders")
    p.add_argument("--pdk", default="sky130")


def _run(args) -> int:
    from ..pdk import load_pdk
    from .library import CELLS, STDCELLS, build_library
    pdk = load_pdk(args.pdk)
    known = CELLS + STDCELLS
    names = [c.strip() for c in args.cell.split(",")] if args.cell else list(known)
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"--cell: unknown {bad}; known: {', '.join(known)}")
    rows = build_library(pdk, args.out, names, png=not args.no_png,
                         progress=lambda s: print(s, file=sys.stderr, flush=True))
    ok = all(r["drc_violations"] == 0 and r["lvs_match"] for r in rows)
    print(f"{len(rows)} cells in {args.out}: {'all DRC-clean and LVS-matched' if ok else 'FAILURES (see cells.json)'}")
    return 0 if ok else 1


COMMANDS = {"layout-cells": ("lay out, DRC and LVS the cell library", _add, _run)}
