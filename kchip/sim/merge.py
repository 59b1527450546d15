"""The simulation copy of a transistor deck: identical parallel edge cells as one scaled instance
(`merge_parallel_cells`), every cell pin on a net of its own behind a 0 V source (`isolate_cell_pins`).

Two edge cells of a transistor-level chip whose instance lines name the same nets (s, d, enable, every code pin,
bias and supply) and the same subcircuit are the same circuit between the same nodes: with nominal models (no
per-instance mismatch draw) every internal node of one equals the corresponding node of the other at all times,
so k of them carry exactly k times the current of one. `merge_parallel_cells` keeps the first of each such group
and points it at a scaled copy of the cell, `<cell>__x<k>`: every transistor's multiplier (`m`, and `mult`) times
k, every other element (the poly resistors) repeated k times between the same nets. ngspice's own instance
multiplier on a subcircuit call (`X... m=3`) was not usable: under `ngbehavior=hsa` it left some devices unscaled
(a tanh_lin cell's current was 0.8x off at mid transition; a plain `m=` on a parameterless subcircuit is even a
parse error there). `tests/test_sim_merge.py` checks the scaled copy against k separate cells in ngspice.
The deck written by `kchip netlist` (what layout and LVS check against) keeps every cell; the simulator gets the
merged copy. The twomoon fixture's 575 tanh_lin cells are 226 distinct instances (2.5x fewer transistors).
"""
from __future__ import annotations

import re
from typing import Dict, List, Tuple

_CELL = re.compile(r"^X_p\d+_e\d+_n\d+_n\d+\s")
_MM = re.compile(r"^\s*\.(lib|include)\b[^\n]*_mm(?![a-z0-9])", re.I | re.M)


def _subckt_body(lines: List[str], name: str) -> Tuple[str, List[str]]:
    start = next((i for i, ln in enumerate(lines) if ln.split()[:2] == [".subckt", name]), None)
    if start is None:
        raise ValueError(f"merge_parallel_cells: subcircuit {name!r} is not defined in the deck")
    end = next(i for i in range(start, len(lines)) if lines[i].split()[:2] == [".ends", name])
    return lines[start], lines[start + 1:end]


def _scaled(header: str, body: List[str], name: str, k: int) -> List[str]:
    """`name` scaled by k: transistors (`X... <...fet...> ... m= mult=`) with m and mult times k, every other
    element repeated k times."""
    out = [header.replace(f".subckt {name} ", f".subckt {name}__x{k} ", 1),
           f"* {name} scaled by {k} (kchip.sim.merge): transistor multipliers x{k}, other elements repeated"]
    for ln in body:
        tok = ln.split()
        if not tok or tok[0].startswith("*"):
            out.append(ln)
            continue
        if tok[0].startswith("+") or tok[0][0].upper() not in "XRC":
            raise ValueError(f"merge_parallel_cells: cannot scale line {ln!r} of {name} (only X/R/C elements)")
        first_par = next((i for i, t in enumerate(tok) if "=" in t), len(tok))
        model = tok[first_par - 1] if tok[0][0].upper() == "X" else ""
        if "fet" in model:
            par = dict(t.split("=", 1) for t in tok[first_par:])
            par["m"] = str(int(par.get("m", 1)) * k)
            par["mult"] = str(int(par.get("mult", 1)) * k)
            out.append(" ".join(tok[:first_par] + [f"{a}={b}" for a, b in par.items()]))
        else:
            out += [" ".join([f"{tok[0]}__r{j}"] + tok[1:]) for j in range(k)]
    return out + [f".ends {name}__x{k}"]


def core_lines(deck: str, core: str = "kchip_core"):
    """(line, tokens, whether it is a plain edge-cell instance line of subcircuit `core`) for each deck line; a
    plain instance line has no parameters."""
    inside = False
    for ln in deck.splitlines():
        tok = ln.split()
        if tok[:2] == [".subckt", core]:
            inside = True
        elif inside and tok[:2] == [".ends", core]:
            inside = False
        yield ln, tok, bool(inside and _CELL.match(ln) and not any("=" in t for t in tok[1:]))


def merge_parallel_cells(deck: str, core: str = "kchip_core") -> Tuple[str, Dict]:
    """(deck with each group of identical parallel edge-cell instances in subcircuit `core` replaced by one
    instance of the cell scaled by the group size, stats). Refuses a deck that loads a Monte Carlo mismatch
    corner (each copy draws its own mismatch there)."""
    if _MM.search(deck) or re.search(r"\bMC_MM_SWITCH\s*=\s*1", deck):
        raise ValueError("merge_parallel_cells: the deck loads a mismatch (_mm) corner; identical cells differ "
                         "there, so they must not be merged")
    lines = deck.splitlines()
    out: List = []
    groups: Dict[Tuple[str, ...], List[str]] = {}
    n_cells = 0
    for ln, tok, cell in core_lines(deck, core):
        if cell:
            n_cells += 1
            key = tuple(tok[1:])
            if key not in groups:
                groups[key] = []
                out.append(key)
            groups[key].append(tok[0])
            continue
        out.append(ln)
    need = sorted({(key[-1], len(v)) for key, v in groups.items() if len(v) > 1})
    res = []
    for o in out:
        if isinstance(o, tuple):
            names = groups[o]
            if len(names) > 1:
                res.append(f"* {len(names)} identical parallel cells as one: {' '.join(names)}")
                res.append(f"{names[0]} {' '.join(o[:-1])} {o[-1]}__x{len(names)}")
            else:
                res.append(f"{names[0]} {' '.join(o)}")
        else:
            if isinstance(o, str) and o.split()[:2] == [".subckt", core] and need:
                for cell, k in need:            # the scaled cells, defined before the core that calls them
                    res += _scaled(*_subckt_body(lines, cell), cell, k)
            res.append(o)
    stats = {"cells": n_cells, "instances": len(groups), "merged_groups": sum(len(v) > 1 for v in groups.values()),
             "scaled_cells": [f"{c}__x{k}" for c, k in need]}
    return "\n".join(res) + ("\n" if deck.endswith("\n") else ""), stats


def isolate_cell_pins(deck: str, core: str = "kchip_core") -> Tuple[str, Dict]:
    """(deck in which every pin of every edge-cell instance of `core` sits on a net of its own, `<inst>_p<k>`,
    joined to the net it had by a 0 V source, stats). The same circuit: a 0 V source is a wire.
    For ngspice's sparse-matrix ordering: a net shared by every cell (vdd, the bias lines, the code levels) has
    one matrix entry per transistor terminal on it, thousands on the twomoon chip, and the pivot search walks such
    columns at every row exchange; behind the sources each such column holds one entry per instance. Measured
    on a 35-cell twomoon sub-chip (`.op`, direct Newton from kchip.sim.opinit's pulls): reorder 7.9 -> 0.46 s,
    analysis 11.7 -> 2.0 s, the same 49 iterations (docs/netlist.md). Instance lines with parameters and ground
    pins are left as they are."""
    out: List[str] = []
    n_inst, n_src = 0, 0
    for ln, tok, cell in core_lines(deck, core):
        if cell:
            name, nets = tok[0], tok[1:-1]
            new = []
            for k, net in enumerate(nets):
                if net == "0":
                    new.append(net)
                    continue
                out.append(f"V{name}_p{k} {name}_p{k} {net} 0")
                new.append(f"{name}_p{k}")
                n_src += 1
            out.append(" ".join([name, *new, tok[-1]]))
            n_inst += 1
            continue
        out.append(ln)
    return "\n".join(out) + ("\n" if deck.endswith("\n") else ""), {"isolated_instances": n_inst,
                                                                     "isolating_sources": n_src}
