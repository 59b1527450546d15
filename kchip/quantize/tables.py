"""Code -> value tables: which physical values a cell's integer codes realize.

A `CodeTable` is a list of integer codes and the value each realizes (physical units of its parameter kind, see
kchip.hw.kinds), monotone increasing in the code, possibly non-uniform: a characterized (measured) table is used
unchanged. `CodeTable.ideal` builds the uniform sign-magnitude table of a `bits`-bit DAC (+ sign) with a given full
scale, which stands in until characterized tables exist. Quantization picks the nearest realizable value; values
outside [min, max] are clipped to the end values and counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Mapping, Sequence

import numpy as np
import torch

from kchip.hw.kinds import PARAM_KINDS


def _check_number(v, where):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{where}: expected a finite number, got {v!r}")


@dataclass
class CodeTable:
    """codes[i] realizes values[i] (physical units `unit` of parameter kind `kind`); values strictly increasing
    with the code. `bits` is the magnitude width; `signed` = sign-magnitude (codes in [-(2^bits-1), 2^bits-1]),
    else codes in [0, 2^bits-1]."""
    kind: str
    bits: int
    signed: bool
    codes: list
    values: list
    unit: str = ""
    source: str = "ideal-uniform"

    def __post_init__(self):
        self.validate("table")
        self._codes = np.asarray(self.codes, dtype=np.int64)
        self._values = np.asarray(self.values, dtype=np.float64)

    # ---- validation --------------------------------------------------------------------------------------
    def code_range(self):
        m = (1 << self.bits) - 1
        return (-m, m) if self.signed else (0, m)

    def validate(self, where: str) -> None:
        if not isinstance(self.kind, str) or self.kind not in PARAM_KINDS:
            raise ValueError(f"{where}.kind: unknown parameter kind {self.kind!r}; known: {', '.join(PARAM_KINDS)}")
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= 24:
            raise ValueError(f"{where}.bits: expected an integer 1..24, got {self.bits!r}")
        if not isinstance(self.signed, bool):
            raise ValueError(f"{where}.signed: expected true/false, got {self.signed!r}")
        if not isinstance(self.codes, list) or not isinstance(self.values, list) or not self.codes:
            raise ValueError(f"{where}.codes: expected non-empty lists of codes and values")
        if len(self.codes) != len(self.values):
            raise ValueError(f"{where}.values: {len(self.values)} values for {len(self.codes)} codes")
        lo, hi = self.code_range()
        for i, c in enumerate(self.codes):
            if isinstance(c, bool) or not isinstance(c, int):
                raise ValueError(f"{where}.codes[{i}]: expected an integer, got {c!r}")
            if not lo <= c <= hi:
                raise ValueError(f"{where}.codes[{i}]: code {c} out of the {self.bits}-bit"
                                 f"{' + sign' if self.signed else ''} range [{lo}, {hi}]")
        for i, v in enumerate(self.values):
            _check_number(v, f"{where}.values[{i}]")
        order = sorted(range(len(self.codes)), key=lambda i: self.codes[i])
        for a, b in zip(order, order[1:]):
            if self.codes[a] == self.codes[b]:
                raise ValueError(f"{where}.codes[{b}]: code {self.codes[b]} appears twice")
            if not self.values[b] > self.values[a]:
                raise ValueError(f"{where}.values[{b}]: values must increase with the code (code {self.codes[a]} "
                                 f"-> {self.values[a]!r}, code {self.codes[b]} -> {self.values[b]!r})")

    # ---- construction ------------------------------------------------------------------------------------
    @classmethod
    def ideal(cls, kind: str, bits: int, full_scale: float, signed: bool = True) -> "CodeTable":
        """Uniform table: code c realizes c * full_scale / (2^bits - 1)."""
        if not (full_scale > 0 and math.isfinite(full_scale)):
            raise ValueError(f"full_scale: must be > 0, got {full_scale!r}")
        m = (1 << int(bits)) - 1
        codes = list(range(-m if signed else 0, m + 1))
        lsb = full_scale / m
        return cls(kind, int(bits), bool(signed), codes, [c * lsb for c in codes], PARAM_KINDS[kind][0],
                   "ideal-uniform")

    @classmethod
    def from_measured(cls, kind: str, bits: int, signed: bool, codes: Sequence[int], values: Sequence[float],
                      source: str) -> "CodeTable":
        """A characterized table (codes and the measured value of each), sorted by code, used unchanged."""
        pairs = sorted(zip([int(c) for c in codes], [float(v) for v in values]))
        return cls(kind, int(bits), bool(signed), [p[0] for p in pairs], [p[1] for p in pairs],
                   PARAM_KINDS[kind][0], source)

    # ---- use -----------------------------------------------------------------------------------------------
    @property
    def vmin(self) -> float:
        return float(self._values.min())

    @property
    def vmax(self) -> float:
        return float(self._values.max())

    def value(self, code: int) -> float:
        idx = np.nonzero(self._codes == int(code))[0]
        if idx.size == 0:
            raise ValueError(f"code {code} is not in the {self.kind} table")
        return float(self._values[idx[0]])

    def grid(self):
        """(values ascending, codes in the same order)."""
        o = np.argsort(self._values)
        return self._values[o], self._codes[o]

    def quantize(self, x) -> Dict[str, np.ndarray]:
        """Nearest realizable value of each physical value x: {codes, values, clipped (bool)}."""
        x = np.asarray(x, dtype=np.float64)
        vals, codes = self.grid()
        idx = nearest_index(vals, x)
        return {"codes": codes[idx], "values": vals[idx], "clipped": (x < vals[0]) | (x > vals[-1])}

    def to_dict(self) -> Dict:
        return {"kind": self.kind, "bits": self.bits, "signed": self.signed, "codes": list(self.codes),
                "values": list(self.values), "unit": self.unit, "source": self.source}

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "table") -> "CodeTable":
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected an object")
        for k in ("kind", "bits", "signed", "codes", "values"):
            if k not in d:
                raise ValueError(f"{where}.{k}: missing required field")
        extra = set(d) - {"kind", "bits", "signed", "codes", "values", "unit", "source"}
        if extra:
            raise ValueError(f"{where}.{sorted(extra)[0]}: unknown field")
        t = cls.__new__(cls)
        t.kind, t.bits, t.signed = d["kind"], d["bits"], d["signed"]
        t.codes, t.values = d["codes"], d["values"]
        t.unit, t.source = d.get("unit", ""), d.get("source", "")
        t.validate(where)
        t.__post_init__()
        return t

    def __eq__(self, other):
        return isinstance(other, CodeTable) and self.to_dict() == other.to_dict()


def nearest_index(grid: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest element of the ascending `grid` for each x (ties to the lower value)."""
    j = np.clip(np.searchsorted(grid, x), 1, len(grid) - 1) if len(grid) > 1 else np.zeros(np.shape(x), int)
    if len(grid) == 1:
        return j
    lo, hi = grid[j - 1], grid[j]
    return np.where(np.abs(x - lo) <= np.abs(hi - x), j - 1, j)


def nearest_torch(grid: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Nearest value of the ascending 1-D `grid` for each element of x (torch, no gradient)."""
    if grid.numel() == 1:
        return grid.expand_as(x).clone()
    j = torch.searchsorted(grid, x.detach().contiguous()).clamp(1, grid.numel() - 1)
    lo, hi = grid[j - 1], grid[j]
    return torch.where((x - lo).abs() <= (hi - x).abs(), lo, hi)


# kchip.cells characterized tables -> per-parameter tables. (cell, their param, their unit) -> our parameter name.
# Parameters without an entry here (tanh_diff "amp": the law's amplitude is I_u itself; tanh_diff "offset" in
# volts: the law's offset is the product slope x offset) keep the ideal tables.
_CELLS_PARAM_MAP = {("relu_diff", "gain", "A/V"): "gain", ("relu_diff", "gain", "S"): "gain",
                    ("relu_diff", "bias", "A"): "bias", ("tanh_diff", "slope", "1/V"): "slope",
                    ("relu_lin", "g_s", "A/V"): "g_s", ("relu_lin", "g_d", "A/V"): "g_d",
                    ("relu_lin", "bias", "A"): "bias",
                    ("tanh_lin", "slope_s", "1/V"): "slope_s", ("tanh_lin", "slope_d", "1/V"): "slope_d",
                    ("tanh_lin", "offset", "1"): "offset"}


def from_cells_table(ct, bits: int = None, ignored: list = None) -> Dict[str, "CodeTable"]:
    """Convert a `kchip.cells.tables.CodeTable` (one cell kind, several parameters, HW units) into our
    {"<cell>.<param>": CodeTable}, values unchanged. A magnitude-only table (codes >= 0) is mirrored to
    sign-magnitude (the sign comes from swapping inputs / sink and source, ARCHITECTURE §3). Parameters without
    a counterpart in the law are appended to `ignored` (a list) when given."""
    from kchip.hw.kinds import CELL_KINDS
    out = {}
    units = dict(getattr(ct, "units", {}) or {})
    for pname, cp in ct.params.items():
        ours = _CELLS_PARAM_MAP.get((ct.cell, pname, units.get(pname, "")))
        if ours is None:
            if ignored is not None:
                ignored.append(f"{ct.cell}.{pname} [{units.get(pname, '?')}]")
            continue
        kind = dict((n, k) for _, n, k in CELL_KINDS[ct.cell].params)[ours]
        codes = [int(c) for c in np.asarray(cp.codes)]
        values = [float(v) for v in np.asarray(cp.values)]
        order = np.argsort(codes)
        v_sorted = np.asarray(values)[order]
        if not np.all(np.diff(v_sorted) > 0):
            raise ValueError(
                f"kchip.cells table {ct.cell}/{getattr(ct, 'corner', '?')}: parameter {pname!r} does not increase "
                f"with its code ({', '.join(f'{v:.4g}' for v in v_sorted[:6])}, ...): it is not a programmable "
                f"{kind}, so it cannot realize the law's {ours!r} parameter (the KirchhoffNet law needs it per edge)")
        meta = dict(getattr(ct, "meta", {}) or {})
        signed = True
        if min(codes) >= 0 and min(values) >= 0:       # magnitude table: mirror (sign by swapping)
            pos = [(c, v) for c, v in zip(codes, values) if c > 0]
            codes = [-c for c, _ in pos[::-1]] + codes
            values = [-v for _, v in pos[::-1]] + values
        elif min(codes) >= 0:                           # offset-binary table spanning both signs: as is
            signed = False
        default_bits = max(1, int(max(map(abs, codes))).bit_length())
        b = bits or int(meta.get("obits" if (kind == "ibias" and "obits" in meta) else "bits", default_bits))
        b = max(b, default_bits)
        out[f"{ct.cell}.{ours}"] = CodeTable.from_measured(kind, b, signed, codes, values,
                                                           f"kchip.cells {ct.cell}/{getattr(ct, 'corner', '?')}")
    return out
