"""Deterministic GDS output (no timestamps, no metadata) and a KLayout layer-properties file."""
from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import escape

import klayout.db as kdb

from ..pdk import Pdk

__all__ = ["write_gds", "write_lyp"]


def write_gds(comp, path: Path) -> Path:
    """Write a gdsfactory Component (and its hierarchy) to `path`: same inputs, same bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = kdb.SaveLayoutOptions()
    opts.write_context_info = False
    opts.gds2_write_timestamps = False
    opts.gds2_write_cell_properties = False
    opts.gds2_write_file_properties = False
    opts.format = "GDS2"
    cell = comp.kdb_cell
    opts.clear_cells()
    opts.select_cell(cell.cell_index())          # the cell and everything below it, nothing else of the build
    tmp = path.with_suffix(f".tmp{os.getpid()}.gds")
    cell.layout().write(str(tmp), opts)          # KLayout's writer itself: no timestamp, no metadata
    tmp.replace(path)
    return path


def write_lyp(pdk: Pdk, path: Path) -> Path:
    """KLayout layer-properties file: every layer of layers.yaml with its name and a colour."""
    colours = pdk.layer_display
    rows = []
    for name, purposes in pdk.layers.items():
        for purpose, (l, d) in purposes.items():
            col = colours.get(name, "#808080")
            fill = "I5" if purpose == "drawing" else "I1"
            rows.append(f" <properties>\n  <frame-color>{col}</frame-color>\n  <fill-color>{col}</fill-color>\n"
                        f"  <dither-pattern>{fill}</dither-pattern>\n  <visible>true</visible>\n"
                        f"  <name>{escape(name)}.{purpose} {l}/{d}</name>\n  <source>{l}/{d}@1</source>\n"
                        f" </properties>")
    path = Path(path)
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n<layer-properties>\n' + "\n".join(rows)
                    + "\n</layer-properties>\n")
    return path
