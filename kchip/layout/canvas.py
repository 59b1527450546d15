"""Drawing onto gdsfactory Components by layer *name* (layers.yaml, through kchip.pdk), in integer nanometres.

Each layout build owns one KCLayout (kfactory's layout object under gdsfactory), so that two builds in one
process never share cell names and the same inputs give the same GDS bytes.
"""
from __future__ import annotations

from typing import Dict, Tuple

import klayout.db as kdb

from ..pdk import Pdk

__all__ = ["Library", "Canvas"]


def _ensure_gf():
    import gdsfactory as gf
    try:
        gf.get_active_pdk()
    except ValueError:
        gf.gpdk.PDK.activate()       # gdsfactory needs some active PDK; kchip reads no data from it
    return gf


class Library:
    """One layout build: a KCLayout at 1 nm database unit, its cells by name, the PDK's layer map."""

    _count = 0

    def __init__(self, pdk: Pdk, name: str = "kchip"):
        import kfactory as kf
        self.gf = _ensure_gf()
        Library._count += 1
        self.kcl = kf.KCLayout(f"{name}_{Library._count}")
        self.kcl.dbu = 0.001
        self.pdk = pdk
        self.cells: Dict[str, object] = {}
        self.items: Dict[str, object] = {}      # kchip.layout.devices.Item by cell name
        self._li: Dict[Tuple[str, str], int] = {}

    def layer_index(self, name: str, purpose: str = "drawing") -> int:
        key = (name, purpose)
        if key not in self._li:
            l, d = self.pdk.layer(name, purpose)
            self._li[key] = self.kcl.layer(l, d)
        return self._li[key]

    def new_cell(self, name: str) -> "Canvas":
        if name in self.cells:
            raise ValueError(f"layout cell {name!r} built twice in one library")
        comp = self.gf.Component(name=name, kcl=self.kcl)
        self.cells[name] = comp
        return Canvas(self, comp)

    def get(self, name: str):
        return self.cells.get(name)


class Canvas:
    """Shapes of one cell, by layer name."""

    def __init__(self, lib: Library, comp):
        self.lib = lib
        self.comp = comp

    @property
    def name(self) -> str:
        return self.comp.name

    def box(self, layer: str, x0: int, y0: int, x1: int, y1: int, purpose: str = "drawing") -> None:
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"cell {self.name}: empty {layer} box ({x0}, {y0}, {x1}, {y1})")
        self.comp.shapes(self.lib.layer_index(layer, purpose)).insert(kdb.Box(x0, y0, x1, y1))

    def cbox(self, layer: str, cx: int, cy: int, w: int, h: int) -> None:
        """Box of w x h centred on (cx, cy); w, h even multiples of the grid keep it on grid."""
        self.box(layer, cx - w // 2, cy - h // 2, cx + w - w // 2, cy + h - h // 2)

    def label(self, layer: str, text: str, x: int, y: int) -> None:
        self.comp.shapes(self.lib.layer_index(layer, "label")).insert(kdb.Text(text, kdb.Trans(x, y)))

    def place(self, child: "Canvas", x: int, y: int) -> None:
        self.comp.kdb_cell.insert(kdb.CellInstArray(child.comp.kdb_cell.cell_index(), kdb.Trans(x, y)))

    def place_array(self, child: "Canvas", x: int, y: int, nx: int, ny: int, px: int, py: int) -> None:
        """nx x ny copies of child at pitch (px, py) from (x, y): one GDS AREF."""
        self.comp.kdb_cell.insert(kdb.CellInstArray(child.comp.kdb_cell.cell_index(), kdb.Trans(x, y),
                                                    kdb.Vector(px, 0), kdb.Vector(0, py), nx, ny))

    def bbox(self) -> kdb.Box:
        return self.comp.kdb_cell.bbox()
