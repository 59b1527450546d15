"""Port figures of the edge cells: output (port) conductance from the DC surfaces, and the relu_diff cell's
small-signal bandwidth (its one AC deck). The other cells' AC runs live with their decks (`characterize.run_dc`,
`relu_lin.ac_theta_bandwidths`).

An edge cell is a current source from s to d steered by vs and vd, so its output resistance is the part of the
current's dependence on a pin voltage that the law does not ask for:
  * three-parameter cells (relu_lin, tanh_lin): at cd = 0 the law does not depend on vd, so d i_d / d vd there is
    the d port's conductance; at cs = 0, d i_s / d vs is the s port's;
  * difference-form cells (tanh_diff, relu_diff): the law depends on vs - vd only, so d i / d v_cm along
    vs - vd = const is the (common-mode) output conductance.
"""
from __future__ import annotations

import numpy as np


def port_conductances(combos, vs, vd, i_d, i_s) -> dict:
    """Three-parameter cells: surfaces (combos, len(vd), len(vs)). Returns port_conductance_d_S = max over the
    cd = 0 combos and the vs columns of |least-squares slope of i_d along vd|, port_conductance_s_S likewise for
    i_s along vs at cs = 0, and output_resistance_d_ohm = 1 / port_conductance_d_S."""
    vs, vd = np.asarray(vs, float), np.asarray(vd, float)
    gd, gs = 0.0, 0.0
    for j, c in enumerate(combos):
        if c[1] == 0:
            gd = max(gd, float(np.max(np.abs(np.polyfit(vd, np.asarray(i_d[j]), 1)[0]))))
        if c[0] == 0:
            gs = max(gs, float(np.max(np.abs(np.polyfit(vs, np.asarray(i_s[j]).T, 1)[0]))))
    return dict(port_conductance_d_S=gd, port_conductance_s_S=gs,
                output_resistance_d_ohm=1 / gd if gd > 0 else float("inf"))


def cm_output_conductance(vs, vd_rows, i_d, i_min: float) -> float:
    """Difference-form cells: one surface i_d (len(vd_rows), len(vs)); for each pair of neighbouring vd rows and
    each vs - vd offered by both (vs interpolated), the slope of i_d against the common shift of vs and vd, over
    the points where the cell conducts more than i_min. Returns the largest |slope| (S)."""
    vs, vd_rows = np.asarray(vs, float), np.asarray(vd_rows, float)
    g = 0.0
    for k in range(len(vd_rows) - 1):
        lo = max(vs[0] - vd_rows[k], vs[0] - vd_rows[k + 1])
        hi = min(vs[-1] - vd_rows[k], vs[-1] - vd_rows[k + 1])
        dv = np.linspace(lo, hi, 25)
        a = np.interp(vd_rows[k] + dv, vs, i_d[k])
        b = np.interp(vd_rows[k + 1] + dv, vs, i_d[k + 1])
        on = (np.abs(a) > i_min) & (np.abs(b) > i_min)
        if on.any():
            g = max(g, float(np.max(np.abs(b - a)[on])) / float(vd_rows[k + 1] - vd_rows[k]))
    return g


def ac_relu_diff(pdk, kind, corner, codes=((15, 8), (3, 8)), dv: float = 0.1) -> dict:
    """Small-signal bandwidth of the relu_diff cell: each (code, ocode) conducting at vs = v_cm + dv, vd = v_cm,
    vs driven -> -3 dB frequency of |i_d / v_s| (bandwidth_Hz: the first code; bandwidth_per_code_Hz: all),
    its low-frequency value (A/V) and the wall time."""
    from ..sim.ngspice import run_deck
    from .characterize import _bandwidth, _header, _inst
    sub = kind.subckt(pdk)
    lines = _header(pdk, kind, corner, sub, "AC") + [f"Vs s 0 dc {kind.vcm + dv:.4f} ac 1", f"Vd d 0 dc {kind.vcm}"]
    for c, o in codes:
        lines += _inst(kind, sub, f"a{c}o{o}", c, o)
    res = run_deck("\n".join(lines + [".ac dec 10 1e3 1e9", ".end"]), cell=kind.name, point=f"AC at corner {corner}")
    ac = res.plots[-1]
    freq = np.real(ac["frequency"])
    bw, low = {}, {}
    for c, o in codes:
        mag = np.abs(ac[f"i(vmda{c}o{o})"])
        bw[f"{c},{o}"], low[f"{c},{o}"] = _bandwidth(freq, mag), float(mag[0])
    first = f"{codes[0][0]},{codes[0][1]}"
    return dict(bandwidth_Hz=bw[first], bandwidth_per_code_Hz=bw, ac_lowfreq_A_per_V=low, ac_vs_minus_vd_V=dv,
                wall_s_ac=res.wall_s)
