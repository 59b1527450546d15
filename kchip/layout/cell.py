"""Cell layout from a structured `Circuit` (kchip.cells.structure): placement in rows and channel routing.

Placement. Every MOS device becomes one or more strips (`devices.mos_strip`, at most `max_fingers` fingers
each; its multiplier m = fingers), every MIM capacitor one `devices.mim_cap`. Items are grouped by class (nfet
on the substrate, pfet per n-well net, capacitors) and packed left to right into rows of a target width that
makes the cell about square. Matching: the devices of one `Circuit.match_groups` group (same model and W/L,
shared gate or shared source) are cut into strips of one finger (or a few, for large groups) and interleaved so
that each device's strips spread evenly along the row (e.g. 1:4 mirror -> B B A B B): common-centroid in one
dimension, interdigitated.

Routing (a two-level channel router that is correct by construction):
  * every terminal lands a via on a met2 pad; a vertical met2 riser runs from it to its net's met3 track in the
    channel above the row (risers of one row never share an x: the strips are drawn so);
  * a channel's tracks are packed by the left-edge algorithm: nets whose x spans do not overlap share a track;
  * a net that spans several rows, or is a pin, gets a vertical met2 spine right of all rows; its tracks run to
    the spine and meet it with a via2; pin spines run to the top edge, where the pin shape and label sit (met2).
Bulk: nfet bulks are the substrate (one net: the p-taps of every strip), or, for an nfet whose bulk is another
net, an isolated p-well of that net (kchip.layout.wells); pfet bulks are the n-well of their row. Precision
resistors sit on the substrate, as series chains of segments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..cells.structure import Circuit, Device
from ..pdk import Pdk
from .canvas import Canvas, Library
from .devices import Placed, mim_cap, mos_strip, res_segment
from .route import pack_rows, route_rows
from .wells import isolated_well
from .rules import LayoutError, LayoutRules

__all__ = ["CellLayout", "layout_circuit"]


@dataclass
class CellLayout:
    name: str
    cell: Canvas
    lib: Library
    circuit: Circuit
    rows: int
    strips: int
    pins: Dict[str, Tuple[int, int]]                 # pin -> label position (nm)
    stats: Dict[str, float] = field(default_factory=dict)
    y_top: int = 0                                   # top edge of the pin shapes (nm)

    @property
    def bbox_um(self) -> Tuple[float, float, float, float]:
        b = self.cell.bbox()
        return (b.left / 1000, b.bottom / 1000, b.right / 1000, b.top / 1000)


def _fold(R: LayoutRules, d: Device, max_w_um: float, snapped: Optional[List[str]] = None) -> Tuple[int, float]:
    """Fingers per copy and the finger width: a device wider than max_w_um is folded into equal fingers whose
    width stays on the manufacturing grid (the total W is exact). A W that is itself off the grid is drawn at the
    nearest grid width and listed in `snapped` (LVS's W tolerance covers it; the report names it)."""
    W = int(round(d.w * 1000 / R.grid)) * R.grid
    if abs(W - d.w * 1000) > 1e-6 and snapped is not None:
        snapped.append(f"{d.name} w={d.w:g} -> {W / 1000:g} um (x{d.m})")
    nf = max(1, math.ceil(d.w / max_w_um - 1e-9))
    for k in range(nf, 4 * nf + 1):
        if W % (k * R.grid) == 0:
            return k, W / k / 1000
    raise LayoutError(f"{d.name}: w={d.w} um cannot be folded into fingers on the {R.grid} nm grid")


def _strips(R: LayoutRules, lib: Library, circ: Circuit, d: Device, fingers: Sequence[int],
            wf: float) -> List[Placed]:
    nets = {p: circ.terminal_net(d, p) for p in d.pins}
    out = []
    for nf in fingers:
        it = mos_strip(lib, R, d.kind, wf, d.l, nf)
        out.append(Placed(it, [nets[t.role] for t in it.terminals], d.name))
    return out


def _chunks(total: int, size: int) -> List[int]:
    return [min(size, total - k) for k in range(0, total, size)]


def _classes(circ: Circuit) -> Dict[str, str]:
    """Each device's placement class: 'n' (substrate), 'iso:<bulk>', 'p:<well>', 'res' or 'cap'."""
    nb = [circ.terminal_net(d, "b") for d in circ.devices if d.is_mos and d.polarity == "n"]
    sub = "vss" if "vss" in circ.nets or not nb else nb[0]
    cls: Dict[str, str] = {}
    for d in circ.devices:
        if d.is_mos:
            b = circ.terminal_net(d, "b")
            if d.polarity == "n":
                cls[d.name] = "n" if b == sub else f"iso:{b}"     # iso: an isolated p-well of its own
            else:
                cls[d.name] = f"p:{b}"
        elif d.kind == "mimcap":
            cls[d.name] = "cap"
        elif d.kind == "res_xhigh":
            b = circ.terminal_net(d, "sub")
            if b != sub:
                raise LayoutError(f"cell {circ.name}: {d.name} ({d.model}) has its body on {b!r}, not the "
                                  f"substrate net {sub!r}")
            cls[d.name] = "res"
        else:
            raise LayoutError(f"cell {circ.name}: {d.name} ({d.model}): no layout generator for a {d.kind!r}")
    return cls


def _res_chain(R: LayoutRules, lib: Library, circ: Circuit, d: Device, max_len_um: float) -> List[Placed]:
    """A precision resistor as a series chain of equal segments (each on the grid) of at most max_len_um."""
    if d.m != 1:
        raise LayoutError(f"{d.name}: m={d.m} precision resistors in parallel are not supported")
    L = int(round(d.l * 1000))
    n = max(1, math.ceil(d.l / max_len_um - 1e-9))
    while L % (n * R.grid):
        n += 1
    a, b = circ.terminal_net(d, "r0"), circ.terminal_net(d, "r1")
    nodes = [a] + [f"_kr_{d.name.lower()}_{k}" for k in range(1, n)] + [b]
    out = []
    for k in range(n):
        it = res_segment(lib, R, d.w, L / n / 1000)
        ends = {"r0": nodes[k], "r1": nodes[k + 1]}
        out.append(Placed(it, [ends[t.role] for t in it.terminals], d.name))
    return out


def _items(R: LayoutRules, lib: Library, circ: Circuit, max_fingers: int, max_w_um: float,
           matched: Optional[List[str]] = None, max_res_um: float = 25.0,
           snapped: Optional[List[str]] = None) -> Dict[str, List[Placed]]:
    cls = _classes(circ)
    groups: Dict[str, List[str]] = {}
    for g in circ.match_groups:
        members = [n for n in g if n in cls]
        if len({cls[n] for n in members}) == 1:
            for n in members:
                groups.setdefault(n, members)
    devs = {d.name: d for d in circ.devices}
    done: set = set()
    out: Dict[str, List[Placed]] = {}
    for d in circ.devices:
        if d.name in done:
            continue
        row = out.setdefault(cls[d.name], [])
        if d.kind == "mimcap":
            it = mim_cap(lib, R, d.w, d.l)
            for _ in range(d.m):
                row.append(Placed(it, [circ.terminal_net(d, t.role) for t in it.terminals], d.name))
            done.add(d.name)
            continue
        if d.kind == "res_xhigh":
            row += _res_chain(R, lib, circ, d, max_res_um)
            done.add(d.name)
            continue
        members = [n for n in groups.get(d.name, [d.name]) if n not in done]
        fold = {n: _fold(R, devs[n], max_w_um, snapped) for n in members}
        total = sum(devs[n].m * fold[n][0] for n in members)
        size = max_fingers if len(members) == 1 else max(1, math.ceil(total / 32))
        spread = []
        for n in members:
            parts = _strips(R, lib, circ, devs[n], _chunks(devs[n].m * fold[n][0], size), fold[n][1])
            spread += [((k + 0.5) / len(parts), n, p) for k, p in enumerate(parts)]
            done.add(n)
        spread.sort(key=lambda t: (t[0], members.index(t[1])))
        row += [p for _, _, p in spread]
        if matched is not None and len(members) > 1:
            matched.append("/".join(members))
    return out


def layout_circuit(circ: Circuit, pdk: Pdk, lib: Optional[Library] = None, max_fingers: int = 8,
                   max_finger_w_um: float = 8.0, channel_nm: int = 4000, aspect: float = 2.0,
                   guard_ring: Optional[bool] = None) -> CellLayout:
    """Lay out one cell; returns a `CellLayout` whose `cell` is the top Component (named like the subckt).
    guard_ring: a substrate ring on vss around the cell (default: cells of 10 devices or more)."""
    R = LayoutRules.from_pdk(pdk)
    lib = lib or Library(pdk, circ.name)
    matched: List[str] = []
    snapped: List[str] = []
    classes = _items(R, lib, circ, max_fingers, max_finger_w_um, matched, snapped=snapped)
    well_net = "vdd" if "vdd" in circ.nets else None
    islands = []
    for k in sorted(k for k in classes if k.startswith("iso:")):
        if well_net is None:
            raise LayoutError(f"cell {circ.name}: isolated p-well of {k[4:]!r} needs a 'vdd' net for its n-well ring")
        islands.append(isolated_well(lib, R, f"{circ.name}_pw_{k[4:]}", classes.pop(k), well_net))
    if islands:
        classes["iso"] = islands          # one island per bulk net, packed into rows like any item
    items = [p.item for ps in classes.values() for p in ps]
    widest = max(it.width for it in items)
    est = sum(it.width * (it.y1 - it.y0 + channel_nm) for it in items)      # area with its share of channel
    target = max(int(1.5 * widest), int(math.sqrt(est * aspect)))
    order = ["n", "iso"] + sorted(k for k in classes if k.startswith("p:")) + ["res", "cap"]
    rows = [r for k in order if k in classes for r in pack_rows(classes[k], target)]

    top = lib.new_cell(circ.name)
    pins = [(p, circ.net(p)) for p in circ.pins]
    ring = guard_ring if guard_ring is not None else len(circ.devices) >= 10
    pin_pos, y_top = route_rows(top, R, rows, pins, circ.nets, guard_net="vss" if ring and "vss" in circ.nets else None,
                         where=f"cell {circ.name}")
    strips = sum(len(r) for r in rows)
    stats = dict(devices=len(circ.devices), copies=circ.copies, gate_area_um2=round(circ.gate_area_um2, 4),
                 rows=len(rows), strips=strips,
                 matching=("interdigitated, evenly spread along the row: " + ", ".join(matched)) if matched
                 else "no matched groups", snapped=snapped, guard_ring=bool(ring and "vss" in circ.nets))
    out = CellLayout(circ.name, top, lib, circ, len(rows), strips, pin_pos, stats, y_top)
    bb = out.bbox_um
    out.stats["bbox_area_um2"] = round((bb[2] - bb[0]) * (bb[3] - bb[1]), 3)
    return out
