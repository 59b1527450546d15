"""Structural L2 surrogate of the tanh_lin cell: a differentiable torch i-v law fitted to its characterization.

    sur = TanhLinStructSurrogate.from_json("characterization/tanh_lin/tt.json")   # constants in meta["surrogate"]
    i_hw = sur.current_hw(cs, cd, o, vs, vd)        # A; cs, cd signed -15..15 (sign = gate swap), o 0..15
    fn = sur.law(i_u, v_u, v_cm); i_sw = fn(codes, vs_sw, vd_sw)      # codes (3, E): rows cs, cd, o

Physics (docs/cells.md, tanh_lin): two degenerated pairs (vs / v_cm, vd / v_cm), each with binary legs into X, a bias
DAC into X, X -> R -> tanh pair -> output mirrors into d. With x = vs - v_cm, y = vd - v_cm:

    n = sum_i [W_i(c_i) (x_i + f_i(x_i) + r_i(x_i)) + Z_i(c_i)] + z_x |cs| |cd| / 225 + B[o]
        W_i(c) = sign(c) sum of c's bit slopes (per input, per sign); Z_i(c) = sum of c's bit offsets (the legs'
        standing-current residue); f_i: the front end's fine input-referred residual (V) per input and sign,
        measured on a 2.5 mV grid by the front-end sweep (`tanh_lin.frontend_sweep`; zero if absent);
        r_i: a coarse correction of it on the grid, shared by both signs; z_x: both pairs' standing currents
        through the shared nbx mirror; B[o] = b0 + sum of o's bit weights
    u0 = n / (1 + sum_i (g_i |c_i| / 15 + q_i (|c_i| / 15)^2) + g_x |cs| |cd| / 225)
                                              the legs' output conductance loads X: the gain of one input falls
                                              when the other's legs are on (slope 66.7 /V alone, 63.5 /V with both)
    u = u0 + e_2 t0^2 + e_3 t0 (1 - t0^2)     (t0 = tanh(u0)) the tanh pair is not an exact tanh of X - REF:
                                              an even and an odd shape term of its argument
    i = a(vd) t + s(vd) + b(vd) (1 - t^2) + k t (1 - t^2)      (t = tanh(u)) output mirrors: amplitude, shift and
                                              mid-swing term as functions of the d pin (piecewise linear on the vd
                                              grid), k: their odd shape

Every constant is indexed by a code bit (gain codes: per input and sign; offset code: per bit) or shared, so the law
extends to code triples that were not characterized. The constants are fitted by least squares to every
characterized surface, then refined towards minimax (an L_p objective, `fit_tanh_lin`); `analyze_tanh_lin` stores
them in the code table's meta["surrogate"] with the max deviation over all combos and on combos held out of a fit.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch

from .surrogate import _LinLaw
from .tables import CellTable, CodeTable

__all__ = ["TanhLinStructSurrogate", "fit_tanh_lin", "fit_from_table", "tanh_lin_law"]

FORMAT = 2
_TABLES = ("slope_bit_per_V", "offset_bit", "input_residual_V", "load_per_full_code", "load_quad", "load_cross",
           "offset_cross", "bias_bit", "shape_u", "amp_A", "shift_A", "bell_A", "odd_A", "x_grid_V", "vd_grid_V",
           "fine_x_V", "fine_residual_V")


def _pwl(tab: torch.Tensor, grid: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of tab (..., N) on the increasing grid (N,) at x; the border values are held
    outside the grid. tab's leading dims must broadcast against x's (tab[..., k] indexed along the last dim)."""
    n = grid.numel()
    k = torch.searchsorted(grid, x.detach().contiguous()).clamp(1, n - 1)
    x0, x1 = grid[k - 1], grid[k]
    t = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
    return tab[k - 1] * (1 - t) + tab[k] * t


def _bits(c: torch.Tensor, nb: int, dtype) -> torch.Tensor:
    m = c.abs()
    return torch.stack([((m >> b) & 1) for b in range(nb)], -1).to(dtype)


def tanh_lin_law(k: Dict[str, torch.Tensor], cs, cd, o, vs, vd) -> torch.Tensor:
    """The surrogate law (module docstring) with constants k (tensors; `_TABLES` + v_cm), integer codes cs, cd
    (signed), o and voltages vs, vd (volts), all of one broadcast shape. Returns the current into d (A)."""
    dt = vs.dtype
    x_grid = k["x_grid_V"]
    nb = k["slope_bit_per_V"].shape[-1]
    full = 2 ** nb - 1
    fx, fr = k["fine_x_V"], k["fine_residual_V"]
    n, den = 0.0, 1.0
    for i, (c, v) in enumerate(((cs, vs - k["v_cm"]), (cd, vd - k["v_cm"]))):
        neg = (c < 0).long()
        bb = _bits(c, nb, dt)
        w = (bb * k["slope_bit_per_V"][i][neg]).sum(-1) * torch.where(c < 0, -1.0, 1.0).to(dt)
        z = (bb * k["offset_bit"][i][neg]).sum(-1)
        fine = torch.where(c < 0, _pwl(fr[i][1], fx, v), _pwl(fr[i][0], fx, v))
        n = n + w * (v + fine + _pwl(k["input_residual_V"][i], x_grid, v)) + z
        a = c.abs().to(dt) / full
        den = den + k["load_per_full_code"][i] * a + k["load_quad"][i] * a * a
    both = cs.abs().to(dt) * cd.abs().to(dt) / full ** 2
    n = n + k["offset_cross"] * both
    den = den + k["load_cross"] * both
    ob = _bits(o, k["bias_bit"].numel() - 1, dt)
    u = (n + k["bias_bit"][0] + (ob * k["bias_bit"][1:]).sum(-1)) / den
    t = torch.tanh(u)
    u = u + k["shape_u"][0] * t * t + k["shape_u"][1] * t * (1 - t * t)
    t = torch.tanh(u)
    vg = k["vd_grid_V"]
    return (_pwl(k["amp_A"], vg, vd) * t + _pwl(k["shift_A"], vg, vd) + _pwl(k["bell_A"], vg, vd) * (1 - t * t)
            + k["odd_A"] * t * (1 - t * t))


class TanhLinStructSurrogate(_LinLaw, torch.nn.Module):
    """tanh_lin i-v law (module docstring) from a constants dict (`fit_tanh_lin`, json meta["surrogate"])."""

    def __init__(self, const: Dict, dtype=torch.float64, cell: str = "tanh_lin", corner: str = "?"):
        super().__init__()
        if int(const.get("format", 0)) != FORMAT:
            raise ValueError(f"{cell}/{corner}: surrogate constants format {const.get('format')} != {FORMAT}")
        self.cell, self.corner, self.const = cell, corner, const
        f = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)
        for nm in _TABLES:
            self.register_buffer(nm, f(const[nm]))
        self.v_cm = float(const["v_cm"])
        self.kmax = 2 ** self.slope_bit_per_V.shape[-1] - 1
        self.omin, self.omax = 0, 2 ** (self.bias_bit.numel() - 1) - 1
        self.i_fs = float(const["i_fs_A"])

    @classmethod
    def from_json(cls, path, **kw) -> "TanhLinStructSurrogate":
        """From a characterization <corner>.json with the constants in meta["surrogate"]."""
        ct = CodeTable.from_json(path)
        if "surrogate" not in ct.meta:
            raise ValueError(f"{ct.cell}/{ct.corner}: {path} has no meta['surrogate'] (re-analyse the table)")
        return cls(ct.meta["surrogate"], cell=ct.cell, corner=ct.corner, **kw)

    @classmethod
    def from_files(cls, npz, json_path=None, refit: bool = False, **kw) -> "TanhLinStructSurrogate":
        """From a characterization <corner>.npz and its json (constants in meta["surrogate"]; refit from the npz if
        absent or `refit`)."""
        npz = Path(npz)
        ct = CodeTable.from_json(Path(json_path) if json_path else npz.with_suffix(".json"))
        const = ct.meta.get("surrogate")
        if refit or const is None:
            const = fit_from_table(CellTable.load(npz), ct)
        return cls(const, cell=ct.cell, corner=ct.corner, **kw)

    def _consts(self) -> Dict[str, torch.Tensor]:
        k = {nm: getattr(self, nm) for nm in _TABLES}
        k["v_cm"] = self.v_cm
        return k

    def current_hw(self, cs, cd, o, vs, vd):
        """Current (A) taken from s and put into d; cs, cd signed gain codes (negative = gates swapped), o the offset
        code: integer tensors broadcastable to vs, vd (volts). Differentiable in vs, vd."""
        cs, cd, o = self._codes(cs, cd, o, vs.device)
        dt = self.amp_A.dtype
        cs, cd, o, vs_, vd_ = torch.broadcast_tensors(cs, cd, o, vs.to(dt), vd.to(dt))
        return tanh_lin_law(self._consts(), cs, cd, o, vs_, vd_).to(vs.dtype)


# ------------------------------------------------------------------------------------------------------ fit
def fit_from_table(table: CellTable, codetab: CodeTable, hold: Sequence = (), **kw) -> Dict:
    """`fit_tanh_lin` on a characterization (CellTable + CodeTable, with the front-end sweep from table.extra if
    it holds one), holding the code triples `hold` out."""
    s = table.scalars or codetab.meta.get("summary", {})
    return fit_tanh_lin(table.vs, table.vd, [tuple(int(x) for x in c) for c in s["combos"]], table.i_d,
                        float(s["i_fs_A"]), float(s.get("vcm_V", 0.9)), int(codetab.meta.get("bits", 4)),
                        int(codetab.meta.get("obits", 4)), hold=hold, frontend=frontend_of(table), **kw)


def frontend_of(table: CellTable):
    """The front-end sweep (x (M,), residual (2 inputs, 2 signs, M)) saved in a table's extra arrays, or None."""
    x = table.extra
    return (x["frontend_x_V"], x["frontend_residual_V"]) if "frontend_residual_V" in x else None


def _layout(nb: int, nob: int, n: int, nd: int):
    """Fit parameter vector: name -> (shape, scale to physical units)."""
    return (("slope_bit_per_V", (2, 2, nb), 4.5), ("offset_bit", (2, 2, nb), 0.01), ("resid_mV", (2, n - 1), 1e-3),
            ("load_per_full_code", (2,), 0.01), ("load_quad", (2,), 0.01), ("load_cross", (), 0.01),
            ("offset_cross", (), 0.01), ("bias_bit", (1 + nob,), 1.0), ("shape_u", (2,), 0.01), ("amp", (nd,), 1e-3),
            ("shift", (nd,), 1e-3), ("bell", (nd,), 1e-3), ("odd", (), 1e-3))


class _Fit:
    """The fit problem: surfaces i_d (combos, ND, NS) on the grids, parameters packed in one vector."""

    def __init__(self, vs, vd, combos, i_d, i_fs, v_cm, nb, nob, ridge, frontend=None):
        self.vs, self.vd = (torch.as_tensor(np.asarray(a, np.float64)) for a in (vs, vd))
        if frontend is None:            # no front-end sweep: a zero fine residual on a two-point grid
            frontend = (np.array([-1.0, 1.0]), np.zeros((2, 2, 2)))
        self.fine_x, self.fine_res = (torch.as_tensor(np.asarray(a, np.float64)) for a in frontend)
        self.x_grid = self.vs - v_cm
        self.mid = int(torch.argmin(self.x_grid.abs()))
        self.lay = _layout(nb, nob, len(vs), len(vd))
        self.i_fs, self.v_cm, self.ridge, self.nb = i_fs, v_cm, ridge, nb
        VD, VS = torch.meshgrid(self.vd, self.vs, indexing="ij")
        c = torch.tensor(combos, dtype=torch.long)[:, :, None, None].expand(-1, -1, len(vd), len(vs))
        self.cs, self.cd, self.o = c[:, 0], c[:, 1], c[:, 2]
        self.VS, self.VD = VS.expand(len(combos), -1, -1), VD.expand(len(combos), -1, -1)
        self.meas = torch.as_tensor(np.asarray(i_d, np.float64))

    def p0(self) -> np.ndarray:
        nb, nob = self.nb, dict((nm, sh) for nm, sh, _ in self.lay)["bias_bit"][0] - 1
        parts = {"slope_bit_per_V": torch.ones(2, 2, 1) * 2.0 ** torch.arange(nb),
                 "bias_bit": torch.cat([torch.tensor([-0.34 * 2 ** (nob - 1)]), 0.34 * 2.0 ** torch.arange(nob)])}
        return torch.cat([parts.get(nm, torch.zeros(sh)).reshape(-1) for nm, sh, _ in self.lay]).numpy()

    def consts(self, p) -> Dict[str, torch.Tensor]:
        p, out, j = torch.as_tensor(p), {}, 0
        for nm, sh, sc in self.lay:
            sz = int(np.prod(sh, dtype=int))
            out[nm] = p[j:j + sz].reshape(sh) * sc
            j += sz
        r = out.pop("resid_mV")
        out["input_residual_V"] = torch.cat([r[:, :self.mid], torch.zeros(2, 1), r[:, self.mid:]], 1)
        out["amp_A"] = self.i_fs * (1 + out.pop("amp"))
        out["shift_A"], out["bell_A"] = self.i_fs * out.pop("shift"), self.i_fs * out.pop("bell")
        out["odd_A"] = self.i_fs * out.pop("odd")
        out.update(x_grid_V=self.x_grid, vd_grid_V=self.vd, v_cm=self.v_cm, fine_x_V=self.fine_x,
                   fine_residual_V=self.fine_res)
        return out

    def err(self, p, sel) -> torch.Tensor:
        """(law - measured) / i_fs of the combos `sel` (bool), (n_sel, ND, NS)."""
        k = self.consts(p)
        return (tanh_lin_law(k, self.cs[sel], self.cd[sel], self.o[sel], self.VS[sel], self.VD[sel])
                - self.meas[sel]) / self.i_fs

    def solve(self, sel, powers=(2, 8), nfev: int = 80) -> np.ndarray:
        """Least squares (power 2), then towards minimax: residuals sign(e) |100 e|^(q/2) (an L_q objective)."""
        from scipy.optimize import least_squares
        p = self.p0()
        nr = sum(int(np.prod(sh, dtype=int)) for nm, sh, _ in self.lay[:2])
        nres = 2 * (len(self.vs) - 1)
        for q in powers:
            def res(t, q=q):
                e = self.err(t, sel).reshape(-1)
                e = e if q == 2 else torch.sign(e) * (100 * e.abs() + 1e-12) ** (q / 2)
                return torch.cat([e, self.ridge * t[nr:nr + nres]])
            jac = lambda t: torch.func.jacfwd(res)(torch.as_tensor(t)).numpy()
            p = least_squares(lambda t: res(torch.as_tensor(t)).numpy(), p, jac=jac, method="trf", max_nfev=nfev).x
        return p


def fit_tanh_lin(vs, vd, combos, i_d, i_fs: float, v_cm: float = 0.9, bits: int = 4, obits: int = 4,
                 hold: Sequence = (), ridge: float = 1e-3, powers=(2, 8), nfev: int = 80, frontend=None) -> Dict:
    """Fit the surrogate constants to the surfaces i_d (n_combos, ND, NS) of the code triples `combos` (cs, cd, o)
    over the grids vs (NS,), vd (ND,); `hold`: triples left out of the fit; `frontend`: the front-end sweep
    (x (M,) in V from v_cm, input-referred residual (2 inputs, 2 signs, M) in V; `tanh_lin.frontend_sweep`), the
    law's fine residual f_i (None: zero). Residuals in units of i_fs, a ridge `ridge` on the coarse residual
    corrections (mV); least squares, then an L_8 refinement (`_Fit.solve`). Returns the
    json-serializable constants with the max deviation (% FS) over the fitted triples, over the held-out ones, the
    per-triple figures and where the worst point is."""
    combos = [tuple(int(x) for x in c) for c in combos]
    hold = {tuple(int(x) for x in h) for h in hold}
    use = torch.tensor([c not in hold for c in combos])
    F = _Fit(vs, vd, combos, i_d, i_fs, v_cm, bits, obits, ridge, frontend)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # a small problem: one thread is ~100x faster than an oversubscribed pool
    try:
        p = F.solve(use, powers, nfev)
    finally:
        torch.set_num_threads(threads)
    k = F.consts(p)
    with torch.no_grad():
        dev = 100 * F.err(p, torch.ones(len(combos), dtype=torch.bool)).abs().numpy()
    per = dev.reshape(len(combos), -1).max(1)

    def worst(sel):
        j, a, b = np.unravel_index(int(np.argmax(np.where(sel[:, None, None], dev, -1))), dev.shape)
        return dict(combo=list(combos[j]), vs_V=float(F.vs[b]), vd_V=float(F.vd[a]), pct_fs=float(dev[j, a, b]))
    u = use.numpy()
    out = dict(format=FORMAT, v_cm=v_cm, i_fs_A=i_fs, ridge=ridge, lp_powers=list(powers),
               **{nm: (k[nm].tolist()) for nm in _TABLES},
               held_out=[list(h) for h in sorted(hold)], max_dev_pct_fs=float(per[u].max()), max_dev_at=worst(u),
               max_dev_held_out_pct_fs=float(per[~u].max()) if (~u).any() else None,
               max_dev_held_out_at=worst(~u) if (~u).any() else None,
               max_dev_per_combo_pct_fs={",".join(map(str, c)): float(d) for c, d in zip(combos, per)},
               law="u = (sum_i W_i(c_i) (x_i + f_i(x_i) + r_i(x_i)) + Z_i(c_i) + z_x |cs||cd|/225 + B[o]) / "
                   "(1 + sum_i (g_i |c_i|/15 + q_i (|c_i|/15)^2) + g_x |cs||cd|/225); u += e_2 tanh(u)^2 + "
                   "e_3 tanh(u) (1 - tanh(u)^2); t = tanh(u); "
                   "i = a(vd) t + s(vd) + b(vd) (1 - t^2) + k t (1 - t^2); W, Z: sums of per-bit values (per input "
                   "and sign), B: b0 + sum of o's bit weights, f_i: the front-end sweep's residual (per sign), "
                   "r_i, a, s, b piecewise linear on the grids")
    return out
