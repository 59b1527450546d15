"""Hand-made DRC test patterns: for every rule of rules.yaml, one layout that meets it exactly (at the rule value)
and one that misses it by one grid step, plus the box where the miss is. Geometry in nanometres.

A shape on a derived layer is drawn on the layers its expression needs ("a & b": on a and b; "a - b", "a ! b",
"a | b": on a; "a @ b": on a, and b over it), recursively, so every pattern follows rules.yaml by itself.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import List, Tuple

import klayout.db as kdb

Box = Tuple[int, int, int, int]
G = 5                                   # manufacturing grid, nm


def _terms(expr: str) -> Tuple[List[str], List[str]]:
    """(layers to draw, layers that must stay off) for a shape on `expr`."""
    toks = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|[&|^@!-]", expr)
    pos, neg = [toks[0]], []
    for op, t in zip(toks[1::2], toks[2::2]):
        if op in "&@":
            pos.append(t)
        elif op in "-!":
            neg.append(t)
    return pos, neg


class Pattern:
    def __init__(self, pdk):
        self.pdk = pdk
        self.derived = pdk.derived_layers
        self.shapes: List[Tuple[str, Box]] = []

    def draw(self, layer: str, box: Box) -> None:
        if layer in self.derived:
            expr = self.derived[layer]
            if expr.startswith("holes("):
                raise ValueError("holes() patterns are drawn by hand")
            pos, _ = _terms(expr)
            for p in pos:
                self.draw(p, box)
        else:
            self.shapes.append((layer, box))

    def write(self, path: Path) -> Path:
        ly = kdb.Layout()
        ly.dbu = 0.001
        top = ly.create_cell("PATTERN")
        for layer, (x0, y0, x1, y1) in self.shapes:
            li = ly.layer(*self.pdk.layer(layer))
            top.shapes(li).insert(kdb.Box(x0, y0, x1, y1))
        ly.write(str(path))
        return path


def _nm(v: float) -> int:
    return int(round(v * 1000))


def _up(v: float) -> int:
    return int(math.ceil(v / G - 1e-9)) * G


def patterns(rule: dict, pdk) -> Tuple[Pattern, Pattern, Box]:
    """(passing pattern, failing pattern, box around the failing spot) for one rule."""
    kind = rule["kind"]
    v = _nm(float(rule.get("value", 0)))
    ok, bad = Pattern(pdk), Pattern(pdk)
    L = rule.get("layer")
    big = max(4 * v, 2000)
    if kind == "width":
        ok.draw(L, (0, 0, v, big))
        bad.draw(L, (0, 0, v - G, big))
        return ok, bad, (0, 0, v, big)
    if kind == "space":
        w = max(v, 2000)
        for p, gap in ((ok, v), (bad, v - G)):
            p.draw(L, (0, 0, w, big))
            p.draw(L, (w + gap, 0, 2 * w + gap, big))
        return ok, bad, (w - 10, 0, w + v + 10, big)
    if kind == "separation":
        w = max(v, 2000)
        for p, gap in ((ok, v), (bad, v - G)):
            p.draw(L, (0, 0, w, big))
            p.draw(rule["other"], (w + gap, 0, 2 * w + gap, big))
        return ok, bad, (w - 10, 0, w + v + 10, big)
    if kind in ("enclosure", "enclosure_adjacent"):
        inner = (10000, 10000, 10170, 10170) if rule["inner"] in ("licon", "mcon", "via", "diff_licon",
                                                                   "tap_licon", "poly_licon") else \
            (10000, 10000, 12000, 12000)
        x0, y0, x1, y1 = inner
        for p in (ok, bad):
            p.draw(rule["inner"], inner)
        if kind == "enclosure":
            ok.draw(L, (x0 - v, y0 - v, x1 + v, y1 + v))
            bad.draw(L, (x0 - v + G, y0 - v, x1 + v, y1 + v))
        else:
            ok.draw(L, (x0 - v, y0, x1 + v, y1))                  # both x sides at v, y sides at 0
            bad.draw(L, (x0 - v + G, y0 - v + G, x1 + v - G, y1 + v - G))
        return ok, bad, (x0 - v - 10, y0 - v - 10, x1 + v + 10, y1 + v + 10)
    if kind == "extension":
        across = rule["boundary_of"]
        for p, e in ((ok, v), (bad, v - G)):
            p.draw(across, (0, 0, 2000, 2000))
            p.draw(L, (-v, 500, 2000 + e, 1500))
            # the derived edge layer (e.g. gate = poly & diff) arises from the two shapes above
        return ok, bad, (1990, 490, 2000 + v + 10, 1510)
    if kind == "channel_width":
        pos, _ = _terms(pdk.derived_layers.get(L, L))       # e.g. gate_sc = gate & areaid_sc
        for p, w in ((ok, v), (bad, v - G)):
            p.draw("diff", (-500, 0, 650, w))
            p.draw("poly", (0, -500, 150, w + 500))
            for t in pos:
                if t != "gate":
                    p.draw(t, (-1000, -1000, 1500, w + 1000))
        return ok, bad, (-10, -10, 160, v + 10)
    if kind == "area":
        a = float(rule["value"]) * 1e6
        w = _up(math.sqrt(a) * 1.5)
        h_ok = _up(a / w)
        ok.draw(L, (0, 0, w, h_ok))
        bad.draw(L, (0, 0, w, h_ok - (G if (h_ok - G) * w < a else 2 * G)))
        return ok, bad, (0, 0, w, h_ok)
    if kind == "exact_size":
        v2 = _nm(float(rule.get("value2", rule["value"])))
        ok.draw(L, (0, 0, v, v2))
        bad.draw(L, (0, 0, v + G, v2))
        _add_context(rule, ok, bad, (0, 0, v + G, v2))
        return ok, bad, (0, 0, v + G, v2)
    if kind == "empty":
        expr = pdk.derived_layers.get(L, L)
        pos, neg = _terms(expr)
        bad.draw(L, (0, 0, 1000, 1000))
        if neg:
            for t in pos:
                ok.draw(t, (0, 0, 1000, 1000))
            ok.draw(neg[0], (-200, -200, 1200, 1200))
        else:
            for k, t in enumerate(pos):
                ok.draw(t, (k * 3000, 0, k * 3000 + 1000, 1000))
        return ok, bad, (0, 0, 1000, 1000)
    if kind == "covered":
        ok.draw(L, (0, 0, 1000, 1000))
        ok.draw(rule["by"], (-100, -100, 1100, 1100))
        bad.draw(L, (0, 0, 1000, 1000))
        bad.draw(rule["by"], (-100, -100, 500, 1100))
        return ok, bad, (500, 0, 1000, 1000)
    if kind == "straddle":
        ok.draw(rule["other"], (0, 0, 5000, 5000))
        ok.draw(L, (1000, 1000, 2000, 2000))
        bad.draw(rule["other"], (0, 0, 5000, 5000))
        bad.draw(L, (4500, 1000, 5500, 2000))
        return ok, bad, (4500, 1000, 5500, 2000)
    if kind == "grid":
        ok.draw("met1", (0, 0, 1000, 1000))
        bad.draw("met1", (0, 0, 1002, 1000))
        return ok, bad, (990, -10, 1010, 1010)
    raise ValueError(f"no pattern for kind {kind!r}")


def _add_context(rule, ok, bad, box):
    """Slot licons are licons on a precision resistor: give the pattern its poly + polyres."""
    if rule["layer"] == "licon_slot":
        x0, y0, x1, y1 = box
        for p in (ok, bad):
            p.draw("poly", (x0 - 200, y0 - 200, x1 + 200, y1 + 200))
            p.draw("polyres", (x0 - 200, y1 + 300, x1 + 200, y1 + 1000))


def hand_patterns(name: str, pdk):
    """Rules over holes(nwell), drawn by hand: (passing, failing, box)."""
    ok, bad = Pattern(pdk), Pattern(pdk)
    if name == "nwell.6":          # dnwell encloses the ring's hole by 1.03 um
        for p, e in ((ok, 1030), (bad, 1025)):
            hole = (5000, 5000, 9000, 9000)
            p.draw("dnwell", (hole[0] - e, hole[1] - 1030, hole[2] + 1030, hole[3] + 1030))
            _ring(p, hole, 1430)
        return ok, bad, (3900, 3900, 5100, 10100)
    if name == "nwell.5":          # nwell (ring filled) encloses dnwell by 0.4 um
        for p, e in ((ok, 400), (bad, 395)):
            hole = (5000, 5000, 9000, 9000)
            p.draw("dnwell", (3970, 3970, 10030, 10030))
            p.draw("nwell", (3970 - e, 3970 - 400, 10030 + 400, 10030 + 400))
        return ok, bad, (3500, 3500, 4000, 10500)
    raise ValueError(name)


def _ring(p, hole, w):
    x0, y0, x1, y1 = hole
    for b in ((x0 - w, y0 - w, x1 + w, y0), (x0 - w, y1, x1 + w, y1 + w), (x0 - w, y0, x0, y1), (x1, y0, x1 + w, y1)):
        p.draw("nwell", b)
