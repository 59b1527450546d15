"""tanh_lin L2 between the characterization grid points: the structural surrogate, and the chip's L2 (structural +
the triple's measured residual on the 9-point grid, bilinear: `kchip.sim.l2.surrogate_model(code_surfaces=...)`),
against surfaces measured on the 17-point grid (`tanh_lin.grid_volts(kind, 17)` holds the 9-point grid and one
point between each pair of its neighbours). Triples: the 41 characterized ones and 24 seeded random ones.
Also the cell law's deviation (4 constants of the committed json) on all 17 x 17 points of both sets: the law
deviation between the grid points and on codes never characterized.
Prints the max error in % of A on and off the 9-point grid, over the full range and within |x|, |y| <= lim.

    python benchmarks/tanh_lin_offgrid.py [--corner tt] [--jobs 2]
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main(argv=None) -> int:
    import torch
    from kchip.cells import tanh_lin as T
    from kchip.cells.characterize import KINDS, REPO
    from kchip.cells.code_surfaces import measure_code_surfaces
    from kchip.sim.l2 import _edge_bilinear, load_surrogate
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corner", default="tt")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    kind = KINDS["tanh_lin"]
    rng = np.random.default_rng(11)
    char = T._tanh_combos(kind)
    rand = set()
    while len(rand) < 24:
        rand.add((int(rng.integers(-15, 16)), int(rng.integers(-15, 16)), int(rng.integers(0, 16))))
    rand = sorted(rand - set(char))
    cs = measure_code_surfaces("tanh_lin", a.corner, char + rand, jobs=a.jobs, log=print, grid_points=17)
    print(f"{len(char) + len(rand)} triples on 17 x 17, {cs.info['measured']} measured, {cs.info['wall_s']:.0f} s")
    meta = json.loads((REPO / "characterization" / "tanh_lin" / f"{a.corner}.json").read_text())["meta"]
    amp = meta["amp_A"]
    from kchip.cells.tanh_lin_analysis import _law_surfaces
    sm = meta["summary"]
    q_law = (sm["amp_A"], sm["S_s_per_V"], sm["S_d_per_V"], sm["T_per_lsb"])
    XX, YY = np.meshgrid(cs.vs - kind.vcm, cs.vs - kind.vcm)           # (vd, vs) layout, vs fastest
    sur = load_surrogate("tanh_lin", a.corner)
    g = torch.as_tensor(cs.vs)
    VD, VS = torch.meshgrid(g, g, indexing="ij")
    on = np.zeros((17, 17), bool)
    on[::2, ::2] = True
    dist = np.abs(cs.vs - kind.vcm)
    box = np.maximum(dist[None, :], dist[:, None])
    for name, sel in (("characterized", char), ("random", rand)):
        rows = {}
        for t in sel:
            with torch.no_grad():
                m = sur.current_hw(*[torch.tensor(c) for c in t], VS, VD).numpy()
            meas = cs.i_d[cs.index(t)]
            res = torch.as_tensor(meas[::2, ::2] - m[::2, ::2])[None]
            corr = _edge_bilinear(res, g[::2].contiguous(), g[::2].contiguous(), VS.reshape(1, -1),
                                  VD.reshape(1, -1)).reshape(17, 17).numpy()
            for lim in (0.07, 0.15, 0.31):
                inside = box <= lim
                for what, e in (("structural", np.abs(m - meas)), ("L2 + code surfaces", np.abs(m + corr - meas))):
                    k = (what, lim)
                    rows[k] = max(rows.get(k, (0.0,)), (100 * float(e[inside & ~on].max()) / amp, t))
            rows[("structural on grid", 0.31)] = max(rows.get(("structural on grid", 0.31), (0.0,)),
                                                      (100 * float(np.abs(m - meas)[on].max()) / amp, t))
            # the cell law (the "ideal law it targets", constants of the committed json) on every point
            law = _law_surfaces(q_law, [t], XX, YY, kind)[0]
            rows[("cell law (% of its A)", 0.31)] = max(rows.get(("cell law (% of its A)", 0.31), (0.0,)),
                                                         (100 * float(np.abs(law - meas).max()) / q_law[0], t))
        for (what, lim), (v, t) in sorted(rows.items()):
            print(f"{a.corner} {name:13s} {what:20s} |x|,|y| <= {lim:.2f} V: max {v:.2f} % A at {t}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
