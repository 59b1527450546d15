"""`kchip.netlist`: the chip as a SPICE deck, from the ChipSpec.

`build_netlist(spec, level)` returns the text of `chip.spice`: a header naming the ChipSpec it was built from
(its SHA-256, node/period/edge counts, port list), the cell subcircuits and the `kchip_core` subcircuit.
Levels: `ideal` (behavioural sources, ideal switches: `ideal.py`), `transistor` (sky130 cells, bias generator,
MIM capacitors, nfet switches: `transistor.py`; writes the per-edge cell codes to `<deck>.cells.json`). The testbench around it (input drivers,
control, supplies, `.save`) is written per run by `kchip.sim.simulate`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict

from kchip.fsio import write_text
from kchip.quantize.chipspec import ChipSpec

from .ideal import core_ports, ideal_netlist

LEVELS = ("ideal", "transistor")
CONTROLS = ("sequencer", "ideal")     # transistor level: standard-cell sequencer in the deck, or testbench sources
# transistor-level ngspice options. gmin 1e-12 S (ngspice's default; 1 pA per volt on a node, < 0.01 % of a
# cell's unit current): with 1e-15 the operating point of a sequencer-controlled chip (every cell disabled,
# their internal nodes nearly floating) failed gmin and source stepping (3-node relu chip, tt)
# gminsteps=0 (docs/netlist.md "Operating point of large transistor chips"): direct Newton, then source stepping,
# no gmin stepping. `kchip simulate` starts Newton from an initial state (kchip.sim.opinit): the twomoon chip on the
# session-12 tanh_lin cell (568 cells, 227 instances) converges in 49 iterations, ~3 min with the state's cost
# (session 14). Without it Newton fails on that chip, and source stepping found the point in 94 steps, 27 min
# (session 13: dynamic gmin stepping failed, hence gminsteps=0)
TRANSISTOR_OPTIONS = ".options reltol=1e-3 abstol=1e-13 vntol=1e-6 gmin=1e-12 gminsteps=0"
HEADER_TAG = "* kchip-netlist "


def spec_digest(spec: ChipSpec) -> str:
    return hashlib.sha256(spec.to_json().encode()).hexdigest()


def build_netlist(spec: ChipSpec, level: str = "ideal", corner: str = "tt", report: Dict = None,
                  control: str = None, codes_corner: str = None) -> str:
    """The deck text; for level `transistor`, `report` (a dict, if given) receives the cell realization.
    `control` (transistor level; default `sequencer`): `sequencer` puts the standard-cell sequencer in the deck
    (top subcircuit `kchip_chip`: clock, start, reset in; the testbench drives only those), `ideal` leaves the
    control to the testbench's sources (`kchip_core` only, as at the ideal level). `codes_corner` (transistor
    level): the corner whose code tables choose the cells' codes (default: `corner`), e.g. the tt chip's codes
    with the ss models, as a corner sweep of one chip needs."""
    if level not in LEVELS:
        raise ValueError(f"level: {level!r} is not available; available levels: {', '.join(LEVELS)}")
    control = control or ("sequencer" if level == "transistor" else "ideal")
    if control not in CONTROLS or (level == "ideal" and control != "ideal"):
        raise ValueError(f"control: {control!r} is not available at the {level} level (available: "
                         f"{', '.join(CONTROLS if level == 'transistor' else ('ideal',))})")
    meta = {"level": level, "spec": spec.name, "spec_sha256": spec_digest(spec), "nodes": spec.num_nodes,
            "periods": len(spec.periods), "edges": len(spec.edges), "ports": core_ports(spec)}
    if level == "transistor":
        from .transistor import LOGIC_HIGH, core_ports as tr_ports, transistor_netlist
        from .sequencer import CELLS, chip_top, default_t_clk
        seq = control == "sequencer"
        table = None
        if codes_corner and codes_corner != corner:
            from kchip.cells.tables import CodeTable
            from .transistor import cell_table_path, chip_cell_kind
            table = CodeTable.from_json(cell_table_path(chip_cell_kind(spec), codes_corner))
        body, rep = transistor_netlist(spec, corner=corner, table=table, stdcells=CELLS if seq else ())
        core = tr_ports(spec)
        meta.update(ports=core, control=control)
        if seq:
            top, info = chip_top(spec, core, default_t_clk(spec))
            body += "* ---- control: standard-cell sequencer, and the top level ----\n" + top + "\n"
            meta.update(top="kchip_chip", ports=info["ports"], sequencer=info["timing"])
        meta.update(corner=corner, logic_high=LOGIC_HIGH, directions=["forward"],
                    supplies={"vdd": 1.8, "iref": rep["i_ref_A"]}, i_u=rep["i_u"], c_f=rep["c_f"],
                    options=TRANSISTOR_OPTIONS)
        if report is not None:
            report.update(rep)
    else:
        body = ideal_netlist(spec)
    return (f"* kchip {level}-level netlist of {spec.name}\n{HEADER_TAG}{json.dumps(meta)}\n"
            f"* SW voltage v <-> V_cm + V_u v; SW current i <-> I_u i; SW time t <-> tau t\n{body}")


def read_header(text: str, where: str = "deck") -> Dict:
    for line in text.splitlines()[:5]:
        if line.startswith(HEADER_TAG):
            return json.loads(line[len(HEADER_TAG):])
    raise ValueError(f"{where}: not a kchip netlist (no '{HEADER_TAG.strip()}' header line)")


def write_netlist(spec_path, out_path, level: str = "ideal", corner: str = "tt", report: Dict = None,
                  control: str = None) -> Path:
    """Write the deck (and, at transistor level, `<deck>.cells.json`; `report`, if given, receives it too)."""
    spec = ChipSpec.load(spec_path)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    rep: Dict = {} if report is None else report
    text = build_netlist(spec, level, corner, report=rep, control=control)
    if level == "transistor":                  # the deck last: where it exists, its cells.json does too
        write_text(out.parent / (out.name + ".cells.json"), json.dumps(rep, indent=1))
    write_text(out, text)
    return out
