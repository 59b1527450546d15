"""`kchip netlist chip.json --level ideal -o chip.spice`."""
from __future__ import annotations


def _add(p):
    p.add_argument("spec", help="ChipSpec JSON (kchip quantize)")
    p.add_argument("--level", default="ideal", help="ideal | transistor (sky130 cells; Eq. 10 ReLU laws)")
    p.add_argument("--corner", default="tt", help="corner of the models and cell tables (transistor level)")
    p.add_argument("--control", default=None, choices=["sequencer", "ideal"],
                   help="transistor level: the standard-cell sequencer in the deck (default) or testbench sources")
    p.add_argument("-o", "--out", required=True, help="SPICE deck to write")


def _run(args) -> int:
    from . import write_netlist
    out = write_netlist(args.spec, args.out, args.level, args.corner, control=args.control)
    print(f"wrote {out}")
    return 0


COMMANDS = {"netlist": ("write the chip's SPICE deck from a ChipSpec", _add, _run)}
