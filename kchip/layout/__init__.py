"""Physical design (kchip.layout): device generators, cell layouts, GDS output.

`layout_circuit(circuit, pdk)` lays out one structured cell (kchip.cells.structure.Circuit); `write_gds` writes
it deterministically. Layers and rule values come only from pdk/<name>/ through kchip.pdk.
"""
from .rules import LayoutError, LayoutRules
from .canvas import Library
from .cell import CellLayout, layout_circuit
from .gds import write_gds, write_lyp

__all__ = ["LayoutError", "LayoutRules", "Library", "CellLayout", "layout_circuit", "write_gds", "write_lyp"]
