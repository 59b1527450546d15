"""Error budget of the tanh_lin cell's law deviation: the cell with one part at a time replaced by an ideal one.

The deviation that a slope of ~70 /V exposes comes from a chain of parts: the two front-end transconductors (each a
degenerated pair), the transport of their branch currents into X (A legs straight in; B legs through the nbx nfet
mirror, which sinks their sum from X), the loading of X, and the tanh stage. Each variant below swaps parts of
the cell for ideal ones in the netlist text and measures the same 24 full-range code triples as
`tanh_lin_law_range.py --cmax 15` (ngspice, characterization grid, cached per triple); the 4-constant law is
fitted per variant (minimax) and its max deviation printed in % of A, over V_cm +- 0.3 V and within +- 0.146 V.

  fe   both front-end pairs -> B-sources I_A,B = I0 +- G/2 (v_a - v_b) (G: the real pair's slope from
       `tanh_lin.frontend_sweep`, I0: --i0, the split tail's current)
  nbx  the nbx mirror -> nbx held at 0.6 V by a source, a CCCS sinks its current from X (gain exactly 1)
  vg   X held at REF (virtual ground: an ammeter), the tanh pair's gate driven by V(REF) + r_conv I_x, limited to
       +-0.6 V (an ideal transimpedance stage); no clamp

    python benchmarks/tanh_lin_budget.py [--design JSON] [--variants cell,fe,nbx,vg,fe+nbx,fe+nbx+vg] [--corner tt]

--design '{"w_in": 16, "l_in": 1, "tail_local": null, "w_nb": 16, "w_nc": 16}' is the session-11 cell.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _edit(text: str, parts, g: float, i0: float, r_conv: float) -> str:
    """The subcircuit text with `parts` (fe, nbx, vg) replaced by ideal ones (module docstring)."""
    out = []
    for ln in text.splitlines():
        w = ln.split()
        name = w[0] if w else ""
        if "fe" in parts and name in ("XM11", "XM21", "XR1", "XM12", "XM22", "XR2"):
            i = name[-1]
            if name.startswith("XM1"):
                out += [f"BA{i} na{i} 0 I = {i0:.6g} + {g / 2:.6g} * (V(g{i}a) - V(g{i}b))",
                        f"BB{i} nb{i} 0 I = {i0:.6g} - {g / 2:.6g} * (V(g{i}a) - V(g{i}b))"]
            continue
        if "fe" in parts and name[:4] in ("XSEA", "XSEB", "XMTA", "XMTB"):
            continue
        if "nbx" in parts and (name.startswith("XNBX") or name.startswith("XNBS")):
            continue
        if "vg" in parts and (name in ("XRC", "RRC") or name.startswith("XCL")):
            if name in ("XRC", "RRC"):
                out += ["VXT x ref 0", f"BYT y 0 V = V(ref) + max(-0.6, min(0.6, {r_conv:.6g} * I(VXT)))"]
            continue
        if "vg" in parts and name == "XTM1":
            w[2] = "y"
            ln = " ".join(w)
        out.append(ln)
        if "nbx" in parts and ln.startswith("* nbx -> X"):
            out += ["VNBX nbx 0 0.6", "FNBS x 0 VNBX 1"]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--design", default=None, help="JSON overrides of tanh_lin.DEFAULTS (a variant of the cell)")
    ap.add_argument("--variants", default="cell,fe,nbx,vg,fe+nbx,fe+nbx+vg")
    ap.add_argument("--corner", default="tt")
    ap.add_argument("--i0", type=float, default=1.47e-6, help="ideal front end's standing current per branch [A]")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    from tanh_lin_law_range import law_fit, triples
    from kchip.cells import tanh_lin as T
    from kchip.cells.characterize import KINDS
    from kchip.cells.code_surfaces import measure_code_surfaces
    from kchip.pdk import load_pdk
    pdk = load_pdk()
    kind = KINDS["tanh_lin"]
    kind.design = json.loads(a.design) if a.design else None
    fe = T.frontend_sweep(pdk, kind, a.corner)
    g = float(np.mean(np.abs(fe["slope_A_per_V"])))
    r_conv = float(dict(T.DEFAULTS, **(kind.design or {}))["r_conv"])
    tri = triples([15])
    base = T.tanh_lin_subckt
    print(f"tanh_lin error budget, {a.corner}, design {kind.design or 'default'}: {len(tri)} full-range triples; "
          f"ideal front end G = {g * 1e6:.3f} uS, I0 = {a.i0 * 1e6:.2f} uA")
    print(f"{'variant':12s} {'S_s [1/V]':>9s} {'max dev % A':>11s} {'within 146 mV':>13s} {'wall s':>6s}  worst (triple, vs, vd)")
    try:
        for v in a.variants.split(","):
            parts = set(v.split("+")) - {"cell"}
            bad = parts - {"fe", "nbx", "vg"}
            if bad:
                raise SystemExit(f"--variants: unknown part(s) {sorted(bad)} in {v!r} (fe, nbx, vg, or cell)")

            def sub(pdk_, name=None, _parts=parts, **kw):
                s = base(pdk_, name, **kw)
                s.text = _edit(s.text, _parts, g, a.i0, r_conv)
                return s
            T.tanh_lin_subckt = sub
            t0 = time.perf_counter()
            cs = measure_code_surfaces("tanh_lin", a.corner, tri, jobs=a.jobs, log=lambda *m: None)
            q, dev, dev_in, worst = law_fit(np.stack([cs.i_d[cs.index(t)] for t in tri]), tri, cs.vs, kind.vcm)
            print(f"{v:12s} {q[1]:9.2f} {dev:11.2f} {dev_in:13.2f} {time.perf_counter() - t0:6.0f}  {worst}")
    finally:
        T.tanh_lin_subckt = base
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
