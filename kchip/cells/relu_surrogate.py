"""L2 surrogate of the relu_diff cell: a differentiable torch i-v law built from its characterization.

    sur = ReluDiffSurrogate.from_files("characterization/relu_diff/tt.npz")     # constants from tt.json
    i_hw = sur.current_hw(code, ocode, vs, vd)          # A; code signed -15..15 (sign = gate swap), ocode 0..15
    fn = sur.law(i_u, v_u, v_cm); i_sw = fn(codes, vs_sw, vd_sw)     # codes (2, E): rows signed code, ocode

Physics (docs/cells.md, relu_diff), with the gates (ga, gb) = (vs, vd) for code >= 0 and (vd, vs) for a
negative code (the sign -1 cell is the same cell with its pair gates swapped; its output still sinks from s and
sources into d):

    u = G0 (ga - gb + R(ga, gb)) + B[o]          pair + bias DAC into X; R: input-referred residual (V) on the
                                                   (vs, vd) grid, shared by every code (the pair's
                                                   non-linearity and common-mode dependence), bilinear
    r = soft_relu(u, I_q) = (u + sqrt(u^2 + 4 I_q^2)) / 2          clamped rectifier, knee current I_q
    i = a[|c|] r (1 - k_c r) (1 + lam (vd - V_cm))  output legs: a[c] = sum of the weights of c's bits (per-leg
                                                   gain errors), output compression k_c, d-port dependence lam

Every fitted constant is indexed by the magnitude code's bits or by the offset code alone, or is shared, so
the law extends to code pairs that were not characterized. G0 is the cell's fitted transconductance (code
table meta); B (16 values), the 4 leg weights, I_q, k_c, lam and R (ND x NS) are fitted jointly by least squares
to every characterized surface (`fit_relu_diff`, a small ridge on R). `analyze_relu` stores them in the code
table's meta["surrogate"]; `from_files` refits from the npz when a json lacks them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch

from .tables import CellTable, CodeTable

__all__ = ["ReluDiffSurrogate", "fit_relu_diff", "fit_from_table"]

FORMAT = 1
_KEYS = ("leg_weight", "bias_A", "input_residual_V")


def _bilinear(tab: torch.Tensor, gs: torch.Tensor, gd: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """tab (ND, NS) on the uniform grids gs (NS,), gd (ND,), at (x, y) (same shape); clamped to the border."""
    ns, nd = gs.numel(), gd.numel()
    xs = ((x - gs[0]) / (gs[-1] - gs[0]) * (ns - 1)).clamp(0, ns - 1)
    xd = ((y - gd[0]) / (gd[-1] - gd[0]) * (nd - 1)).clamp(0, nd - 1)
    i0 = xs.detach().floor().clamp(max=ns - 2).long()
    j0 = xd.detach().floor().clamp(max=nd - 2).long()
    ts, td = xs - i0, xd - j0
    return ((tab[j0, i0] * (1 - ts) + tab[j0, i0 + 1] * ts) * (1 - td)
            + (tab[j0 + 1, i0] * (1 - ts) + tab[j0 + 1, i0 + 1] * ts) * td)


def _law(k: Dict[str, torch.Tensor], code, ocode, vs, vd):
    """The surrogate law (module docstring) with constants k (tensors), integer code (signed) / ocode tensors
    broadcastable to vs, vd (volts)."""
    neg = code < 0
    ga, gb = torch.where(neg, vd, vs), torch.where(neg, vs, vd)
    mag = code.abs()
    bits = torch.stack([((mag >> b) & 1) for b in range(k["leg_weight"].numel())], -1).to(vs.dtype)
    a = bits @ k["leg_weight"]
    u = k["g0"] * (ga - gb + _bilinear(k["input_residual_V"], k["vs_grid"], k["vd_grid"], ga, gb)) \
        + k["bias_A"][ocode]
    r = 0.5 * (u + torch.sqrt(u * u + 4 * k["i_q"] ** 2))
    return a * r * (1 - k["k_c"] * r) * (1 + k["lam"] * (vd - k["v_cm"]))


def _s_deficit(sc, code, vs, vd, i_d):
    """i_d - i_s (A): what the cell puts into d beyond what it takes from s (keep-alive cancellation, leakage to
    the supplies), linear in [1, vd - V_cm, vs - V_cm, i_d, i_d (vd - V_cm)] with coefficients sc; 0 at code 0
    (a code-0 edge is not instantiated)."""
    vc = vd - sc[5]
    dlt = sc[0] + sc[1] * vc + sc[2] * (vs - sc[5]) + i_d * (sc[3] + sc[4] * vc)
    return torch.where(code == 0, torch.zeros_like(dlt), dlt)


class ReluDiffSurrogate(torch.nn.Module):
    """relu_diff i-v law (module docstring) from a constants dict (`fit_relu_diff`, json meta["surrogate"])."""

    def __init__(self, const: Dict, dtype=torch.float64, cell: str = "relu_diff", corner: str = "?"):
        super().__init__()
        if int(const.get("format", 0)) != FORMAT:
            raise ValueError(f"{cell}/{corner}: surrogate constants format {const.get('format')} != {FORMAT}")
        self.cell, self.corner, self.const = cell, corner, const
        f = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)
        for nm in ("vs_grid", "vd_grid") + _KEYS:
            self.register_buffer(nm, f(const[nm]))
        self.scalars = dict(g0=float(const["g0_A_per_V"]), i_q=float(const["knee_current_A"]),
                            k_c=float(const["compression_per_A"]), lam=float(const["vd_coeff_per_V"]),
                            v_cm=float(const["v_cm"]))
        self.kmax = 2 ** len(const["leg_weight"]) - 1
        self.omax = len(const["bias_A"]) - 1
        self.i_fs = float(const["i_fs_A"])
        self.s_coef = [float(x) for x in const.get("s_deficit_coef", [0.0] * 5)] + [self.scalars["v_cm"]]

    @classmethod
    def from_files(cls, npz, json_path=None, refit: bool = False, **kw) -> "ReluDiffSurrogate":
        """From a characterization <corner>.npz and its json (constants in meta["surrogate"]; refit from the
        npz if absent or `refit`)."""
        npz = Path(npz)
        json_path = Path(json_path) if json_path else npz.with_suffix(".json")
        ct = CodeTable.from_json(json_path)
        const = ct.meta.get("surrogate")
        if refit or const is None:
            const = fit_from_table(CellTable.load(npz), ct)
        return cls(const, cell=ct.cell, corner=ct.corner, **kw)

    def _consts(self) -> Dict[str, torch.Tensor]:
        k = {nm: getattr(self, nm) for nm in ("vs_grid", "vd_grid") + _KEYS}
        k.update(self.scalars)
        return k

    def current_hw(self, code, ocode, vs, vd):
        """Current (A) taken from s and put into d. code: signed magnitude code (-15..15, negative = gates
        swapped), ocode 0..15; integer tensors broadcastable to vs, vd (volts). Differentiable in vs, vd."""
        code, ocode = (torch.as_tensor(c, device=vs.device).long() for c in (code, ocode))
        if torch.any(code.abs() > self.kmax) or torch.any((ocode < 0) | (ocode > self.omax)):
            raise ValueError(f"{self.cell}/{self.corner}: codes must be within +-{self.kmax}, ocodes 0..{self.omax}")
        dt = self.leg_weight.dtype
        code, ocode, vs_, vd_ = torch.broadcast_tensors(code, ocode, vs.to(dt), vd.to(dt))
        return _law(self._consts(), code, ocode, vs_, vd_).to(vs.dtype)

    def currents_hw(self, code, ocode, vs, vd):
        """(i_d, i_s) in A: into d, and out of s (i_s = i_d - the s-side deficit `_s_deficit`)."""
        i_d = self.current_hw(code, ocode, vs, vd)
        code = torch.broadcast_to(torch.as_tensor(code, device=vs.device).long(), i_d.shape)
        return i_d, i_d - _s_deficit(self.s_coef, code, vs, vd, i_d)

    def law(self, i_u: float, v_u: float, v_cm: float, both: bool = False):
        """Law.fn-like callable in SW units: fn(codes (2, E): rows signed code, ocode; vs, vd (E, B)) -> i_d / I_u
        (both=True: the pair (i_d, i_s) / I_u), with v_hw = v_cm + v_u v."""
        def fn(codes, vs, vd):
            c = torch.round(torch.as_tensor(codes)).long()
            code, ocode = (c[k][:, None] if vs.dim() == 2 else c[k] for k in range(2))
            hs, hd = v_cm + v_u * vs, v_cm + v_u * vd
            if both:
                return tuple(i / i_u for i in self.currents_hw(code, ocode, hs, hd))
            return self.current_hw(code, ocode, hs, hd) / i_u
        return fn


def fit_from_table(table: CellTable, codetab: CodeTable, hold: Sequence = (), **kw) -> Dict:
    """`fit_relu_diff` on a characterization (CellTable + CodeTable), holding the code pairs `hold` out."""
    s = table.scalars or codetab.meta.get("summary", {})
    combos = [tuple(int(x) for x in cb) for cb in s["combos"]]
    return fit_relu_diff(table.vs, table.vd, combos, table.i_d, float(s["i_fs_A"]),
                         float(codetab.meta["gain_G0_A_per_V"]), float(codetab.meta["i_bias_unit_A"]),
                         float(s.get("vcm_V", 0.9)), int(codetab.meta.get("bits", 4)),
                         int(codetab.meta.get("obits", 4)), hold=hold, i_s=table.i_s, **kw)


def fit_relu_diff(vs, vd, combos, i_d, i_fs: float, g0: float, i_ub: float, v_cm: float = 0.9, bits: int = 4,
                  obits: int = 4, hold: Sequence = (), alpha: float = 1e-3, i_s=None) -> Dict:
    """Least-squares fit of the surrogate constants to the surfaces i_d (n_combos, ND, NS) of the code pairs
    `combos` over the grids vs (NS,), vd (ND,), all positive sign. `hold`: code pairs left out of the fit.
    Residuals in units of i_fs; the input residual R (V) has a ridge sqrt(alpha) R. Returns the constants dict
    (json-serializable) with the per-pair max deviation (% FS) of the fitted law, held-out pairs included.
    With the s-side surfaces i_s: also the s-side deficit i_d - i_s (linear least squares, `_s_deficit`)."""
    from scipy.optimize import least_squares
    vs, vd, i_d = (np.asarray(a, np.float64) for a in (vs, vd, i_d))
    hold = {tuple(int(x) for x in h) for h in hold}
    use = np.array([tuple(cb) not in hold for cb in combos])
    ns, nd, nb, no = len(vs), len(vd), bits, 2 ** obits
    VD, VS = torch.meshgrid(torch.as_tensor(vd), torch.as_tensor(vs), indexing="ij")
    C = torch.tensor([c for c, _ in combos])[:, None, None].expand(-1, nd, ns)
    O = torch.tensor([o for _, o in combos])[:, None, None].expand(-1, nd, ns)
    VS, VD = VS.expand(len(combos), -1, -1), VD.expand(len(combos), -1, -1)
    meas = torch.as_tensor(i_d)

    def consts(p):
        p = torch.as_tensor(p)
        return dict(vs_grid=torch.as_tensor(vs), vd_grid=torch.as_tensor(vd), leg_weight=p[:nb],
                    bias_A=p[nb:nb + no] * 1e-6, i_q=torch.exp(p[nb + no]), k_c=p[nb + no + 1] * 1e5,
                    lam=p[nb + no + 2], input_residual_V=p[nb + no + 3:].reshape(nd, ns), g0=g0, v_cm=v_cm)

    def err(p, sel):
        with torch.no_grad():
            return ((_law(consts(p), C[sel], O[sel], VS[sel], VD[sel]) - meas[sel]) / i_fs).numpy()

    def res(p):
        return np.concatenate([err(p, torch.as_tensor(use)).ravel(), np.sqrt(alpha) * p[nb + no + 3:]])

    full = 2 ** bits - 1
    p0 = np.concatenate([2.0 ** np.arange(nb) / full, (np.arange(no) - no // 2) * i_ub * 1e6,
                         [np.log(0.1 * i_ub), 0.0, 0.0], np.zeros(nd * ns)])
    fit = least_squares(res, p0, x_scale="jac")
    k = consts(fit.x)
    per = np.abs(err(fit.x, torch.ones(len(combos), dtype=torch.bool))).reshape(len(combos), -1).max(1) * 100
    out = dict(format=FORMAT, v_cm=v_cm, g0_A_per_V=g0, i_fs_A=i_fs, vs_grid=vs.tolist(), vd_grid=vd.tolist(),
                leg_weight=k["leg_weight"].tolist(), bias_A=k["bias_A"].tolist(),
                knee_current_A=float(k["i_q"]), compression_per_A=float(k["k_c"]), vd_coeff_per_V=float(k["lam"]),
                input_residual_V=k["input_residual_V"].tolist(), ridge_alpha=alpha,
                held_out=[list(h) for h in sorted(hold)],
                max_dev_pct_fs=float(per[use].max()),
                max_dev_held_out_pct_fs=float(per[~use].max()) if (~use).any() else None,
                max_dev_per_pair_pct_fs={f"{c},{o}": float(d) for (c, o), d in zip(combos, per)},
                law="u = G0 (ga - gb + R(ga, gb)) + B[o]; r = soft_relu(u, I_q); "
                    "i = a[|c|] r (1 - k_c r) (1 + lam (vd - v_cm)); a[c] = sum of c's bit weights; "
                    "(ga, gb) = (vs, vd), swapped for a negative code")
    if i_s is not None:
        out.update(_fit_s_deficit(np.asarray(vs), np.asarray(vd), combos, i_d, np.asarray(i_s), use, i_fs, v_cm))
    return out


def _fit_s_deficit(vs, vd, combos, i_d, i_s, use, i_fs: float, v_cm: float) -> Dict:
    """Coefficients of `_s_deficit` from the code pairs in `use` with a non-zero code; max |i_s model - i_s|."""
    VS, VD = np.meshgrid(vs - v_cm, vd - v_cm)
    on = use & np.array([c != 0 for c, _ in combos])
    feats = lambda j: np.stack([np.ones_like(VS), VD, VS, i_d[j], i_d[j] * VD], -1).reshape(-1, 5)
    A = np.concatenate([feats(j) for j in np.flatnonzero(on)])
    b = np.concatenate([(i_d[j] - i_s[j]).ravel() for j in np.flatnonzero(on)])
    coef = np.linalg.lstsq(A, b, rcond=None)[0]
    dev = max(float(np.max(np.abs(feats(j) @ coef - (i_d[j] - i_s[j]).ravel()))) for j in np.flatnonzero(on))
    return dict(s_deficit_coef=coef.tolist(), s_deficit_fit_max_err_pct_fs=100 * dev / i_fs,
                s_deficit_max_pct_fs=100 * float(max(np.max(np.abs(i_d[j] - i_s[j])) for j in np.flatnonzero(on))) / i_fs)
