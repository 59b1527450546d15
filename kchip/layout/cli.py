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


def _add_chip(p):
    p.add_argument("spec", help="ChipSpec (chip.json), or a transistor-level deck (.spice) with --deck")
    p.add_argument("-o", "--out", required=True, help="output GDS (chip.gds); the deck laid out goes beside it")
    p.add_argument("--deck", action="store_true", help="the input is a netlist-stage deck, not a ChipSpec")
    p.add_argument("--control", default="ideal", choices=("ideal",),
                   help="control of the chip: ideal = the testbench drives ld/en/rst (the standard-cell sequencer "
                        "is not placed yet)")
    p.add_argument("--corner", default="tt", help="corner of the cell tables that set the codes (default tt)")
    p.add_argument("--pdk", default="sky130")


def _run_chip(args) -> int:
    from pathlib import Path

    from ..fsio import write_json
    from ..pdk import load_pdk
    from .chip import layout_deck
    from .gds import write_gds, write_lyp
    pdk = load_pdk(args.pdk)
    out = Path(args.out)
    src = Path(args.spec)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    if args.deck:
        text = src.read_text()
    else:
        from ..netlist import build_netlist
        from ..quantize.chipspec import ChipSpec
        text = build_netlist(ChipSpec.load(src), "transistor", corner=args.corner, control=args.control)
    deck = out.with_suffix(".spice")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not (args.deck and deck.resolve() == src.resolve()):
        deck.write_text(text)
    chip = layout_deck(text, pdk)
    write_gds(chip.top.comp, out)
    write_lyp(pdk, out.with_suffix(".lyp"))
    summary = dict(gds=str(out), deck=str(deck), top=chip.name, **chip.stats, instances_per_cell=chip.counts)
    write_json(out.with_suffix(".layout.json"), summary, indent=1)   # never the ChipSpec
    print(f"{chip.name}: {chip.stats['instances']} instances of {len(chip.counts)} cells, "
          f"{chip.stats['area_mm2']:.4f} mm2 -> {out} (check: kchip drc {out}; kchip lvs {out} {deck})")
    if chip.stats.get("floating_pins"):
        print(f"pins that reach no device (no geometry): {chip.stats['floating_pins']}", file=sys.stderr)
    return 0


COMMANDS["layout"] = ("lay out a chip (ChipSpec or deck) from the cell library: hierarchical GDS", _add_chip,
                      _run_chip)
