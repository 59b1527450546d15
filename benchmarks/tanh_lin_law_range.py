"""How the tanh_lin cell's deviation from its ideal law grows with the slope range it is allowed to use.

For each largest slope code c_max, code triples with |cs|, |cd| <= c_max (the structured worst cases (+-c, +-c, 8),
(+-c, 0, 8), (0, +-c, 8), (c, -c, o) and seeded random triples; cumulative: a set holds every smaller set) are
measured with ngspice on the characterization grid (`kchip.cells.code_surfaces`, cached per triple), the
4-constant law A tanh(S_s cs/15 x + S_d cd/15 y + T (o - 8)) is fitted to them (least squares, then minimax) and
its max deviation is printed in % of A, over V_cm +- 0.3 V and within +- 0.146 V.

--design '{"w_in": 64}' (JSON overrides of tanh_lin.DEFAULTS) and --vcm 1.0 (the common mode the inputs swing
around, V_cm +- 0.3 V) measure a variant; with --characterize the variant is characterized instead (`kchip
characterize` into --out, no Monte Carlo): the low-gain build of docs/results.md.

    python benchmarks/tanh_lin_law_range.py [--corner tt] [--cmax 1,2,3,4,6,8,15] [--jobs 2] [--vcm 0.9]
    python benchmarks/tanh_lin_law_range.py --characterize --design '{"r_conv": 106667, "ub_div": 1}' --out build/lo
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def triples(cmax_list, seed: int = 7, per_set: int = 24):
    rng = np.random.default_rng(seed)
    sets = {}
    for c in cmax_list:
        tr = {(a, b, 8) for a in (c, -c) for b in (c, -c)}
        tr |= {(a, 0, 8) for a in (c, -c)} | {(0, a, 8) for a in (c, -c)} | {(c, -c, o) for o in (4, 6, 10, 12)}
        while len(tr) < per_set:
            tr.add((int(rng.integers(-c, c + 1)), int(rng.integers(-c, c + 1)), int(rng.integers(0, 16))))
        sets[c] = sorted(tr)
    return sorted({t for v in sets.values() for t in v})


def law_fit(i_d, combos, g, v_cm: float = 0.9):
    """Minimax 4-constant law fit -> (A, S_s, S_d, T), max |dev| / A over the grid and within +-0.146 V."""
    from scipy.optimize import least_squares, minimize
    x = np.asarray(g) - v_cm
    X, Y = np.meshgrid(x, x)
    C = np.asarray(combos, float)

    def law(q):
        u = q[1] * C[:, 0, None, None] / 15 * X + q[2] * C[:, 1, None, None] / 15 * Y + q[3] * (C[:, 2, None, None] - 8)
        return q[0] * 1e-6 * np.tanh(u)
    ls = least_squares(lambda q: (law(q) - i_d).ravel() * 1e6, [1.0, 70.0, 70.0, 0.36])
    q = minimize(lambda q: np.max(np.abs(law(q) - i_d)), ls.x, method="Nelder-Mead",
                 options=dict(xatol=1e-6, fatol=1e-13, maxiter=6000)).x
    dev = np.abs(law(q) - i_d) / (q[0] * 1e-6) * 100
    inner = (np.abs(X) < 0.15) & (np.abs(Y) < 0.15)
    j = np.unravel_index(int(np.argmax(dev)), dev.shape)
    return q, float(dev.max()), float(dev[:, inner].max()), (combos[j[0]], float(g[j[2]]), float(g[j[1]]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corner", default="tt")
    ap.add_argument("--cmax", default="1,2,3,4,6,8,15")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--design", default=None, help="JSON overrides of tanh_lin.DEFAULTS (a variant of the cell)")
    ap.add_argument("--vcm", type=float, default=None, help="input common mode [V] (default: the cell kind's 0.9)")
    ap.add_argument("--characterize", action="store_true", help="characterize the variant into --out")
    ap.add_argument("--out", default="build/tanh_lin_variant")
    a = ap.parse_args(argv)
    from kchip.cells.characterize import KINDS, characterize
    kind = KINDS["tanh_lin"]
    if a.design:
        kind.design = json.loads(a.design)
    if a.vcm is not None:
        kind.vcm = float(a.vcm)
    if a.characterize:
        s = characterize("tanh_lin", a.corner, out_dir=a.out, n_mc=0, jobs=a.jobs)
        keys = ("max_dev_pct_fs", "max_dev_at", "max_dev_percode_fit_pct_fs", "theta1_max_per_V", "theta2_max_per_V",
                "theta3_min", "theta3_max", "theta3_step", "bandwidth_theta1_Hz", "wall_s_dc")
        print(json.dumps({k: s.get(k) for k in keys}, indent=1))
        return 0
    from kchip.cells.code_surfaces import measure_code_surfaces
    cl = [int(c) for c in a.cmax.split(",")]
    tri = triples(cl)
    cs = measure_code_surfaces("tanh_lin", a.corner, tri, jobs=a.jobs, log=print)
    print(f"{len(tri)} triples, {cs.info['measured']} measured, {cs.info['wall_s']:.0f} s; V_cm {kind.vcm} V, "
          f"design {kind.design or 'default'}")
    print("c_max  triples  max theta/V  max dev % A  within 146 mV  worst (triple, vs, vd)")
    for c in cl:
        sel = [t for t in tri if abs(t[0]) <= c and abs(t[1]) <= c]
        q, dev, dev_in, worst = law_fit(np.stack([cs.i_d[cs.index(t)] for t in sel]), sel, cs.vs, kind.vcm)
        print(f"{c:5d}  {len(sel):7d}  {q[1] * c / 15:11.2f}  {dev:11.2f}  {dev_in:13.2f}  {worst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
