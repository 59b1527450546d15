"""`kchip drc`: the design rules of pdk/<name>/rules.yaml evaluated on a GDS with KLayout's engine.

Every layer is read hierarchically (klayout.db deep regions), the derived layers of rules.yaml are built from
them, and each rule becomes one KLayout check (see the kinds in rules.yaml). The result is a `DrcReport`:
per rule the violation count and the first locations (um), plus a KLayout marker database (.lyrdb) that opens
over the GDS (Tools > Marker Browser).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import klayout.db as kdb
import klayout.rdb as krdb

from ..fsio import write_json
from ..pdk import Pdk

__all__ = ["DrcReport", "RuleResult", "run_drc", "DrcError"]

MAX_LOCATIONS = 20


class DrcError(ValueError):
    """A bad DRC input (file, top cell, rule table)."""


@dataclass
class RuleResult:
    name: str
    kind: str
    value: Optional[float]
    doc: str
    count: int
    locations: List[List[float]] = field(default_factory=list)    # [x0, y0, x1, y1] um, first MAX_LOCATIONS

    def line(self) -> str:
        v = "" if self.value is None else f" {self.value:g}"
        at = "".join(f" ({l[0]:.3f}, {l[1]:.3f})" for l in self.locations[:3])
        more = " ..." if self.count > 3 else ""
        return f"{self.name} [{self.kind}{v}] {self.doc}: {self.count} at{at}{more}"


@dataclass
class DrcReport:
    gds: str
    top: str
    results: List[RuleResult]
    seconds: float

    @property
    def violations(self) -> int:
        return sum(r.count for r in self.results)

    @property
    def clean(self) -> bool:
        return self.violations == 0

    def failing(self) -> List[RuleResult]:
        return [r for r in self.results if r.count]

    def to_dict(self) -> dict:
        return dict(gds=self.gds, top=self.top, clean=self.clean, violations=self.violations,
                    seconds=round(self.seconds, 3), rules_checked=len(self.results),
                    failing={r.name: dict(kind=r.kind, value=r.value, doc=r.doc, count=r.count,
                                          locations=r.locations) for r in self.failing()})

    def summary(self) -> str:
        head = f"DRC {self.top} ({self.gds}): {len(self.results)} rules, {self.violations} violations"
        return "\n".join([head] + ["  " + r.line() for r in self.failing()])


class _Layers:
    """Drawn and derived layers of one layout, as deep regions (built on first use)."""

    def __init__(self, layout: kdb.Layout, top: kdb.Cell, pdk: Pdk):
        self.layout, self.top, self.pdk = layout, top, pdk
        self.dss = kdb.DeepShapeStore()
        self.cache: Dict[str, kdb.Region] = {}
        self.derived = pdk.derived_layers

    def __getitem__(self, name: str) -> kdb.Region:
        if name not in self.cache:
            if name in self.derived:
                self.cache[name] = self._expr(self.derived[name], name)
            elif name in self.pdk.layers:
                l, d = self.pdk.layer(name)
                li = self.layout.find_layer(l, d)
                self.cache[name] = kdb.Region() if li is None else \
                    kdb.Region(self.top.begin_shapes_rec(li), self.dss)
            else:
                raise DrcError(f"rules.yaml: unknown layer {name!r} (not in layers.yaml nor derived)")
        return self.cache[name]

    def _expr(self, text: str, name: str) -> kdb.Region:
        m = re.fullmatch(r"\s*holes\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", text)
        if m:
            return self[m.group(1)].holes()
        toks = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|[&|^@!-]", text)
        ops = "&|-^@!"
        if not toks or len(toks) % 2 == 0 or any((t in ops) != (k % 2 == 1) for k, t in enumerate(toks)):
            raise DrcError(f"rules.yaml: derived.{name}: {text!r}: expected 'a OP b OP c ...' with OP in {ops}")
        acc = self[toks[0]].dup()
        for op, operand in zip(toks[1::2], toks[2::2]):
            r = self[operand]
            acc = {"&": acc.__and__, "|": acc.__or__, "-": acc.__sub__, "^": acc.__xor__,
                   "@": acc.interacting, "!": acc.not_interacting}[op](r)
        return acc

    def all_drawn(self) -> List[kdb.Region]:
        return [self[n] for n in self.pdk.layers if "drawing" in self.pdk.layers[n]]


def _nm(v: float, dbu: float) -> int:
    return int(round(v / dbu))


def _locs(obj, dbu: float) -> List[List[float]]:
    out = []
    for k, s in enumerate(obj.each()):
        if k >= MAX_LOCATIONS:
            break
        b = s.bbox()
        out.append([round(b.left * dbu, 4), round(b.bottom * dbu, 4), round(b.right * dbu, 4), round(b.top * dbu, 4)])
    return out


def _nonzero(ep: kdb.EdgePairs) -> kdb.EdgePairs:
    """Edge pairs at a distance above zero (touching shapes are not a spacing violation)."""
    return ep.with_distance(1, None, False)


def _adjacent(outer: kdb.Region, inner: kdb.Region, d: int) -> kdb.Region:
    """inner shapes not enclosed by outer by d on both x sides nor on both y sides."""
    raw = inner.dup()
    raw.merged_semantics = False
    ok_x = raw.sized(d, 0, 2).inside(outer)
    ok_y = raw.sized(0, d, 2).inside(outer)
    return inner.not_interacting(ok_x + ok_y)


def _check(rule: dict, L: _Layers, dbu: float):
    kind = rule["kind"]
    d = _nm(float(rule.get("value", 0.0)), dbu)
    lay = lambda key: L[rule[key]]
    proj = kdb.Metrics.Projection
    if kind == "width":
        return lay("layer").width_check(d)
    if kind == "space":
        return lay("layer").space_check(d)
    if kind == "separation":
        return _nonzero(lay("layer").separation_check(lay("other"), d))
    if kind == "enclosure":
        outer, inner = lay("layer"), lay("inner")
        return outer.enclosing_check(inner, d), inner - outer
    if kind == "enclosure_adjacent":
        return _adjacent(lay("layer"), lay("inner"), d)
    if kind == "extension":
        edges = L[rule["edges_of"]].edges() & L[rule["boundary_of"]].edges()
        return _nonzero(edges.enclosed_check(lay("layer").edges(), d, False, proj))
    if kind == "channel_width":
        edges = lay("layer").edges() & L[rule["boundary_of"]].edges()
        return edges.with_length(0, d, False)
    if kind == "area":
        a = int(round(float(rule["value"]) / dbu / dbu))
        return lay("layer").with_area(0, a, False)
    if kind == "exact_size":
        r = lay("layer")
        if "value2" not in rule:
            return r.non_rectangles() + r.with_bbox_width(d, True) + r.with_bbox_height(d, True)
        d2 = _nm(float(rule["value2"]), dbu)
        upright = r.with_bbox_width(d, False).with_bbox_height(d2, False)
        flat = r.with_bbox_width(d2, False).with_bbox_height(d, False)
        return r.non_rectangles() + (r - upright - flat)
    if kind == "empty":
        return lay("layer")
    if kind == "covered":
        return lay("layer") - lay("by")
    if kind == "straddle":
        r, o = lay("layer"), lay("other")
        return r.overlapping(o).not_inside(o)
    if kind == "grid":
        eps = kdb.EdgePairs()
        for r in L.all_drawn():
            eps += r.grid_check(d, d)
        return eps
    raise DrcError(f"rules.yaml: rule {rule['name']}: unknown kind {kind!r}")


def _count(res) -> int:
    parts = res if isinstance(res, tuple) else (res,)
    return sum(p.count() for p in parts)


def run_drc(gds: Path, pdk: Pdk, top: Optional[str] = None, rules: Optional[Sequence[str]] = None,
            lyrdb: Optional[Path] = None, json_out: Optional[Path] = None, log=None) -> DrcReport:
    """Check `gds` (its top cell, or `top`) against rules.yaml (all rules, or those named in `rules`). `log`: a
    callable that gets a progress line at most every 10 s (rules done, violations so far)."""
    t0 = time.perf_counter()
    gds = Path(gds)
    if not gds.is_file():
        raise DrcError(f"{gds}: no such GDS file")
    layout = kdb.Layout()
    try:
        layout.read(str(gds))
    except Exception as e:   # klayout raises RuntimeError with its own message
        raise DrcError(f"{gds}: not a readable GDS/OASIS file: {e}") from None
    cell = _top_cell(layout, top, gds)
    L = _Layers(layout, cell, pdk)
    table = pdk.rules
    if rules is not None:
        names = {r["name"] for r in table}
        bad = [r for r in rules if r not in names]
        if bad:
            raise DrcError(f"unknown rule(s) {bad}; rules.yaml has {len(names)} rules")
        table = [r for r in table if r["name"] in set(rules)]
    dbu = layout.dbu
    rdb = krdb.ReportDatabase("kchip DRC") if lyrdb else None
    rcell = rdb.create_cell(cell.name) if rdb else None
    results = []
    last = time.perf_counter()
    for k, rule in enumerate(table):
        if log and time.perf_counter() - last > 10:
            last = time.perf_counter()
            log(f"drc: {k}/{len(table)} rules checked, {sum(r.count for r in results)} violations so far "
                f"({last - t0:.0f} s)")
        res = _check(rule, L, dbu)
        parts = res if isinstance(res, tuple) else (res,)
        n = _count(res)
        locs: List[List[float]] = []
        for p in parts:
            locs += _locs(p.dup().flatten() if hasattr(p, "flatten") else p, dbu)
        value = float(rule["value"]) if "value" in rule else None
        results.append(RuleResult(rule["name"], rule["kind"], value, str(rule.get("doc", "")), n,
                                  locs[:MAX_LOCATIONS]))
        if rdb is not None and n:
            cat = rdb.create_category(rule["name"])
            cat.description = f"{rule['name']}: {rule.get('doc', '')} ({rule['kind']} {value})"
            for p in parts:
                if p.count():
                    rdb.create_items(rcell.rdb_id(), cat.rdb_id(), kdb.CplxTrans(dbu), p.dup().flatten())
    rep = DrcReport(str(gds), cell.name, results, time.perf_counter() - t0)
    if rdb is not None:
        Path(lyrdb).parent.mkdir(parents=True, exist_ok=True)
        rdb.save(str(lyrdb))
    if json_out is not None:
        write_json(json_out, rep.to_dict(), indent=1)
    return rep


def _top_cell(layout: kdb.Layout, top: Optional[str], where) -> kdb.Cell:
    if top:
        c = layout.cell(top)
        if c is None:
            raise DrcError(f"{where}: no cell named {top!r}")
        return c
    tops = layout.top_cells()
    if len(tops) != 1:
        raise DrcError(f"{where}: {len(tops)} top cells ({', '.join(c.name for c in tops)}); name one with --top")
    return tops[0]
