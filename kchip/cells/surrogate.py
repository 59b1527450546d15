"""L2 device-aware surrogate: a differentiable torch i-v function built from a characterized CellTable.

    sur = CellSurrogate.from_files("characterization/tanh_diff/tt.npz")     # HW units
    i_hw = sur.current_hw(codes, vs_volts, vd_volts)                          # A, differentiable
    sw = sur.law(i_u=1e-6, v_u=0.05, v_cm=0.9)                                # SW units, Law.fn-like
    i_sw = sw(codes, vs_sw, vd_sw)        # codes (E,) ints (sign = input swap), vs, vd edge-major (E, B)

Model: the per-code analytic fit of the code table (tanh: amp tanh(slope (vs - vd - offset))) plus the
residual table R[code](vd, vs) = measured - fit, bilinearly interpolated on the (vs, vd) grid. At the grid
points the surrogate equals the table; in between, interpolating the small, smooth residual (not the steep
tanh itself) keeps the error well below the residual's size. Outside the grid the residual is clamped to
the border and the analytic part extrapolates.
Signs: a negative code is the same cell with swapped gate inputs, evaluated as I(|code|, vd, vs) (gate
part exact; the output mirrors' small dependence on the pin voltages is taken mirrored - an approximation).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .tables import CellTable, CodeTable

__all__ = ["CellSurrogate", "ReluLinSurrogate", "TanhLinSurrogate"]


class CellSurrogate(torch.nn.Module):
    def __init__(self, table: CellTable, codetab: CodeTable, family: str = "tanh", dtype=torch.float64):
        super().__init__()
        table.validate()
        self.cell, self.corner, self.family = table.cell, table.corner, family
        codes = np.asarray(table.codes)
        if not np.array_equal(codes, np.arange(len(codes))):
            raise ValueError(f"{table.cell}/{table.corner}: surrogate needs codes 0..K-1, got {codes.tolist()}")
        f = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)
        self.register_buffer("vs_grid", f(table.vs))
        self.register_buffer("vd_grid", f(table.vd))
        if family == "tanh":
            sl = "slope_fit" if "slope_fit" in codetab.params else "slope"
            amp, k, off = (codetab.params[n].value(codes) for n in ("amp", sl, "offset"))
        else:
            raise ValueError(f"surrogate for family {family!r} not implemented")
        self.register_buffer("amp", f(amp))
        self.register_buffer("slope", f(k))
        self.register_buffer("off", f(off))
        VS, VD = np.meshgrid(table.vs, table.vd)
        fit = amp[:, None, None] * np.tanh(k[:, None, None] * (VS - VD - off[:, None, None]))
        self.register_buffer("resid", f(table.i_d - fit))          # (K, ND, NS)
        self.i_fs = float(np.max(np.abs(table.i_d)))

    @classmethod
    def from_files(cls, npz, json_path=None, family: str = "tanh") -> "CellSurrogate":
        npz = Path(npz)
        json_path = Path(json_path) if json_path else npz.with_suffix(".json")
        return cls(CellTable.load(npz), CodeTable.from_json(json_path), family)

    # ------------------------------------------------------------------------------------------------
    def _interp(self, k, vs, vd):
        """Bilinear residual at (vs, vd) for per-element codes k (same shape)."""
        gs, gd = self.vs_grid, self.vd_grid
        ns, nd = gs.numel(), gd.numel()
        xs = ((vs - gs[0]) / (gs[-1] - gs[0]) * (ns - 1)).clamp(0, ns - 1)
        xd = ((vd - gd[0]) / (gd[-1] - gd[0]) * (nd - 1)).clamp(0, nd - 1)
        i0 = xs.detach().floor().clamp(max=ns - 2).long(); j0 = xd.detach().floor().clamp(max=nd - 2).long()
        ts, td = xs - i0, xd - j0
        R = self.resid
        r00 = R[k, j0, i0]; r01 = R[k, j0, i0 + 1]; r10 = R[k, j0 + 1, i0]; r11 = R[k, j0 + 1, i0 + 1]
        return (r00 * (1 - ts) * (1 - td) + r01 * ts * (1 - td) + r10 * (1 - ts) * td + r11 * ts * td)

    def _current_mag(self, k, vs, vd):
        a, s, o = self.amp[k], self.slope[k], self.off[k]
        return a * torch.tanh(s * (vs - vd - o)) + self._interp(k, vs, vd)

    def current_hw(self, codes, vs, vd):
        """Current (A) taken from s and put into d, for integer codes (shape broadcastable to vs, e.g. (E, 1)
        for edge-major (E, B) voltages in volts). Differentiable in vs and vd."""
        codes = torch.as_tensor(codes, device=vs.device)
        if codes.dim() == 1 and vs.dim() == 2 and codes.shape[0] == vs.shape[0]:
            codes = codes[:, None]
        codes = torch.broadcast_to(codes, vs.shape).long()
        kmax = self.amp.numel() - 1
        if torch.any(codes.abs() > kmax):
            raise ValueError(f"{self.cell}/{self.corner}: codes must be within +-{kmax}")
        mag = codes.abs()
        neg = codes < 0
        vs_, vd_ = vs.to(self.amp.dtype), vd.to(self.amp.dtype)
        pos_i = self._current_mag(mag, vs_, vd_)
        if bool(neg.any()):
            neg_i = self._current_mag(mag, vd_, vs_)   # gates swapped: tanh(k (vd - vs))
            pos_i = torch.where(neg, neg_i, pos_i)
        return pos_i.to(vs.dtype)

    def law(self, i_u: float, v_u: float, v_cm: float):
        """A Law.fn-like callable in SW units: fn(codes, vs, vd) -> i (I_u units), v_hw = v_cm + v_u v."""
        def fn(codes, vs, vd):
            if torch.is_floating_point(torch.as_tensor(codes)):
                codes = torch.round(torch.as_tensor(codes)).long()
            codes = torch.as_tensor(codes)
            if codes.dim() == 2 and codes.shape[0] == 1:        # (1, E) row like Law params -> (E,)
                codes = codes[0]
            return self.current_hw(codes, v_cm + v_u * vs, v_cm + v_u * vd) / i_u
        return fn


class _LinLaw:
    """The SW-unit law of a three-parameter cell surrogate with current_hw(cs, cd, o, vs, vd) and v_cm, and the
    code check (attributes cell, corner, kmax, omin, omax)."""

    def _codes(self, cs, cd, o, device):
        """cs, cd, o as integer tensors on `device`; refuses gain codes beyond +-kmax and offset codes outside
        omin..omax."""
        cs, cd, o = (torch.as_tensor(c, device=device).long() for c in (cs, cd, o))
        if torch.any(cs.abs() > self.kmax) or torch.any(cd.abs() > self.kmax):
            raise ValueError(f"{self.cell}/{self.corner}: gain codes must be within +-{self.kmax}")
        if torch.any(o < self.omin) or torch.any(o > self.omax):
            raise ValueError(f"{self.cell}/{self.corner}: offset codes must be within {self.omin}..{self.omax}")
        return cs, cd, o

    def law(self, i_u: float, v_u: float, v_cm: float = None):
        """Law.fn-like callable in SW units: fn(codes (3, E): rows cs, cd, o; vs, vd (E, B)) -> i / I_u."""
        vc = self.v_cm if v_cm is None else v_cm

        def fn(codes, vs, vd):
            c = torch.round(torch.as_tensor(codes)).long()
            cs, cd, o = (c[k][:, None] if vs.dim() == 2 else c[k] for k in range(3))
            return self.current_hw(cs, cd, o, vc + v_u * vs, vc + v_u * vd) / i_u
        return fn


class _LinSurrogate(_LinLaw, torch.nn.Module):
    """What the three-parameter surrogates share: the three code tables (theta1's and theta2's for the signed codes,
    theta3's for the offset codes, sorted by code), the table argument
        u = t1[cs] (vs - v_cm) + t2[cd] (vd - v_cm) + t3[o] + k_cm (|cs| + |cd|) / kmax
    with its code checks, and the SW-unit law. A subclass names its tables (TABLES) and maps u to a current."""
    TABLES = ("g_s", "g_d", "bias")

    def __init__(self, codetab: CodeTable, k_cm: float, dtype=torch.float64):
        super().__init__()
        f = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)
        self.cell, self.corner = codetab.cell, codetab.corner
        gs, gd, b = (codetab.params[k] for k in self.TABLES)
        self.kmax = int(np.max(gs.codes))
        for nm, cp in (("gs", gs), ("gd", gd), ("t3", b)):
            order = np.argsort(cp.codes)
            self.register_buffer(nm, f(cp.values[order]))
        self.omin, self.omax = int(np.min(b.codes)), int(np.max(b.codes))
        self.v_cm = float(codetab.meta.get("vcm_V", 0.9))
        self.k_cm = float(k_cm)

    @classmethod
    def from_json(cls, path, **kw):
        return cls(CodeTable.from_json(path), **kw)

    def _argument(self, cs, cd, o, vs, vd):
        """(u, dtype of vs) for integer codes broadcastable to vs (volts); refuses codes outside the tables."""
        cs, cd, o = self._codes(cs, cd, o, vs.device)
        return (self.gs[cs + self.kmax] * (vs.to(self.gs.dtype) - self.v_cm)
                + self.gd[cd + self.kmax] * (vd.to(self.gs.dtype) - self.v_cm) + self.t3[o - self.omin]
                + self.k_cm * (cs.abs() + cd.abs()) / self.kmax)



class ReluLinSurrogate(_LinSurrogate):
    """L2 surrogate of the relu_lin cell from its code table (<corner>.json): the table law
        r = soft_relu(g_s[cs] (vs - v_cm) + g_d[cd] (vd - v_cm) + bias[o] + k_cm (|cs| + |cd|) / 15, I_q),
        i = r - k_c r^2,
    soft_relu(u, I_q) = (u + sqrt(u^2 + 4 I_q^2)) / 2 (the clamped rectifier's knee, I_q fitted per corner;
    I_q = 0 gives the plain ReLU; k_cm = meta theta3_cm_A, the code-dependent part of theta3; k_c = meta
    compression_per_A, the output's compression at large currents). Codes: cs, cd signed in -15..15, o in 0..15. Differentiable in vs, vd.
    With meta["knee"] (`kchip.cells.relu_lin_knee`: fitted on fine sweeps across the knee) u gets + (d0 + d2 n^2 +
    d4 n^4) exp(-max(u, 0) / uf) and I_q = q0 + q1 n, n = (|cs| + |cd|) / 15: where a settling node stops, and the
    tail below it.
    Its deviation from the measured surfaces is summary max_dev_table_soft_pct_fs of the characterization (with the
    knee terms: summary knee.grid_max_dev_pct_fs)."""

    def __init__(self, codetab: CodeTable, dtype=torch.float64, smooth: bool = True):
        m = codetab.meta
        super().__init__(codetab, float(m.get("theta3_cm_A", 0.0)) if smooth else 0.0, dtype)
        self.i_q = float(m.get("knee_current_A", 0.0)) if smooth else 0.0
        self.k_c = float(m.get("compression_per_A", 0.0)) if smooth else 0.0
        self.knee = {k: float(v) for k, v in m["knee"].items()} if smooth and m.get("knee") else None

    def current_hw(self, cs, cd, o, vs, vd):
        """Current (A) from s into d; cs, cd, o integer tensors broadcastable to vs (volts)."""
        u = self._argument(cs, cd, o, vs, vd)
        iq = self.i_q
        if self.knee is not None:
            k = self.knee
            n = (torch.as_tensor(cs).abs() + torch.as_tensor(cd).abs()).to(u.dtype) / self.kmax
            fade = torch.exp(-torch.clamp(u, min=0.0) / k["uf"]) if k.get("uf") else 1.0
            u = u + (k["d0"] + k["d2"] * n ** 2 + k["d4"] * n ** 4) * fade
            iq = k["q0"] + k["q1"] * n
        r = 0.5 * (u + torch.sqrt(u * u + 4 * iq * iq)) if self.knee is not None or iq > 0 else torch.relu(u)
        return (r - self.k_c * r * r).to(vs.dtype)


class TanhLinSurrogate(_LinSurrogate):
    """L2 surrogate of the tanh_lin cell from its code table (<corner>.json):
        u = slope_s[cs] (vs - v_cm) + slope_d[cd] (vd - v_cm) + offset[o] + k_cm (|cs| + |cd|) / 15,
        i = A_+ tanh(u) for u >= 0, A_- tanh(u) for u < 0,
    with k_cm = meta theta3_cm (the front end's standing-current residue, a code-dependent part of theta3) and
    A_+-  = meta amp_pos_A / amp_neg_A (the two output amplitudes, fitted minimax per corner). smooth=False gives
    the quantizer's table law amp_A tanh(slope_s x + slope_d y + offset). Codes: cs, cd signed in -15..15, o in
    0..15. Differentiable in vs, vd (continuous at u = 0: tanh(0) = 0). Its deviation from the measured surfaces
    is summary max_dev_surrogate_pct_fs of the characterization."""

    TABLES = ("slope_s", "slope_d", "offset")

    def __init__(self, codetab: CodeTable, dtype=torch.float64, smooth: bool = True):
        m = codetab.meta
        super().__init__(codetab, float(m.get("theta3_cm", 0.0)) if smooth else 0.0, dtype)
        amp = float(m["amp_A"])
        self.a_pos = float(m.get("amp_pos_A", amp)) if smooth else amp
        self.a_neg = float(m.get("amp_neg_A", amp)) if smooth else amp

    def current_hw(self, cs, cd, o, vs, vd):
        """Current (A) from s into d; cs, cd, o integer tensors broadcastable to vs (volts)."""
        u = self._argument(cs, cd, o, vs, vd)
        t = torch.tanh(u)
        return torch.where(u >= 0, self.a_pos * t, self.a_neg * t).to(vs.dtype)
