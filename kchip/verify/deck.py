"""A simulation deck (the netlist stage's chip.spice) as a plain hierarchical netlist for layout and LVS.

The deck that ngspice runs carries what a netlist comparison must not read: model includes and libraries, the
shared device model cards of `Pdk.share_models` (subcircuits named `<pdk device>__k<N>` whose calls stand for the
PDK device), options, control blocks and subcircuits defined inside other subcircuits (ngspice scopes them).
`netlist_view` keeps the subcircuits and instances only:
  * `.include` of a file that defines subcircuits (the standard cells) is inlined, anything else is dropped;
  * shared model-card copies are dropped and every call to one is renamed to its PDK device;
  * nested subcircuit definitions are lifted to the top level (kchip's names are unique);
  * dot cards other than .subckt / .ends (and .global) are dropped.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..pdk import Pdk

__all__ = ["netlist_view", "subckts", "DeckError"]

_KEEP_DOT = (".subckt", ".ends", ".global")
PDK_PREFIX = "sky130_fd_pr__"      # subcircuits of the PDK's device library (models, shared card copies)



class DeckError(ValueError):
    """A deck kchip cannot read as a netlist (names the line)."""


def _lines(text: str) -> List[str]:
    out: List[str] = []
    for raw in text.splitlines():
        s = raw.strip()
        if s.startswith("+") and out:
            out[-1] += " " + s[1:].strip()
        else:
            out.append(s)
    return out


def netlist_view(text: str, pdk: Pdk, base: Optional[Path] = None, _seen: Optional[set] = None,
                 dropped: Optional[List[str]] = None) -> str:
    """The subcircuits and instances of a deck (see the module doc), as SPICE text. Elements that are not
    subcircuit calls nor ties (resistors of at most TIE_OHMS, 0 V sources) are ideal instruments, not layout devices (e.g. the
    output sample-and-hold's buffer, switch and hold capacitor): they are left out and, given a `dropped` list,
    listed there as '<subckt>: <line>'."""
    from ..cells.structure import is_tie
    devices = {pdk.device(k)["name"].lower() for k in pdk.data["devices"]}
    copy = re.compile(r"^(.*)__k\d+$", re.I)
    seen = _seen if _seen is not None else set()
    blocks: List[List[str]] = []          # finished top-level blocks (subckts), in order of their end
    top: List[str] = []                   # element lines outside any subckt
    stack: List[List[str]] = []
    in_control = False
    for ln in _lines(text):
        if not ln or ln.startswith("*"):
            continue
        low = ln.lower()
        tok = low.split()
        if in_control:
            in_control = tok[0] != ".endc"
            continue
        if tok[0] == ".control":
            in_control = True
            continue
        if tok[0] in (".include", ".inc"):
            path = Path(ln.split(None, 1)[1].strip().strip("'\""))
            if base is not None and not path.is_absolute():
                path = base / path
            if path.is_file() and path not in seen and ".subckt" in path.read_text(errors="replace").lower():
                seen.add(path)
                blocks.append([netlist_view(path.read_text(errors="replace"), pdk, path.parent, seen, dropped)])
            continue
        if tok[0] == ".subckt":
            stack.append([ln])
            continue
        if tok[0] == ".ends":
            if not stack:
                raise DeckError(f"deck: {ln!r} closes no .subckt")
            blk = stack.pop()
            blk.append(".ends " + blk[0].split()[1])
            name = blk[0].split()[1].lower()
            if not name.startswith(PDK_PREFIX):          # device models and their shared copies
                blocks.append(blk)
            continue
        if tok[0].startswith("."):
            if tok[0] in _KEEP_DOT:
                (stack[-1] if stack else top).append(ln)
            continue
        if stack and stack[-1][0].split()[1].lower().startswith(PDK_PREFIX):
            continue                                        # inside a device model: dropped with its block
        if tok[0][0] != "x" and not is_tie(tok):
            if dropped is not None:
                dropped.append(f"{stack[-1][0].split()[1] if stack else '(top)'}: {ln}")
            continue
        if tok[0][0] == "x":
            parts = ln.split()
            pos = [k for k, p in enumerate(parts) if "=" not in p]
            m = copy.match(parts[pos[-1]])
            if m and m.group(1).lower() in devices:
                parts[pos[-1]] = m.group(1)
                ln = " ".join(parts)
        (stack[-1] if stack else top).append(ln)
    if stack:
        raise DeckError(f"deck: .subckt {stack[-1][0].split()[1]} is never closed")
    return "\n".join("\n".join(b) for b in blocks) + ("\n" + "\n".join(top) if top else "") + "\n"


def subckts(view: str) -> Dict[str, Tuple[List[str], List[str]]]:
    """{name: (pins, body lines)} of a netlist view (names as written)."""
    out: Dict[str, Tuple[List[str], List[str]]] = {}
    cur = None
    for ln in view.splitlines():
        t = ln.split()
        if not t:
            continue
        if t[0].lower() == ".subckt":
            cur = t[1]
            out[cur] = ([p for p in t[2:] if "=" not in p], [])
        elif t[0].lower() == ".ends":
            cur = None
        elif cur is not None:
            out[cur][1].append(ln)
    return out
