"""ChipSpec: the one intermediate representation every back-end stage reads (ARCHITECTURE §1).

    nodes    index (1..N, 0 is ground and not listed), role (input | output | io | hidden), capacitor cap_f [F]
    periods  index, start and length (SW time units; seconds = x tau), law, the edges it enables, the nodes it
             resets to V_cm at its start, its node count
    edges    id, period, src, dst, cell kind, integer codes (one per cell parameter, in the cell's order) and
             the SW value each realizes
    tables   "cell.param" -> CodeTable (physical values per code)
    scaling  kchip.hw.Scaling;   pdk, corner;   projector, solver (to rebuild the L1 model);
    provenance  source model hash, bit widths, tool version, quantization report

JSON (de)serialization round-trips exactly (floats are written with Python's shortest round-trip repr). Loading
validates everything and every error names the offending field, e.g. `edges[12].dst`.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from kchip.hw.kinds import CELL_KINDS, LAW_TO_CELL, kind_factor
from kchip.hw.mapping import Scaling
from kchip.model.laws import LAWS

from .tables import CodeTable

FORMAT = "kchip.chipspec"
VERSION = 1
ROLES = ("input", "output", "io", "hidden")


@dataclass
class NodeSpec:
    index: int
    role: str
    cap_f: float


@dataclass
class PeriodSpec:
    index: int
    start: float
    length: float
    law: str
    num_nodes: int
    edges: List[int]
    reset: List[int]


@dataclass
class EdgeSpec:
    id: int
    period: int
    src: int
    dst: int
    cell: str
    codes: List[int]
    values: List[float]


@dataclass
class ChipSpec:
    name: str
    pdk: str
    corner: str
    scaling: Scaling
    nodes: List[NodeSpec]
    periods: List[PeriodSpec]
    edges: List[EdgeSpec]
    tables: Dict[str, CodeTable]
    projector: Optional[str] = None
    solver: Dict = field(default_factory=dict)
    provenance: Dict = field(default_factory=dict)

    # ---- (de)serialization -----------------------------------------------------------------------------
    def to_dict(self) -> Dict:
        return {"format": FORMAT, "version": VERSION, "name": self.name, "pdk": self.pdk, "corner": self.corner,
                "scaling": self.scaling.to_dict(), "nodes": [asdict(n) for n in self.nodes],
                "periods": [asdict(p) for p in self.periods], "edges": [asdict(e) for e in self.edges],
                "tables": {k: t.to_dict() for k, t in self.tables.items()}, "projector": self.projector,
                "solver": dict(self.solver), "provenance": self.provenance}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def save(self, path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.to_json())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "chipspec") -> "ChipSpec":
        return _parse(d, where)

    @classmethod
    def from_json(cls, text: str, where: str = "chipspec") -> "ChipSpec":
        try:
            d = json.loads(text, object_pairs_hook=_no_repeated_keys)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON: {exc}") from None
        except _RepeatedKey as exc:
            raise ValueError(f"{where}: key {exc.args[0]!r} is given twice in one object") from None
        return _parse(d, where)

    @classmethod
    def load(cls, path) -> "ChipSpec":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: ChipSpec file not found")
        if not path.is_file():
            raise ValueError(f"{path}: not a file (a folder?)")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not a ChipSpec (not UTF-8 text, byte {exc.start})") from None
        return cls.from_json(text, str(path))

    def validate(self, where: str = "chipspec") -> None:
        """Raise ValueError naming the field if this spec is inconsistent."""
        _parse(json.loads(self.to_json()), where)

    # ---- helpers -------------------------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    def input_nodes(self) -> List[int]:
        return [n.index for n in self.nodes if n.role in ("input", "io")]

    def output_nodes(self) -> List[int]:
        return [n.index for n in self.nodes if n.role in ("output", "io")]


# ---- parsing and validation --------------------------------------------------------------------------------
class _RepeatedKey(Exception):
    pass


def _no_repeated_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise _RepeatedKey(k)
        out[k] = v
    return out


def _check_solver(solver: Mapping, where: str) -> None:
    """The software solver settings the L1 model runs with (torchdiffeq)."""
    from kchip.model.net import solver_methods
    m, known = solver.get("method"), solver_methods()
    if m is not None and (not isinstance(m, str) or m not in known):
        raise ValueError(f"{where}.method: {m!r} unknown; known: {', '.join(known)}")
    for k in ("rtol", "atol"):
        if k in solver and (_num(solver[k], f"{where}.{k}") <= 0 or solver[k] >= 1):
            raise ValueError(f"{where}.{k}: {solver[k]!r}: a tolerance in (0, 1)")
    opts = solver.get("options")
    if opts is not None:
        _obj(opts, f"{where}.options", (), ("step_size",))
        if "step_size" in opts and _num(opts["step_size"], f"{where}.options.step_size") <= 0:
            raise ValueError(f"{where}.options.step_size: {opts['step_size']!r}: must be > 0")


def _obj(d, where, required, optional=()):
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(d).__name__}")
    for k in required:
        if k not in d:
            raise ValueError(f"{where}.{k}: missing required field")
    extra = set(d) - set(required) - set(optional)
    if extra:
        raise ValueError(f"{where}.{sorted(extra)[0]}: unknown field")
    return d


def _int(v, where, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{where}: expected an integer, got {v!r}")
    if lo is not None and v < lo:
        raise ValueError(f"{where}: {v} is below the smallest allowed value {lo}")
    if hi is not None and v > hi:
        raise ValueError(f"{where}: {v} is above the largest allowed value {hi}")
    return v


def _num(v, where):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{where}: expected a finite number, got {v!r}")
    return float(v)


def _str(v, where):
    if not isinstance(v, str) or not v:
        raise ValueError(f"{where}: expected a non-empty string, got {v!r}")
    return v


def _list(v, where):
    if not isinstance(v, list):
        raise ValueError(f"{where}: expected a list, got {type(v).__name__}")
    return v


def _parse(d, where: str) -> ChipSpec:
    _obj(d, where, ("format", "version", "name", "pdk", "corner", "scaling", "nodes", "periods", "edges",
                    "tables"), ("projector", "solver", "provenance"))
    if d["format"] != FORMAT:
        raise ValueError(f"{where}.format: {d['format']!r} is not {FORMAT!r}")
    if d["version"] != VERSION:
        raise ValueError(f"{where}.version: {d['version']!r} is not supported (expected {VERSION})")
    name = _str(d["name"], f"{where}.name")
    pdk = _str(d["pdk"], f"{where}.pdk")
    corner = _str(d["corner"], f"{where}.corner")
    scaling = Scaling.from_dict(d["scaling"], f"{where}.scaling")

    tables: Dict[str, CodeTable] = {}
    if not isinstance(d["tables"], Mapping):
        raise ValueError(f"{where}.tables: expected an object")
    for key, t in d["tables"].items():
        tw = f"{where}.tables[{key!r}]"
        cell, _, pname = key.partition(".")
        if cell not in CELL_KINDS or pname not in CELL_KINDS[cell].names:
            raise ValueError(f"{tw}: key must be '<cell kind>.<parameter>' of a known cell kind")
        tables[key] = CodeTable.from_dict(t, tw)
        want = dict((n, k) for _, n, k in CELL_KINDS[cell].params)[pname]
        if tables[key].kind != want:
            raise ValueError(f"{tw}.kind: {tables[key].kind!r} but {key} is a {want!r} parameter")

    nodes: List[NodeSpec] = []
    seen = set()
    for i, n in enumerate(_list(d["nodes"], f"{where}.nodes")):
        nw = f"{where}.nodes[{i}]"
        _obj(n, nw, ("index", "role", "cap_f"))
        idx = _int(n["index"], f"{nw}.index", lo=1)
        if idx in seen:
            raise ValueError(f"{nw}.index: node {idx} listed twice")
        seen.add(idx)
        if not isinstance(n["role"], str) or n["role"] not in ROLES:
            raise ValueError(f"{nw}.role: {n['role']!r} unknown; known: {', '.join(ROLES)}")
        cap = _num(n["cap_f"], f"{nw}.cap_f")
        if cap <= 0:
            raise ValueError(f"{nw}.cap_f: node capacitance must be > 0 F, got {cap!r}")
        nodes.append(NodeSpec(idx, n["role"], n["cap_f"]))
    if sorted(seen) != list(range(1, len(seen) + 1)):
        raise ValueError(f"{where}.nodes: node indices must be 1..{len(seen)} without gaps, got {sorted(seen)}")

    raw_edges = _list(d["edges"], f"{where}.edges")
    periods: List[PeriodSpec] = []
    prev_end = None
    for k, p in enumerate(_list(d["periods"], f"{where}.periods")):
        pw = f"{where}.periods[{k}]"
        _obj(p, pw, ("index", "start", "length", "law", "num_nodes", "edges", "reset"))
        _int(p["index"], f"{pw}.index", lo=k, hi=k)
        start, length = _num(p["start"], f"{pw}.start"), _num(p["length"], f"{pw}.length")
        if length <= 0:
            raise ValueError(f"{pw}.length: must be > 0, got {length!r}")
        if start < 0:
            raise ValueError(f"{pw}.start: must be >= 0, got {start!r}")
        if prev_end is not None and start < prev_end - 1e-12 * max(1.0, prev_end):
            raise ValueError(f"{pw}.start: period starts at {start!r} but periods[{k - 1}] runs until "
                             f"{prev_end!r} (periods overlap)")
        prev_end = start + length
        if not isinstance(p["law"], str) or p["law"] not in LAWS or LAWS[p["law"]].name != p["law"] or p["law"] not in LAW_TO_CELL:
            raise ValueError(f"{pw}.law: unknown law {p['law']!r}")
        nn_ = _int(p["num_nodes"], f"{pw}.num_nodes", lo=1, hi=len(nodes))
        for j, e in enumerate(_list(p["edges"], f"{pw}.edges")):
            _int(e, f"{pw}.edges[{j}]", lo=0, hi=len(raw_edges) - 1)
        for j, r in enumerate(_list(p["reset"], f"{pw}.reset")):
            _int(r, f"{pw}.reset[{j}]", lo=1, hi=nn_)
        if not p["edges"]:
            raise ValueError(f"{pw}.edges: a period must enable at least one edge")
        periods.append(PeriodSpec(k, p["start"], p["length"], p["law"], nn_, list(p["edges"]), list(p["reset"])))
    if not periods:
        raise ValueError(f"{where}.periods: at least one period is needed")

    edges: List[EdgeSpec] = []
    luts: Dict[str, Dict[int, float]] = {}
    for i, e in enumerate(raw_edges):
        ew = f"{where}.edges[{i}]"
        _obj(e, ew, ("id", "period", "src", "dst", "cell", "codes", "values"))
        _int(e["id"], f"{ew}.id", lo=i, hi=i)
        k = _int(e["period"], f"{ew}.period", lo=0, hi=len(periods) - 1)
        per = periods[k]
        if i not in per.edges:
            raise ValueError(f"{ew}.period: edge {i} is not in periods[{k}].edges")
        for end in ("src", "dst"):
            v = _int(e[end], f"{ew}.{end}", lo=0)
            if v > per.num_nodes:
                raise ValueError(f"{ew}.{end}: node {v} does not exist in periods[{k}] (nodes 0..{per.num_nodes}, "
                                 f"0 = ground)")
        cell = e["cell"]
        if not isinstance(cell, str) or cell not in CELL_KINDS:
            raise ValueError(f"{ew}.cell: unknown cell kind {cell!r}; known: {', '.join(CELL_KINDS)}")
        if LAW_TO_CELL[per.law] != cell:
            raise ValueError(f"{ew}.cell: {cell!r} does not realize periods[{k}].law {per.law!r} "
                             f"(needs {LAW_TO_CELL[per.law]!r})")
        ck = CELL_KINDS[cell]
        codes, values = _list(e["codes"], f"{ew}.codes"), _list(e["values"], f"{ew}.values")
        if len(codes) != len(ck.params) or len(values) != len(ck.params):
            raise ValueError(f"{ew}.codes: cell {cell!r} has {len(ck.params)} parameters "
                             f"({', '.join(ck.names)}), got {len(codes)} codes and {len(values)} values")
        for j, (_, pname, kind) in enumerate(ck.params):
            key = f"{cell}.{pname}"
            if key not in tables:
                raise ValueError(f"{ew}.cell: no code table {key!r} in {where}.tables")
            t = tables[key]
            lo, hi = t.code_range()
            c = _int(codes[j], f"{ew}.codes[{j}]")
            if not lo <= c <= hi:
                raise ValueError(f"{ew}.codes[{j}]: code {c} of {key} is out of its {t.bits}-bit"
                                 f"{' + sign' if t.signed else ''} width [{lo}, {hi}]")
            lut = luts.setdefault(key, dict(zip(t.codes, t.values)))
            if c not in lut:
                raise ValueError(f"{ew}.codes[{j}]: code {c} is not in table {key!r}")
            v = _num(values[j], f"{ew}.values[{j}]")
            want = lut[c] / kind_factor(kind, scaling.v_u, scaling.i_u)
            if abs(v - want) > 1e-9 * max(abs(want), 1e-12):
                raise ValueError(f"{ew}.values[{j}]: {v!r} is not the value code {c} of {key} realizes "
                                 f"({want!r} in SW units)")
        edges.append(EdgeSpec(i, k, e["src"], e["dst"], cell, list(codes), list(values)))
    for k, per in enumerate(periods):
        for j, eid in enumerate(per.edges):
            if edges[eid].period != k:
                raise ValueError(f"{where}.periods[{k}].edges[{j}]: edge {eid} belongs to periods[{edges[eid].period}]")

    projector = d.get("projector")
    if projector is not None:
        from kchip.model.net import _parse_projector
        try:
            pr = _parse_projector(projector)
        except ValueError as exc:
            raise ValueError(f"{where}.projector: {exc}") from None
        if pr and pr[1] > periods[-1].num_nodes:
            raise ValueError(f"{where}.projector: {projector!r} reads more nodes than the last period has")
    solver = _obj(d.get("solver", {}) or {}, f"{where}.solver", (), ("method", "rtol", "atol", "options"))
    _check_solver(solver, f"{where}.solver")
    prov = d.get("provenance", {}) or {}
    if not isinstance(prov, Mapping):
        raise ValueError(f"{where}.provenance: expected an object")
    return ChipSpec(name, pdk, corner, scaling, nodes, periods, edges, tables, projector, dict(solver), dict(prov))
