"""Transistor-level realization of the three-parameter laws on their cells, from the measured code tables:
relu(theta1 vs + theta2 vd + theta3) (paper Eq. 12) on `relu_lin`, tanh(theta1 vs + theta2 vd + theta3) (Eq. 13)
on `tanh_lin`.

relu_lin realizes relu(g_s[cs] (vs - V_cm) + g_d[cd] (vd - V_cm) + bias[o]) (hardware units: g_s, g_d in A/V for
the signed 4-bit codes -15..15, bias in A for the offset-binary code o = 0..15; docs/cells.md). With
v_hw = V_cm + V_u v and i_hw = I_u i an edge (theta1, theta2, theta3) in SW units needs

    g_s[cs] = I_u theta1 / V_u,   g_d[cd] = I_u theta2 / V_u,   bias[o] = I_u theta3,

each code chosen on its own table (the three terms add in the cell: separate transconductors and a bias DAC
into one node), the one nearest its target. I_u is the largest unit current at which every edge's three targets
lie inside the tables' ranges, so nothing is clipped by the choice of I_u; an edge whose target still falls more
than half a code step outside a table (an explicit I_u) is counted (`clipped`), never clipped silently. The code
error bound over the mapped input range |v - V_cm| <= span is reported per edge, in % of the full-gain current
G[15] span (the bias DAC's step, I_ub ~ 175 nA, is ~23 % of that current: the coarsest of the three codes).

tanh_lin realizes I_T tanh(slope_s[cs] (vs - V_cm) + slope_d[cd] (vd - V_cm) + offset[o]) (slopes in 1/V, offset
dimensionless): its amplitude is fixed, so I_u = I_T (the table's `amp_A`) and the targets are

    slope_s[cs] = theta1 / V_u,   slope_d[cd] = theta2 / V_u,   offset[o] = theta3;

a slope beyond the table (|theta1| / V_u above the cell's largest slope) is clipped to the last code and counted.
The error bound is in units of the tanh argument over the input range; since |d tanh| <= |d u| it bounds the
current error in % of I_T (`err_pct_fs`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from kchip.cells.tables import CodeTable
from kchip.quantize.chipspec import ChipSpec

__all__ = ["LinCellModel", "realize_lin", "lin_code_pins", "LIN_PARAMS"]

# the three code tables of each three-parameter cell, in theta1, theta2, theta3 order
LIN_PARAMS = {"relu_lin": ("g_s", "g_d", "bias"), "tanh_lin": ("slope_s", "slope_d", "offset")}


@dataclass
class LinCellModel:
    """What a three-parameter cell realizes per code, from its measured code tables (relu_lin: g_s, g_d [A/V],
    bias [A]; tanh_lin: slope_s, slope_d [1/V], offset [1], held in the same three fields, and `amp` = I_T [A])."""
    cell: str
    g_s: np.ndarray       # (2 full + 1,) per signed code -full..full (theta1's table)
    g_d: np.ndarray       # theta2's table
    bias: np.ndarray      # (2^obits,) per offset code o = 0..2^obits - 1 (theta3's table)
    bits: int = 4
    obits: int = 4
    amp: float = 0.0      # tanh_lin: the fixed output amplitude I_T [A]

    @property
    def family(self) -> str:
        return "tanh" if self.cell.startswith("tanh") else "relu"

    @classmethod
    def from_table(cls, t: CodeTable) -> "LinCellModel":
        bits, obits = int(t.meta.get("bits", 4)), int(t.meta.get("obits", 4))
        full = 2 ** bits - 1
        if t.cell not in LIN_PARAMS:
            raise ValueError(f"{t.cell}/{t.corner}: not a three-parameter cell (have {', '.join(LIN_PARAMS)})")
        out = []
        for name, lo, hi in zip(LIN_PARAMS[t.cell], (-full, -full, 0), (full, full, 2 ** obits - 1)):
            if name not in t.params:
                raise ValueError(f"{t.cell}/{t.corner} table: parameter {name!r} missing (has "
                                 f"{', '.join(sorted(t.params))})")
            p = t.params[name]
            codes = np.asarray(p.codes, int)
            want = np.arange(lo, hi + 1)
            missing = sorted(set(want.tolist()) - set(codes.tolist()))
            if missing:
                raise ValueError(f"{t.cell}/{t.corner} table: {name} has no value for codes {missing[:5]}")
            out.append(np.asarray(p.values, float)[np.argsort(codes)][np.searchsorted(np.sort(codes), want)])
        amp = float(t.meta.get("amp_A", 0.0))
        if t.cell.startswith("tanh") and not amp > 0:
            raise ValueError(f"{t.cell}/{t.corner} table: meta amp_A (the output amplitude I_T) missing")
        return cls(t.cell, *out, bits=bits, obits=obits, amp=amp)

    @property
    def full(self) -> int:
        return 2 ** self.bits - 1

    @property
    def o_zero(self) -> int:
        """The offset code of zero bias by design (offset binary: 2^(obits-1))."""
        return 2 ** (self.obits - 1)

    def unit_current_limit(self, th1: np.ndarray, th2: np.ndarray, th3: np.ndarray, v_u: float) -> Dict:
        """Largest I_u at which every target lies inside the tables (per constraint, and which one binds)."""
        lim = {}
        for name, tab, th, scale in (("theta1", self.g_s, th1, 1 / v_u), ("theta2", self.g_d, th2, 1 / v_u),
                                     ("theta3", self.bias, th3, 1.0)):
            pos, neg = float(np.max(th, initial=0.0)), float(np.min(th, initial=0.0))
            cand = []
            if pos > 0:
                cand.append(float(np.max(tab)) / (pos * scale))
            if neg < 0:
                cand.append(float(np.min(tab)) / (neg * scale))
            lim[name] = min(cand) if cand else float("inf")
        return lim

    def choose(self, gs: float, gd: float, b: float, span: float) -> Tuple[int, int, int, float, bool]:
        """Codes (cs, cd, o) nearest the targets (A/V, A/V, A), the current error bound [A] over |x|, |y| <=
        span (|dg_s| span + |dg_d| span + |db|) and whether a target lies outside its table's range by more than
        half that table's largest step (clipped)."""
        out = False
        codes = []
        for tab, want in ((self.g_s, gs), (self.g_d, gd), (self.bias, b)):
            codes.append(int(np.argmin(np.abs(tab - want))))
            half = 0.5 * float(np.max(np.abs(np.diff(tab))))
            out |= bool(want > np.max(tab) + half or want < np.min(tab) - half)
        i_s, i_d, o = codes
        err = abs(self.g_s[i_s] - gs) * span + abs(self.g_d[i_d] - gd) * span + abs(self.bias[o] - b)
        return i_s - self.full, i_d - self.full, o, float(err), out

    def realized(self, cs: int, cd: int, o: int) -> Tuple[float, float, float]:
        return float(self.g_s[cs + self.full]), float(self.g_d[cd + self.full]), float(self.bias[o])


def realize_lin(spec: ChipSpec, model: LinCellModel, span: float, i_u: Optional[float] = None) -> Dict:
    """Cell codes for every edge of a three-parameter-law spec; the report has the same layout as
    `kchip.netlist.transistor.realize` (edges with src/dst/period, `realized_sw` in the spec's value order)
    plus per edge `cs`, `cd`, `ocode`; `code` is 0 for an edge that realizes no current (not instantiated).
    relu_lin: I_u from the tables (or `i_u`); tanh_lin: I_u = the cell's amplitude I_T (module docstring)."""
    s = spec.scaling
    vals = np.array([e.values for e in spec.edges], float)          # rows theta1, theta2, theta3 (CellKind order)
    th1, th2, th3 = vals[:, 0], vals[:, 1], vals[:, 2]
    tanh = model.family == "tanh"
    limits = {} if tanh else model.unit_current_limit(th1, th2, th3, s.v_u)
    if tanh:
        if i_u is not None and abs(i_u - model.amp) > 1e-3 * model.amp:
            raise ValueError(f"{model.cell}: I_u is the cell's fixed amplitude {model.amp:.4g} A, got {i_u:.4g} A")
        i_u = model.amp
    elif i_u is None:
        i_u = min(limits.values())
        if not np.isfinite(i_u):
            raise ValueError(f"{spec.name}: every edge has theta = 0; nothing to realize")
    unit = 1.0 if tanh else i_u                     # table units per SW unit of theta (relu: A; tanh: argument)
    norm = 1.0 if tanh else max(abs(model.g_s[-1]), abs(model.g_d[-1])) * span
    c_f = s.tau_s * i_u / s.v_u
    edges, clipped, worst = [], 0, 0.0
    for e, t1, t2, t3 in zip(spec.edges, th1, th2, th3):
        cs, cd, o, err, out = model.choose(unit * t1 / s.v_u, unit * t2 / s.v_u, unit * t3, span)
        gs, gd, b = model.realized(cs, cd, o)
        rel = err / max(norm, 1e-30)
        clipped += int(out)
        worst = max(worst, rel)
        on = not (cs == 0 and cd == 0 and o == model.o_zero)
        edges.append({"id": e.id, "period": e.period, "src": e.src, "dst": e.dst, "cs": cs, "cd": cd, "ocode": o,
                      "code": int(on), "theta_sw": [float(t1), float(t2), float(t3)],
                      "realized_sw": [gs * s.v_u / unit, gd * s.v_u / unit, b / unit],
                      "err_pct_fs": 100 * rel, "clipped": out})
    rule = ("I_u = the cell's amplitude I_T; C = tau I_u / V_u; each code nearest its target (slope_s = theta1 / "
            "V_u, slope_d = theta2 / V_u, offset = theta3)" if tanh else
            "I_u = the largest unit current with every theta inside the tables; C = tau I_u / V_u; each code "
            "nearest its target (g_s = I_u theta1 / V_u, g_d = I_u theta2 / V_u, bias = I_u theta3)")
    return {"i_u": i_u, "c_f": c_f, "v_u": s.v_u, "tau_s": s.tau_s, "edges": edges, "clipped": clipped,
            "max_err_pct_fs": 100 * worst, "span_V": span, "i_u_limits": limits, "rule": rule}


def lin_code_pins(e: Dict, bits: int, obits: int) -> List[str]:
    """The code pins of a three-parameter cell instance, in `kchip.cells.relu_lin.lin_pins` order:
    gs0..gs{bits-1} ngs gd0..gd{bits-1} ngd o0..o{obits-1} (1.8 V logic tied to vdd / 0)."""
    b = lambda code, n: ["vdd" if (code >> k) & 1 else "0" for k in range(n)]
    return (b(abs(e["cs"]), bits) + ["vdd" if e["cs"] < 0 else "0"] + b(abs(e["cd"]), bits)
            + ["vdd" if e["cd"] < 0 else "0"] + b(e["ocode"], obits))
