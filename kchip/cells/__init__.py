"""Cell library (kchip.cells): subcircuits, characterization tables, L2 surrogate."""
