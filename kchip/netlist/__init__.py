"""`kchip.netlist`: the chip as a SPICE deck, from the ChipSpec.

`build_netlist(spec, level)` returns the text of `chip.spice`: a header naming the ChipSpec it was built from
(its SHA-256, node/period/edge counts, port list), the cell subcircuits and the `kchip_core` subcircuit.
Levels: `ideal` (behavioural sources, ideal switches: `ideal.py`). The testbench around it (input drivers,
control, supplies, `.save`) is written per run by `kchip.sim.simulate`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict

from kchip.quantize.chipspec import ChipSpec

from .ideal import core_ports, ideal_netlist

LEVELS = ("ideal",)
HEADER_TAG = "* kchip-netlist "


def spec_digest(spec: ChipSpec) -> str:
    return hashlib.sha256(spec.to_json().encode()).hexdigest()


def build_netlist(spec: ChipSpec, level: str = "ideal") -> str:
    if level not in LEVELS:
        raise ValueError(f"level: {level!r} is not available; available levels: {', '.join(LEVELS)} "
                         f"(transistor level: not implemented yet)")
    meta = {"level": level, "spec": spec.name, "spec_sha256": spec_digest(spec), "nodes": spec.num_nodes,
            "periods": len(spec.periods), "edges": len(spec.edges), "ports": core_ports(spec)}
    body = ideal_netlist(spec)
    return (f"* kchip {level}-level netlist of {spec.name}\n{HEADER_TAG}{json.dumps(meta)}\n"
            f"* SW voltage v <-> V_cm + V_u v; SW current i <-> I_u i; SW time t <-> tau t\n{body}")


def read_header(text: str, where: str = "deck") -> Dict:
    for line in text.splitlines()[:5]:
        if line.startswith(HEADER_TAG):
            return json.loads(line[len(HEADER_TAG):])
    raise ValueError(f"{where}: not a kchip netlist (no '{HEADER_TAG.strip()}' header line)")


def write_netlist(spec_path, out_path, level: str = "ideal") -> Path:
    spec = ChipSpec.load(spec_path)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_netlist(spec, level))
    return out
