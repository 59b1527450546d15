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
Bulk: nfet bulks are the substrate (one net: the p-taps of every strip); pfet bulks are the n-well of their
row. A device whose bulk cannot be the substrate or its row's well (an isolated p-well) is refused, named.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..cells.structure import Circuit, Device
from ..pdk import Pdk
from .canvas import Canvas, Library
from .devices import Item, Placed, mim_cap, mos_strip, res_segment
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


def _classes(circ: Circuit) -> Tuple[str, Dict[str, str]]:
    """The substrate net (bulk of the nfets) and each device's placement class."""
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
    return sub, cls


def _res_chain(R: LayoutRules, lib: Library, circ: Circuit, d: Device, max_len_um: float) -> List[Placed]:
    """A precision resistor as a series chain of equal segments (each on the grid) of at most max_len_um."""
    L = int(round(d.l * 1000))
    n = max(1, math.ceil(d.l / max_len_um - 1e-9))
    while L % (n * R.grid):
        n += 1
    a, b = circ.terminal_net(d, "r0"), circ.terminal_net(d, "r1")
    nodes = [a] + [f"_kr_{d.name.lower()}_{k}" for k in range(1, n)] + [b]
    out = []
    for _ in range(d.m):
        for k in range(n):
            it = res_segment(lib, R, d.w, L / n / 1000)
            ends = {"r0": nodes[k], "r1": nodes[k + 1]}
            out.append(Placed(it, [ends[t.role] for t in it.terminals], d.name))
    if d.m != 1:
        raise LayoutError(f"{d.name}: m={d.m} precision resistors in parallel are not supported")
    return out


def _items(R: LayoutRules, lib: Library, circ: Circuit, max_fingers: int, max_w_um: float,
           matched: Optional[List[str]] = None, max_res_um: float = 25.0,
           snapped: Optional[List[str]] = None) -> Dict[str, List[Placed]]:
    _, cls = _classes(circ)
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


def _pack(items: List[Placed], target: int) -> List[List[Placed]]:
    rows: List[List[Placed]] = [[]]
    w = 0
    for p in items:
        if rows[-1] and w + p.item.width > target:
            rows.append([])
            w = 0
        rows[-1].append(p)
        w += p.item.width
    return rows


def _left_edge(spans: List[Tuple[int, int, str]], space: int) -> Dict[str, int]:
    """Track index per net: the left-edge channel assignment (nets whose spans do not overlap share a track)."""
    ends: List[int] = []
    out: Dict[str, int] = {}
    for lo, hi, net in sorted(spans):
        for k, e in enumerate(ends):
            if e + space <= lo:
                ends[k] = hi
                out[net] = k
                break
        else:
            ends.append(hi)
            out[net] = len(ends) - 1
    return out


def layout_circuit(circ: Circuit, pdk: Pdk, lib: Optional[Library] = None, max_fingers: int = 8,
                   max_finger_w_um: float = 8.0, channel_nm: int = 4000, aspect: float = 2.0) -> CellLayout:
    """Lay out one cell; returns a `CellLayout` whose `cell` is the top Component (named like the subckt)."""
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
    rows = [r for k in order if k in classes for r in _pack(classes[k], target)]

    # ---- x placement, terminals per row
    row_terms: List[Dict[str, List[int]]] = []
    for r in rows:
        x = 0
        terms: Dict[str, List[int]] = {}
        for p in r:
            p.x = x - p.item.x0
            x += p.item.width
            for t, n in zip(p.item.terminals, p.nets):
                terms.setdefault(n, []).append(p.x + t.x)
        row_terms.append(terms)
    right = max(sum(p.item.width for p in r) for r in rows)
    pins = [circ.net(p) for p in circ.pins]
    net_rows: Dict[str, int] = {}
    for terms in row_terms:
        for n in terms:
            net_rows[n] = net_rows.get(n, 0) + 1
    spine_nets = [n for n in circ.nets if net_rows.get(n, 0) > 1 or n in pins]
    missing = [p for p in circ.pins if circ.net(p) not in net_rows]
    if missing:
        raise LayoutError(f"cell {circ.name}: pins {missing} reach no device")
    x_sp0 = right + 1000
    spine_x = {n: x_sp0 + R.riser // 2 + i * R.spine_pitch for i, n in enumerate(spine_nets)}

    # ---- channels (left-edge tracks) and y placement
    ext = R.via2 // 2 + R.m3_via2 + 35
    min_len = -(-R.m3_area // R.track) + 10
    top = lib.new_cell(circ.name)
    y = 0
    track_y: List[Dict[str, int]] = []
    spine_span: Dict[str, List[int]] = {n: [] for n in spine_nets}
    for r, terms in zip(rows, row_terms):
        y0 = min(p.item.y0 for p in r)
        y1 = max(p.item.y1 for p in r)
        base = y - y0
        for p in r:
            p.y = base
        spans = []
        for n, xs in terms.items():
            lo, hi = min(xs) - ext, max(xs + ([spine_x[n]] if n in spine_x else [])) + ext
            if hi - lo < min_len:
                hi = lo + R.snap(min_len)
            spans.append((lo, hi, n))
        assign = _left_edge(spans, R.m3_sp + 2 * R.grid)
        ch0 = base + y1 + 300
        ty = {n: ch0 + R.track // 2 + k * R.track_pitch for n, k in assign.items()}
        track_y.append(ty)
        n_tracks = 1 + max(assign.values())
        for lo, hi, n in spans:
            c = ty[n]
            top.box("met3", lo, c - R.track // 2, hi, c + R.track - R.track // 2)
            if n in spine_span:
                spine_span[n].append(c)
        y = ch0 + n_tracks * R.track_pitch + 1300

    # ---- draw: instances, wells, risers, vias, spines, pins
    for r in rows:
        for p in r:
            top.place(p.item.cell, p.x, p.y)
        wells = [p for p in r if p.item.well]
        if wells:
            lo = min(p.y + p.item.well_y[0] for p in wells)
            hi = max(p.y + p.item.well_y[1] for p in wells)
            top.box("nwell", min(p.x + p.item.x0 for p in wells), lo, max(p.x + p.item.x1 for p in wells), hi)
    v2h = R.via2 // 2 + R.m2_via2_adj
    for r, ty in zip(rows, track_y):
        for p in r:
            for t, n in zip(p.item.terminals, p.nets):
                x, c = p.x + t.x, ty[n]
                top.box("met2", x - R.riser // 2, p.y + t.y, x + R.riser - R.riser // 2, c + v2h)
                top.cbox("via2", x, c, R.via2, R.via2)
    y_top = y - 1300 + 800
    pin_pos: Dict[str, Tuple[int, int]] = {}
    for n, xs in spine_x.items():
        ys = spine_span[n]
        lo = min(ys) - v2h
        hi = y_top if n in pins else max(ys) + v2h
        top.box("met2", xs - R.riser // 2, lo, xs + R.riser - R.riser // 2, hi)
        for c in ys:
            top.cbox("via2", xs, c, R.via2, R.via2)
    for k, p in enumerate(circ.pins):
        n = circ.net(p)
        xs = spine_x[n]
        ly = y_top - 200 - 400 * [q for q in circ.pins if circ.net(q) == n].index(p)
        top.box("met2", xs - R.riser // 2, y_top - 300, xs + R.riser - R.riser // 2, y_top, purpose="pin")
        top.label("met2", p, xs, ly)
        pin_pos[p] = (xs, ly)
    b = top.bbox()
    top.box("prbndry", b.left - 500, b.bottom - 500, b.right + 500, b.top + 500)
    strips = sum(len(r) for r in rows)
    stats = dict(devices=len(circ.devices), copies=circ.copies, gate_area_um2=round(circ.gate_area_um2, 4),
                 rows=len(rows), strips=strips,
                 matching=("interdigitated, evenly spread along the row: " + ", ".join(matched)) if matched
                 else "no matched groups", snapped=snapped)
    out = CellLayout(circ.name, top, lib, circ, len(rows), strips, pin_pos, stats)
    bb = out.bbox_um
    out.stats["bbox_area_um2"] = round((bb[2] - bb[0]) * (bb[3] - bb[1]), 3)
    return out
