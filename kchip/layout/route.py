"""The row router: met2 risers from every terminal to met3 tracks in the channel above its row (left-edge
packing), met2 spines right of all rows for nets that span rows or are pins, pins at the top edge, and an
optional substrate guard ring. Correct by construction for any netlist; DRC checks it all the same.

Used by the cell layouts (kchip.layout.cell); items are anything with terminals (kchip.layout.devices.Item).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from .canvas import Canvas
from .devices import Placed, contact_column
from .rules import LayoutError, LayoutRules

__all__ = ["route_rows", "left_edge", "pack_rows"]

ROW_GAP = 1300        # nm between a channel's last track and the next row's lowest feature (nwell.2a + margin)
RING_MARGIN = 1000    # nm from the contents to the guard ring


def pack_rows(items: List[Placed], target: int) -> List[List[Placed]]:
    """Items left to right into rows of at most `target` nm (a row holds at least one item)."""
    rows: List[List[Placed]] = [[]]
    w = 0
    for p in items:
        if rows[-1] and w + p.item.width > target:
            rows.append([])
            w = 0
        rows[-1].append(p)
        w += p.item.width
    return rows


def left_edge(spans: List[Tuple[int, int, str]], space: int) -> Dict[str, int]:
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


def _x_place(rows: List[List[Placed]]) -> List[Dict[str, List[int]]]:
    row_terms = []
    for r in rows:
        x = 0
        terms: Dict[str, List[int]] = {}
        for p in r:
            p.x = x - p.item.x0
            x += p.item.width
            for t, n in zip(p.item.terminals, p.nets):
                terms.setdefault(n, []).append(p.x + t.x)
        row_terms.append(terms)
    return row_terms


def _channels(top: Canvas, R: LayoutRules, rows, row_terms, spine_x) -> Tuple[List[Dict[str, int]], int]:
    """y placement of the rows and their channels; draws the tracks. Returns (track y per net per row, top y)."""
    ext = R.via2 // 2 + R.m3_via2 + 35
    min_len = -(-R.m3_area // R.track) + 10
    y = 0
    track_y: List[Dict[str, int]] = []
    for r, terms in zip(rows, row_terms):
        y0 = min(p.item.y0 for p in r)
        y1 = max(p.item.y1 for p in r)
        base = y - y0
        for p in r:
            p.y = base
        spans = []
        for n, xs in sorted(terms.items()):
            lo, hi = min(xs) - ext, max(xs + ([spine_x[n]] if n in spine_x else [])) + ext
            if hi - lo < min_len:
                hi = lo + R.snap(min_len)
            spans.append((lo, hi, n))
        assign = left_edge(spans, R.m3_sp + 2 * R.grid)
        ch0 = base + y1 + 300
        ty = {n: ch0 + R.track // 2 + k * R.track_pitch for n, k in assign.items()}
        track_y.append(ty)
        for lo, hi, n in spans:
            top.box("met3", lo, ty[n] - R.track // 2, hi, ty[n] + R.track - R.track // 2)
        y = ch0 + (1 + max(assign.values())) * R.track_pitch + ROW_GAP
    return track_y, y - ROW_GAP


def route_rows(top: Canvas, R: LayoutRules, rows: List[List[Placed]], pins: Sequence[Tuple[str, str]],
               nets: Sequence[str], guard_net: Optional[str] = None, where: str = "",
               floating: Optional[List[str]] = None) -> Tuple[Dict[str, Tuple[int, int]], int]:
    """Place `rows` (x from 0, bottom row first), route every net, draw pins (name, net) and, with guard_net, a
    substrate ring on that net. Returns each pin's label position and the top edge of the pin shapes (nm).
    A pin that reaches no device is an error, or, given a `floating` list, appended to it and left out."""
    row_terms = _x_place(rows)
    right = max(sum(p.item.width for p in r) for r in rows)
    net_rows: Dict[str, int] = {}
    for terms in row_terms:
        for n in terms:
            net_rows[n] = net_rows.get(n, 0) + 1
    missing = [p for p, n in pins if n not in net_rows]
    if missing and floating is None:
        raise LayoutError(f"{where}: pins {missing} reach no device")
    if missing:
        floating.extend(missing)                # reported by the caller; no geometry for them
        pins = [(p, n) for p, n in pins if n in net_rows]
    pin_nets = [n for _, n in pins]
    spine_nets = [n for n in nets if net_rows.get(n, 0) > 1 or n in pin_nets]
    if guard_net is not None and guard_net not in spine_nets:
        raise LayoutError(f"{where}: guard ring net {guard_net!r} is not a pin")
    x_sp0 = right + 1000
    spine_x = {n: x_sp0 + R.riser // 2 + i * R.spine_pitch for i, n in enumerate(spine_nets)}
    track_y, y_rows = _channels(top, R, rows, row_terms, spine_x)
    spine_span = _place_and_rise(top, R, rows, track_y, spine_nets)
    y_top = y_rows + 800
    ring_y = None
    if guard_net is not None:
        b = top.bbox()
        ring_y = _guard_ring(top, R, b.left - RING_MARGIN, b.bottom - RING_MARGIN,
                             max(b.right, spine_x[spine_nets[-1]] + R.riser) + RING_MARGIN, y_top + RING_MARGIN)
    _spines(top, R, spine_x, spine_span, pin_nets, y_top, guard_net, ring_y)
    pin_pos: Dict[str, Tuple[int, int]] = {}
    for pin, n in pins:
        xs = spine_x[n]
        ly = y_top - 200 - 400 * [q for q, m in pins if m == n].index(pin)
        top.box("met2", xs - R.riser // 2, y_top - 300, xs + R.riser - R.riser // 2, y_top, purpose="pin")
        top.label("met2", pin, xs, ly)
        pin_pos[pin] = (xs, ly)
    b = top.bbox()
    top.box("prbndry", b.left - 500, b.bottom - 500, b.right + 500, b.top + 500)
    return pin_pos, y_top


def _place_and_rise(top: Canvas, R: LayoutRules, rows, track_y, spine_nets) -> Dict[str, List[int]]:
    """Place the items, draw each row's n-well and every terminal's riser with its via2 on the net's track.
    Returns the track y of every spine net, row by row."""
    v2h = R.via2 // 2 + R.m2_via2_adj
    spine_span: Dict[str, List[int]] = {n: [] for n in spine_nets}
    for r in rows:
        for p in r:
            top.place(p.item.cell, p.x, p.y)
        wells = [p for p in r if p.item.well]
        if wells:
            lo = min(p.y + p.item.well_y[0] for p in wells)
            hi = max(p.y + p.item.well_y[1] for p in wells)
            top.box("nwell", min(p.x + p.item.x0 for p in wells), lo, max(p.x + p.item.x1 for p in wells), hi)
    for r, ty in zip(rows, track_y):
        for n, c in ty.items():
            if n in spine_span:
                spine_span[n].append(c)
        for p in r:
            for t, n in zip(p.item.terminals, p.nets):
                x, c = p.x + t.x, ty[n]
                top.box("met2", x - R.riser // 2, p.y + t.y, x + R.riser - R.riser // 2, c + v2h)
                top.cbox("via2", x, c, R.via2, R.via2)
    return spine_span


def _spines(top: Canvas, R: LayoutRules, spine_x, spine_span, pin_nets, y_top: int, guard_net, ring_y) -> None:
    """One met2 spine per net with a via2 on each of its tracks; pin spines run to y_top, the guard net's
    spine down to the ring (via1)."""
    v2h = R.via2 // 2 + R.m2_via2_adj
    for n, xs in spine_x.items():
        ys = spine_span[n]
        lo = min(ys) - v2h
        if n == guard_net:
            lo = ring_y - R.via // 2 - R.m2_via_adj
            top.cbox("via", xs, ring_y, R.via, R.via)
        hi = y_top if n in pin_nets else max(ys) + v2h
        top.box("met2", xs - R.riser // 2, lo, xs + R.riser - R.riser // 2, hi)
        for c in ys:
            top.cbox("via2", xs, c, R.via2, R.via2)


def _guard_ring(c: Canvas, R: LayoutRules, x0: int, y0: int, x1: int, y1: int) -> int:
    """A p-tap ring (tap, psdm, licons, li, mcons, met1) whose inner edge is the box (x0, y0, x1, y1).
    Returns the y of the bottom side's centre line, where the guard net's spine lands a via1."""
    g = R.grid
    TW = R.tap_w
    x0, y0 = x0 // g * g, y0 // g * g
    x1, y1 = -(-x1 // g) * g, -(-y1 // g) * g
    sides = [(x0 - TW, y0 - TW, x1 + TW, y0), (x0 - TW, y1, x1 + TW, y1 + TW),
             (x0 - TW, y0, x0, y1), (x1, y0, x1 + TW, y1)]
    imp = R.implant_diff
    for (a, b, cc, d) in sides:
        c.box("tap", a, b, cc, d)
        c.box("psdm", a - imp, b - imp, cc + imp, d + imp)
    m1w = R.m1_strip
    for k, (a, b, cc, d) in enumerate(sides):
        horizontal = k < 2
        mid = ((b + d) // 2 if horizontal else (a + cc) // 2) // g * g
        lo, hi = (a + TW, cc - TW) if horizontal else (b, d)
        n, used = contact_column(hi - lo - 2 * R.li_adj, R.licon, R.licon_sp)
        s0 = lo + ((hi - lo - used) // 2) // g * g
        nm, used_m = contact_column(hi - lo - 2 * R.li_adj, R.mcon, R.mcon_sp)
        m0 = lo + ((hi - lo - used_m) // 2) // g * g
        for i in range(n):
            p = s0 + i * (R.licon + R.licon_sp)
            box = (p, mid - R.licon // 2, p + R.licon, mid + R.licon - R.licon // 2) if horizontal else \
                (mid - R.licon // 2, p, mid + R.licon - R.licon // 2, p + R.licon)
            c.box("licon", *box)
        for i in range(nm):
            p = m0 + i * (R.mcon + R.mcon_sp)
            box = (p, mid - R.mcon // 2, p + R.mcon, mid + R.mcon - R.mcon // 2) if horizontal else \
                (mid - R.mcon // 2, p, mid + R.mcon - R.mcon // 2, p + R.mcon)
            c.box("mcon", *box)
        # li and met1 run the full side, through the corners, so that the four sides merge into one ring
        ends = (y0 - TW // 2 - R.licon, y1 + TW // 2 + R.licon)
        if horizontal:
            c.box("li", x0 - TW // 2 - R.licon, mid - R.licon // 2, x1 + TW // 2 + R.licon,
                  mid + R.licon - R.licon // 2)
            c.box("met1", x0 - TW // 2 - m1w, mid - m1w // 2, x1 + TW // 2 + m1w, mid + m1w - m1w // 2)
        else:
            c.box("li", mid - R.licon // 2, ends[0], mid + R.licon - R.licon // 2, ends[1])
            c.box("met1", mid - m1w // 2, y0 - TW // 2 - m1w, mid + m1w - m1w // 2, y1 + TW // 2 + m1w)
    return (y0 - TW + y0) // 2 // g * g
