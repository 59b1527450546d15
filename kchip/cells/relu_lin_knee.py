"""Knee characterization of the relu_lin cell: where a ReLU edge's node settles.

A node driven by a relu edge whose current falls as the node moves (theta2 < 0) settles at the cell's knee, and it
stays there for the rest of the period, integrating whatever the cell still delivers below the knee. Two things
fix its end state, and the 100 mV DC grid of the characterization resolves neither:
  - the knee's position: theta3 at the knee, to ~1-2 nA (2 % of a 0.23 V swing at code 2 is 4.6 mV x 0.34 uA/V);
    the grid-fitted code tables are 5-8 nA high there at small codes (docs/results.md, relu_lin);
  - the tail below it: the clamped rectifier's translinear knee delivers I_q^2 / |u| (the surrogate's soft_relu),
    with I_q ~ 10-13 nA growing with the code (the grid fit gives ~7 nA).

Measured here: families of code triples (`knee_families`), each with s held at its own vs, their d pins on one node
swept over V_cm +- span in 2 mV steps (one .dc), the current into d. Fitted (`fit_knee`) on the o = 8 families,
where the base surrogate (tables + theta3_cm + soft knee) carries at most 150 nA:
    u' = u + delta(n) w(u),  delta(n) = d0 + d2 n^2 + d4 n^4,   I_q(n) = q0 + q1 n,   n = (|cs| + |cd|) / 15,
    w(u) = exp(-max(u, 0) / u_f)   (u_f = FADE_A: the shift acts at the knee and below it, and fades where the
                                    cell conducts, so the DC fit of the tables there is kept)
(an even polynomial in the total gain code: what the measured families follow; nothing in it is indexed by a code
triple). The families with o != 8 are held out of the fit and reported. `ReluLinSurrogate` applies the constants
from the json's meta["knee"].
"""
from __future__ import annotations

import numpy as np

STEP_V = 0.002          # the swept node's step
I_WINDOW_A = 150e-9     # fit points: where the base surrogate carries at most this much
FADE_A = 200e-9         # u_f of the knee shift's fade


def knee_families(kind):
    """(cs, cd, o, vs): difference-form families (c, -c, o) and two mixed ones, with vs chosen so that the knee
    lies inside V_cm +- span. o = 8 families (fitted) at vs = V_cm -+ 0.1 V; o != 8 families held out."""
    lo, hi = kind.vcm - 0.1, kind.vcm + 0.1
    fam = [(c, -c, 8, v) for c in (2, 3, 4, 6, 8, 10, 12, 15) for v in (lo, hi)]
    fam += [(-4, 4, 8, hi), (-10, 10, 8, lo), (15, -6, 8, kind.vcm), (6, -15, 8, kind.vcm)]
    fam += [(10, -10, 10, lo), (6, -6, 6, kind.vcm + 0.2), (12, -12, 5, kind.vcm + 0.2), (5, -5, 9, lo)]
    return fam


def _ktag(k: int) -> str:
    return f"k{k}"


def knee_sweep(pdk, kind, corner: str, jobs: int = 1):
    """ngspice: every family of `knee_families` on one swept d node -> (families, v (P,), i_d (F, P) A, wall s)."""
    from ..sim.ngspice import run_decks
    from .characterize import _header
    from .relu_lin import _inst_lin
    sub = kind.subckt(pdk)
    fam = knee_families(kind)
    lo, hi = kind.vcm - kind.span, kind.vcm + kind.span
    npts = int(round((hi - lo) / STEP_V)) + 1
    head = _header(pdk, kind, corner, sub, "knee sweeps") + [f"Vcm vcm 0 {kind.vcm}", f"Vn n 0 dc {kind.vcm}"]
    parts = [list(range(len(fam)))[j::max(1, jobs)] for j in range(max(1, jobs))]
    decks = []
    for part in parts:
        lines = list(head)
        for k in part:
            cs, cd, o, vs = fam[k]
            lines += [f"Vs{_ktag(k)} vs{_ktag(k)} 0 dc {vs:.4f}",
                      *_inst_lin(kind, sub, _ktag(k), cs, cd, o, s=f"vs{_ktag(k)}", d="n")]
        decks.append("\n".join(lines + [f".dc Vn {lo:.4f} {hi:.4f} {STEP_V:.4f}", ".end"]))
    res = run_decks(decks, jobs=max(1, jobs), cell=kind.name, point=f"knee sweeps at corner {corner}",
                    expect_points=[npts], timeout=1800)
    i_d = np.zeros((len(fam), npts))
    v = None
    for part, r in zip(parts, res):
        p = r.plots[0]
        v = np.real(p["v(n)"])
        for k in part:
            i_d[k] = np.real(p[f"i(vmd{_ktag(k)})"])
    return fam, v, i_d, float(max(r.wall_s for r in res))


def _currents(sur, fam, v, knee) -> np.ndarray:
    """Currents (F, P) A of `ReluLinSurrogate` `sur` with the knee constants `knee` (None: without the knee terms)
    for every family at the swept d voltages v."""
    import torch
    c = torch.tensor([f[:3] for f in fam], dtype=torch.long)
    vs = torch.tensor([[f[3]] for f in fam], dtype=torch.float64)
    vd = torch.as_tensor(np.asarray(v, np.float64))[None, :]
    sur.knee = knee
    with torch.no_grad():
        return sur.current_hw(c[:, 0:1], c[:, 1:2], c[:, 2:3], vs, vd).numpy()


def fit_knee(sur, fam, v, i_d, i_fs: float) -> dict:
    """Least squares of the knee constants on the o = 8 families (points where the base surrogate carries at most
    I_WINDOW_A); max |error| in nA on them and on the held-out o != 8 families, before and after. `sur` is a
    `ReluLinSurrogate` without knee terms; it is left with the fitted ones."""
    from scipy.optimize import least_squares
    base = _currents(sur, fam, v, None)
    win = base <= I_WINDOW_A
    fit = np.array([c[2] == 8 for c in fam])
    names = ("d0", "d2", "d4", "q0", "q1")

    def consts(p):
        k = dict(zip(names, [float(x) * 1e-9 for x in p]), uf=FADE_A)
        k["q0"] = abs(k["q0"])
        return k
    sel_fit = win & fit[:, None]
    r = least_squares(lambda p: (_currents(sur, fam, v, consts(p))[sel_fit] - i_d[sel_fit]) * 1e9,
                      x0=[0.0, 0.0, 0.0, sur.i_q * 1e9, 0.0])
    k = consts(r.x)
    sel_held = win & ~fit[:, None]
    err = lambda sel, model: float(np.max(np.abs(model[sel] - i_d[sel]))) * 1e9 if sel.any() else float("nan")
    after = _currents(sur, fam, v, k)
    return dict(constants=k, law="u' = u + (d0 + d2 n^2 + d4 n^4) exp(-max(u, 0) / uf), I_q = q0 + q1 n, n = (|cs| + |cd|) / 15",
                window_A=I_WINDOW_A, families=[list(c) for c in fam],
                fit_max_err_nA_before=err(sel_fit, base), fit_max_err_nA=err(sel_fit, after),
                heldout_max_err_nA_before=err(sel_held, base), heldout_max_err_nA=err(sel_held, after),
                fit_max_err_pct_fs=100 * err(sel_fit, after) * 1e-9 / i_fs)


def apply_knee(kind, corner: str, table, codetab, summary: dict, fam, v, i_d) -> dict:
    """Fit the knee constants to the sweeps (fam, v, i_d), put them into codetab.meta["knee"], the sweeps into
    table.extra and the figures into summary["knee"]: the fit, and the surrogate with the knee terms against the
    DC grid surfaces (an independent check: the constants are fitted on the sweeps only)."""
    import torch
    from .surrogate import ReluLinSurrogate
    fam = [tuple(x) for x in np.asarray(fam, float).tolist()]
    fam = [(int(a), int(b), int(c), float(e)) for a, b, c, e in fam]
    i_fs = float(summary["i_fs_A"])
    codetab.meta.pop("knee", None)
    sur = ReluLinSurrogate(codetab)
    res = fit_knee(sur, fam, np.asarray(v), np.asarray(i_d), i_fs)      # leaves sur with the fitted knee
    codetab.meta["knee"] = res["constants"]
    codetab.meta["knee_law"] = res["law"]
    VD, VS = torch.meshgrid(torch.as_tensor(table.vd), torch.as_tensor(table.vs), indexing="ij")
    combos = [tuple(int(x) for x in c) for c in summary["combos"]]
    with torch.no_grad():
        dev = max(float(np.max(np.abs(sur.current_hw(*[torch.tensor(c) for c in cb], VS, VD).numpy() - table.i_d[j])))
                  for j, cb in enumerate(combos))
    res["grid_max_dev_pct_fs"] = 100 * dev / i_fs
    summary["knee"] = res
    table.extra.update(knee_families=np.asarray(fam, float), knee_v=np.asarray(v), knee_i_d=np.asarray(i_d))
    return res
