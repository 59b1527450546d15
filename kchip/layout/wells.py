"""Isolated p-wells: nfets whose bulk is not the substrate (a pair's common source, a diode's own node) sit in
a p-well island of their own, cut from the substrate by a deep n-well beneath and an n-well ring around.

    ring (nwell, n-tap on `well_net`)      dnwell = hole + nwell.6 (1.03 um)      ring outer = dnwell + nwell.5
    +----------------------------------+
    |  hole: the strips, each with its |   the strips' own p-taps contact the island (their bulk net)
    |  p-tap on the island's net       |
    +----------------------------------+
The item's frame keeps dnwell.3 (6.3 um) to any neighbour's deep n-well, and every other well, by a margin of
half that spacing on each side.
"""
from __future__ import annotations

from typing import List

from .canvas import Library
from .devices import Item, Placed, Terminal, contact_column, stack_up
from .rules import LayoutRules

__all__ = ["isolated_well"]

HOLE_MARGIN = 500       # nm from the strips' extent (implants included) to the ring: difftap.9 / .11 with room


def isolated_well(lib: Library, R: LayoutRules, name: str, strips: List[Placed], well_net: str) -> Placed:
    c = lib.new_cell(name)
    x = 0
    nets: List[str] = []
    terms: List[Terminal] = []
    y0 = min(p.item.y0 for p in strips)
    y1 = max(p.item.y1 for p in strips)
    for p in strips:
        ox = x - p.item.x0
        c.place(p.item.cell, ox, 0)
        for t, n in zip(p.item.terminals, p.nets):
            terms.append(Terminal(t.role, ox + t.x, t.y))
            nets.append(n)
        x += p.item.width
    hx0, hy0, hx1, hy1 = -HOLE_MARGIN, y0 - HOLE_MARGIN, x + HOLE_MARGIN, y1 + HOLE_MARGIN
    e6, e5 = R.dnwell_hole, R.nwell_dnwell
    dx0, dy0, dx1, dy1 = hx0 - e6, hy0 - e6, hx1 + e6, hy1 + e6
    c.box("dnwell", dx0, dy0, dx1, dy1)
    ox0, oy0, ox1, oy1 = dx0 - e5, dy0 - e5, dx1 + e5, dy1 + e5
    for b in ((ox0, oy0, ox1, hy0), (ox0, hy1, ox1, oy1), (ox0, hy0, hx0, hy1), (hx1, hy0, ox1, hy1)):
        c.box("nwell", *b)
    # n-tap in the left side of the ring, with its contact stack and met2 landing
    TW = R.tap_w
    tcx = ((ox0 + hx0) // 2) // R.grid * R.grid
    ty0 = (hy0 + hy1) // 2 // R.grid * R.grid - TW
    c.box("tap", tcx - TW // 2, ty0, tcx + TW - TW // 2, ty0 + 2 * TW)
    n, used = contact_column(2 * TW - 2 * R.licon_diff, R.licon, R.licon_sp)
    cy0 = ty0 + ((2 * TW - used) // 2) // R.grid * R.grid
    for k in range(n):
        y = cy0 + k * (R.licon + R.licon_sp)
        c.box("licon", tcx - R.licon // 2, y, tcx + R.licon - R.licon // 2, y + R.licon)
    _, land = stack_up(c, R, tcx, cy0, cy0 + used)
    imp = R.implant_diff
    c.box("nsdm", tcx - TW // 2 - imp, ty0 - imp, tcx + TW - TW // 2 + imp, ty0 + 2 * TW + imp)
    terms.append(Terminal("w", tcx, land))
    nets.append(well_net)
    m = R.dnwell_space // 2
    item = Item(c, dx0 - m, dx1 + m, dy0 - m, dy1 + m, terms)
    return Placed(item, nets, name)
