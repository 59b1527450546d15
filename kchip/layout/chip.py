"""Chip layout: the netlist stage's transistor deck laid out as a hierarchy of blocks.

A subcircuit whose body holds only PDK devices is a leaf cell, laid out by `layout_circuit` (once, placed as many
times as it is instantiated). Any other subcircuit is a block: its instances become items, are packed into rows
(ordered by kind: bias, control inverters, node capacitors and switches, edge cells by period), and are joined by
the same row router as the cells' devices (`kchip.layout.route`): a met2 riser from every instance pin (the pin
shapes at the child's top edge) to a met3 track, met2 spines for nets that span rows and for the block's pins.
Codes are hard-wired: the deck ties each code bit to vdd or ground, and the router wires it so.

Standard cells (the sequencer) are not placed yet: a deck with the sequencer is refused with that reason
(netlist.control: ideal gives the chip without it, the testbench driving the control lines).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..cells.structure import Circuit
from ..pdk import Pdk
from ..verify.deck import netlist_view, subckts
from .canvas import Library
from .cell import layout_circuit
from .devices import Item, Placed, Terminal
from .rules import LayoutError, LayoutRules

__all__ = ["ChipLayout", "layout_deck"]

CELL_GAP = 3200      # nm around every instance: dnwell.3 (6.3 um) between the wells of neighbouring cells


@dataclass
class ChipLayout:
    name: str
    lib: Library
    top: object                       # Canvas of the top block
    blocks: Dict[str, Item]
    counts: Dict[str, int] = field(default_factory=dict)      # instances per leaf cell
    stats: Dict[str, float] = field(default_factory=dict)


def _order_key(inst: str, child: str) -> tuple:
    m = re.match(r"X_p(\d+)_e(\d+)_", inst)
    if child.startswith("kc_bias"):
        return (0, 0, inst)
    if child == "kc_inv":
        return (1, 0, inst)
    if m:
        return (3, int(m.group(1)), int(m.group(2)))
    return (2, 0, inst)


class _Builder:
    def __init__(self, view: str, pdk: Pdk, lib: Library, aspect: float):
        self.subs = subckts(view)
        self.lower = {k.lower(): k for k in self.subs}
        self.devices = {pdk.device(k)["name"].lower() for k in pdk.data["devices"]}
        self.pdk, self.lib, self.aspect = pdk, lib, aspect
        self.R = LayoutRules.from_pdk(pdk)
        self.items: Dict[str, Item] = {}
        self.counts: Dict[str, int] = {}
        self.floating: Dict[str, List[str]] = {}      # block -> pins that reach no device (no geometry)

    def _text(self, name: str) -> str:
        pins, body = self.subs[name]
        return "\n".join([f".subckt {name} {' '.join(pins)}", *body, f".ends {name}"])

    def item(self, name: str) -> Item:
        if name in self.items:
            return self.items[name]
        if name not in self.subs:
            raise LayoutError(f"deck: subcircuit {name!r} is instantiated but not defined")
        if name.lower().startswith("sky130_fd_sc_"):
            raise LayoutError(f"{name}: standard cells (the sequencer) are not placed by kchip's chip layout yet; "
                              f"use netlist.control: ideal (the testbench drives the control lines)")
        pins, body = self.subs[name]
        calls = [ln.split() for ln in body if ln[:1] in "xX"]
        children = [[p for p in c[1:] if "=" not in p][-1] for c in calls]
        if all(ch.lower() in self.devices for ch in children):
            circ = Circuit.from_text(self._text(name), self.pdk, name=name)
            lay = layout_circuit(circ, self.pdk, lib=self.lib)
            it = _as_item(lay.cell, {p: lay.pins[p] for p in circ.pins}, lay.y_top, pins)
        else:
            it = self._block(name, pins, calls, children)
        self.items[name] = it
        return it

    def _block(self, name, pins, calls, children) -> Item:
        from .route import pack_rows, route_rows
        placed = []
        for c, ch in sorted(zip(calls, children), key=lambda t: _order_key(t[0][0], t[1])):
            ch = self.lower.get(ch.lower(), ch)
            it = self.item(ch)
            self.counts[ch] = self.counts.get(ch, 0) + 1
            nets = [p for p in c[1:] if "=" not in p][:-1]
            cpins = self.subs[ch][0]
            if len(nets) != len(cpins):
                raise LayoutError(f"{name}: instance {c[0]} has {len(nets)} nets, {ch} has {len(cpins)} pins")
            conn = dict(zip(cpins, nets))
            # a child pin without geometry (floating inside the child) has no terminal: its net is not wired here
            placed.append(Placed(it, [conn[t.role] for t in it.terminals], c[0]))
        if not placed:
            raise LayoutError(f"{name}: a block without instances")
        top = self.lib.new_cell(name)
        est = sum(p.item.width * (p.item.y1 - p.item.y0 + 20000) for p in placed)
        target = max(max(p.item.width for p in placed), int(math.sqrt(est * self.aspect)))
        rows = pack_rows(placed, target)
        nets_all: Dict[str, None] = {}
        for p in pins:
            nets_all.setdefault(p)
        for p in placed:
            for n in p.nets:
                nets_all.setdefault(n)
        floating: List[str] = []
        pin_pos, y_top = route_rows(top, self.R, rows, [(p, p) for p in pins], list(nets_all),
                                    where=f"block {name}", floating=floating)
        if floating:
            self.floating[name] = floating
        return _as_item(top, pin_pos, y_top, [p for p in pins if p not in floating])


def _as_item(cell, pin_pos: Dict[str, Tuple[int, int]], y_top: int, pins: List[str]) -> Item:
    b = cell.bbox()
    h = CELL_GAP // 2
    terms = [Terminal(p, pin_pos[p][0], y_top - 300) for p in pins]
    return Item(cell, b.left - h, b.right + h, b.bottom - h, b.top, terms)


def layout_deck(deck_text: str, pdk: Pdk, top: Optional[str] = None, lib: Optional[Library] = None,
                aspect: float = 1.0) -> ChipLayout:
    """Lay out the deck's top block (`top`, default kchip_chip or else kchip_core) and everything below it."""
    view = netlist_view(deck_text, pdk)
    b = _Builder(view, pdk, lib or Library(pdk, "kchip_chip"), aspect)
    if top is None:
        top = next((t for t in ("kchip_chip", "kchip_core") if t in b.subs), None)
        if top is None:
            raise LayoutError("deck: no kchip_chip or kchip_core subcircuit (name the top with top=)")
    if top not in b.subs:
        raise LayoutError(f"deck: no subcircuit {top!r}")
    it = b.item(top)
    bb = it.cell.bbox()
    stats = dict(bbox_um=[bb.left / 1000, bb.bottom / 1000, bb.right / 1000, bb.top / 1000],
                 area_mm2=round(bb.width() * bb.height() * 1e-12, 6),
                 instances=sum(b.counts.values()), cells=len(b.counts), floating_pins=b.floating)
    return ChipLayout(top, b.lib, it.cell, b.items, dict(b.counts), stats)
