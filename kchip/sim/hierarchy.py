"""The hierarchy of a SPICE deck as ngspice flattens it: subcircuit definitions, instance calls, the path from a
testbench down to a subcircuit, flat net names, and operating-point node voltages by flat name. Used by
`kchip.sim.opinit` (initial states) and `kchip.estimate.measure` (the pinned-state supply measurement)."""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple


def subckts(text: str) -> Dict[str, Tuple[List[str], List[List[str]]]]:
    """{name: (pins, instance lines (tokens) in its body)} of every `.subckt` of a deck."""
    out: Dict[str, Tuple[List[str], List[List[str]]]] = {}
    stack: List[str] = []                   # kchip_core defines its capacitor subcircuits inside its body
    for ln in text.splitlines():
        tok = ln.split()
        if not tok:
            continue
        low = tok[0].lower()
        if low == ".subckt":
            stack.append(tok[1])
            out[tok[1]] = ([t for t in tok[2:] if "=" not in t], [])
        elif low == ".ends":
            stack.pop()
        elif stack and low.startswith("x"):
            out[stack[-1]][1].append(tok)
    return out


def instance_call(tok: List[str]) -> Tuple[List[str], str]:
    """(nets, subcircuit) of an instance line."""
    plain = [t for t in tok[1:] if "=" not in t]
    return plain[:-1], plain[-1]


def core_path(tb: str, subs: Dict, core: str) -> List[Tuple[str, List[str], List[str]]]:
    """[(instance name, its nets in the caller, the callee's pins)] from the top of the testbench to `core`."""
    def search(lines: List[List[str]]) -> Optional[List]:
        for tok in lines:
            nets, name = instance_call(tok)
            if name not in subs:
                continue
            here = (tok[0], nets, subs[name][0])
            if name == core:
                return [here]
            below = search(subs[name][1])
            if below is not None:
                return [here] + below
        return None
    top = [ln.split() for ln in tb.splitlines() if ln[:1] in "xX"]
    path = search(top)
    if path is None:
        raise ValueError(f"opinit: the testbench does not instantiate subcircuit {core!r}")
    return path


def flat_name(path: List[Tuple[str, List[str], List[str]]], net: str) -> Optional[str]:
    """ngspice's flat name of net `net` of the innermost subcircuit of `path` (None: ground)."""
    for depth in range(len(path) - 1, -1, -1):
        if net == "0":
            return None
        _, nets, pins = path[depth]
        if net not in pins:
            return ".".join([p[0] for p in path[:depth + 1]] + [net]).lower()
        net = nets[pins.index(net)]
    return None if net == "0" else net.lower()


def node_voltages(plot, prefix: str = "") -> Dict[str, float]:
    """{node: V} of an operating-point plot: node voltages only (no branch currents, no device-internal nodes),
    names without `v(...)` and without `prefix`."""
    out = {}
    for k, a in plot.vectors.items():
        m = re.fullmatch(r"v\((.+)\)", k)
        name = m.group(1) if m else k
        if k.startswith("i(") or "#" in name or name.startswith("m.") or not name.startswith(prefix):
            continue
        out[name[len(prefix):]] = float(a[0])
    return out
