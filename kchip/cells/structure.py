"""Cells as data: the structured form of a cell subcircuit (devices, nets, pins, matching hints).

One `Circuit` per cell: the devices (instance name, PDK device key, terminal nets in the PDK's pin order,
W, L, multiplier), the pins, the net merges that stand for non-physical ties, and the groups of devices that
must match. The layout (kchip.layout) is generated from it and LVS (kchip.verify.lvs) compares the extracted
layout against the same subcircuit text.

Today the cell generators of kchip.cells write SPICE text (`Subckt.text`), so `Circuit.from_subckt` reads that
text back into devices; `Circuit.device_lines()` renders the device lines again and a test checks that they are
the generator's own lines, so that the structured object and the simulated subcircuit cannot drift apart.

Non-physical elements: a resistor of at most `TIE_OHMS` between two nets (a 1 ohm tie; kchip's own cells no
longer hold any) is a net merge: the layout draws one net, LVS reads the tie as a short, and the merge is listed
in `Circuit.merges`. Any other element that is not a PDK device is refused with its line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..pdk import Pdk

__all__ = ["Device", "Circuit", "StructureError", "TIE_OHMS", "parse_value", "is_tie"]

TIE_OHMS = 1.0     # a resistor of at most this value inside a cell is a net merge (a tie), not a resistor

_SUFFIX = {"t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}


class StructureError(ValueError):
    """A cell's SPICE text holds something kchip cannot lay out (names the line)."""


def parse_value(tok: str) -> float:
    """A SPICE number with an optional scale suffix (1k, 2.5u, 3meg)."""
    m = re.fullmatch(r"([-+]?[0-9.]+(?:[eE][-+]?\d+)?)(meg|[tgkmunpf])?[a-zA-Z]*", tok.strip().lower())
    if not m:
        raise StructureError(f"not a SPICE number: {tok!r}")
    return float(m.group(1)) * _SUFFIX.get(m.group(2) or "", 1.0)


def is_tie(tokens: Sequence[str]) -> bool:
    """A SPICE element (split into tokens) that only joins two nets: a resistor of at most TIE_OHMS or a 0 V
    source with a plain value (a 'dc' / 'pulse' / ... source is a stimulus, not a tie)."""
    if len(tokens) < 4 or tokens[0][:1].upper() not in "RV":
        return False
    try:
        v = parse_value(tokens[3])
    except StructureError:
        return False
    return abs(v) <= TIE_OHMS if tokens[0][:1].upper() == "R" else v == 0.0


@dataclass(frozen=True)
class Device:
    name: str                 # instance name without the leading X
    kind: str                 # pdk.yaml device key: nfet, nfet_lvt, pfet, pfet_lvt, mimcap
    model: str                # SPICE model / subcircuit name of the PDK device
    nets: Tuple[str, ...]     # terminal nets as written, in the PDK device's pin order (d g s b; c0 c1)
    w: float                  # um
    l: float                  # um
    m: int = 1                # parallel copies
    pins: Tuple[str, ...] = ("d", "g", "s", "b")   # the PDK device's pin names (pdk.yaml devices.<kind>.pins)

    @property
    def is_mos(self) -> bool:
        return self.kind.startswith(("nfet", "pfet"))

    @property
    def polarity(self) -> str:
        return "p" if self.kind.startswith("pfet") else "n"

    def terminal(self, pin: str) -> str:
        return self.nets[self.pins.index(pin)]

    def line(self) -> str:
        """The SPICE line of the device, as the cell generators write it."""
        mm = f" m={self.m} mult={self.m}" if self.m != 1 else ""
        if self.kind == "mimcap":
            return f"X{self.name} {' '.join(self.nets)} {self.model} w={self.w:.3f} l={self.l:.3f}{mm}"
        return f"X{self.name} {' '.join(self.nets)} {self.model} w={self.w:g} l={self.l:g}{mm}"


@dataclass
class Circuit:
    name: str
    pins: List[str]
    devices: List[Device]
    merges: Dict[str, str] = field(default_factory=dict)     # merged net -> surviving net (ties)
    ties: List[str] = field(default_factory=list)            # the tie lines that became merges
    match_groups: List[List[str]] = field(default_factory=list)

    @property
    def nets(self) -> List[str]:
        seen: Dict[str, None] = {}
        for p in self.pins:
            seen.setdefault(self.net(p))
        for d in self.devices:
            for n in d.nets:
                seen.setdefault(self.net(n))
        return list(seen)

    def net(self, name: str) -> str:
        """The surviving net of a (possibly merged) net name."""
        while name in self.merges:
            name = self.merges[name]
        return name

    def device_lines(self) -> List[str]:
        return [d.line() for d in self.devices]

    @property
    def gate_area_um2(self) -> float:
        return sum(d.w * d.l * d.m for d in self.devices if d.is_mos)

    @property
    def copies(self) -> int:
        return sum(d.m for d in self.devices)

    @classmethod
    def from_subckt(cls, sub, pdk: Pdk) -> "Circuit":
        """Read a `kchip.cells.library.Subckt` (its first .subckt block) into a Circuit."""
        return cls.from_text(sub.text, pdk, name=sub.name)

    @classmethod
    def from_text(cls, text: str, pdk: Pdk, name: Optional[str] = None) -> "Circuit":
        models = {pdk.device(k)["name"]: k for k in pdk.data["devices"]}
        lines = _join_continuations(text)
        head = None
        body: List[str] = []
        for ln in lines:
            t = ln.split()
            if not t or t[0].startswith("*"):
                continue
            if t[0].lower() == ".subckt":
                if head is None and (name is None or t[1] == name):
                    head = t
                    continue
            if head is not None:
                if t[0].lower() == ".ends":
                    break
                body.append(ln)
        if head is None:
            raise StructureError(f"no .subckt {name or ''} in the cell text")
        pins = [p for p in head[2:] if "=" not in p]
        devices: List[Device] = []
        merges: Dict[str, str] = {}
        ties: List[str] = []
        for ln in body:
            t = ln.split()
            c = t[0][0].upper()
            if is_tie(t):
                a, b = t[1], t[2]
                keep, drop = (a, b) if (a in pins or b not in pins) else (b, a)
                merges[drop] = keep
                ties.append(ln)
                continue
            if c != "X":
                raise StructureError(f"cell {head[1]}: element {ln!r} is not a PDK device or a tie "
                                     f"(<= {TIE_OHMS:g} ohm resistor); kchip cannot lay it out")
            params = {k.lower(): v for k, v in (p.split("=", 1) for p in t[1:] if "=" in p)}
            pos = [p for p in t[1:] if "=" not in p]
            model = pos[-1]
            if model not in models:
                raise StructureError(f"cell {head[1]}: instance {t[0]} of {model!r}: not a device of pdk.yaml "
                                     f"(known: {', '.join(models)})")
            kind = models[model]
            nets = tuple(pos[:-1])
            want = len(pdk.device(kind)["pins"])
            if len(nets) != want:
                raise StructureError(f"cell {head[1]}: instance {t[0]}: {len(nets)} terminals, {model} has {want}")
            try:
                w, l = parse_value(params["w"]), parse_value(params["l"])
            except KeyError as e:
                raise StructureError(f"cell {head[1]}: instance {t[0]}: missing {e.args[0]}=") from None
            m = int(round(parse_value(params.get("m", "1"))))
            devices.append(Device(t[0][1:], kind, model, nets, w, l, m, tuple(pdk.device(kind)["pins"])))
        circ = cls(head[1], pins, devices, merges, ties)
        circ.match_groups = _match_groups(circ)
        return circ

    def terminal_net(self, d: Device, pin: str) -> str:
        """The net (after the tie merges) on one terminal of a device."""
        return self.net(d.terminal(pin))


def _join_continuations(text: str) -> List[str]:
    out: List[str] = []
    for ln in text.splitlines():
        s = ln.strip()
        if s.startswith("+") and out:
            out[-1] += " " + s[1:]
        else:
            out.append(s)
    return out


def _match_groups(circ: "Circuit") -> List[List[str]]:
    """Devices that must match: same model and W/L with a shared gate (mirrors) or a shared source (pairs)."""
    groups: Dict[tuple, List[str]] = {}
    for d in circ.devices:
        if not d.is_mos:
            continue
        for role, net in (("g", circ.terminal_net(d, "g")), ("s", circ.terminal_net(d, "s"))):
            groups.setdefault((d.model, d.w, d.l, role, net), []).append(d.name)
    out, seen = [], set()
    for key in sorted(groups, key=str):
        names = groups[key]
        if len(names) > 1 and tuple(names) not in seen:
            seen.add(tuple(names))
            out.append(names)
    return out
