"""ReLU edge cell, difference form, rectified in the current domain.

    i(s->d) = (code/15) * relu(G0 (vs - vd) + (ocode - 2^(obits-1)) * I_ub)

  - linear transconductor: nfet pair with split tails (2 x I_T, enable-gated) and a sky130 xhigh-poly
    degeneration resistor between the sources: I_A - I_B ~ 2 (vs - vd) / (R + 2/gm) = G0 (vs - vd);
  - the pair currents go to cascoded pfet_lvt diodes; node X receives I_A - I_B plus the bipolar bias DAC
    ((ocode - 2^(obits-1)) I_ub, pfet source legs against a fixed nfet sink);
  - X drives a diode-connected nfet (the rectifier: it only conducts the positive part), built of
    2^bits - 1 unit devices; binary-weighted copies (magnitude code bits, each leg also behind an enable
    switch) sink code/(2^bits-1) of it from s, and the same through a cascoded pfet_lvt mirror into d.
"""
from __future__ import annotations


import numpy as np

from ..pdk import Pdk
from . import library as L

DEFAULTS = dict(bits=4, obits=4, pair="nfet_lvt", w_in=4.0, l_in=1.0, w_u=2.0, l_u=8.0, tail_units=30, r_deg=530e3,
                w_r=0.35, w_p=2.0, l_p=2.0, w_n=1.0, l_n=2.0, w_sw=1.0, l_sw=0.15, cascode=True, w_pc=2.0,
                l_pc=1.0, w_nc=4.0, l_nc=1.0, pfet="pfet_lvt", w_o=1.0, l_o=2.0, ub_units=2,
                dac_cascode=False, unit_copies=False)   # the characterized design (experiments: docs/cells.md)


def relu_diff_subckt(pdk: Pdk, sign: int = 1, name: str | None = None, **kw) -> L.Subckt:
    p = dict(DEFAULTS); p.update(kw)
    n, m = int(p["bits"]), int(p["obits"])
    name = name or f"kc_relu_diff_{'p' if sign > 0 else 'n'}{n}_{m}"
    ga, gb = ("s", "d") if sign > 0 else ("d", "s")
    f = lambda *a: L._fet(pdk, *a)
    mir = lambda *a: L._mirror(pdk, p, *a)
    res = pdk.device("res_xhigh")
    rs = float(res["rs_ohm_per_sq"]); wr = float(p["w_r"])
    lr = p["r_deg"] / rs * wr
    wt = p["w_u"] * p["tail_units"]
    lines = [f".subckt {name} {' '.join(L.edge_pins(n, m))}",
             f"* kchip relu_diff edge cell, sign {sign:+d}, {n}-bit gain, {m}-bit bipolar bias",
             "* degenerated pair with split tails (enable-gated)",
             f(p.get("pair", "nfet"), "M1", "na", ga, "sa", "vss", p["w_in"], p["l_in"]),
             f(p.get("pair", "nfet"), "M2", "nb", gb, "sb", "vss", p["w_in"], p["l_in"]),
             (f"XR sa sb vss {res['name']} w={wr:g} l={lr:.2f}" if not p.get("r_ideal") else
              f"RDEG sa sb {p['r_deg']:.6g}"),
             f("nfet", "SEA", "sa", "en", "ta", "vss", p["w_sw"] * 4, p["l_sw"]),
             f("nfet", "SEB", "sb", "en", "tb", "vss", p["w_sw"] * 4, p["l_sw"]),
             f("nfet", "MTA", "ta", "vbn", "vss", "vss", wt, p["l_u"]),
             f("nfet", "MTB", "tb", "vbn", "vss", "vss", wt, p["l_u"]),
             "* pfet diodes; into X: I_A - I_B",
             *mir("pfet", "PA", "na", "na", "vdd", True), *mir("pfet", "PB", "nb", "nb", "vdd", True),
             *mir("pfet", "PAX", "x", "na", "vdd", False),
             *mir("pfet", "PBX", "nbx", "nb", "vdd", False),
             *mir("nfet", "NBX", "nbx", "nbx", "vss", True),
             *mir("nfet", "NBS", "x", "nbx", "vss", False),
             "* bipolar bias DAC: local pfet diode of ub_units units, binary pfet legs, fixed sink",
             *([f("nfet", f"BU{j}", "pb", "vbn", "vss", "vss", p["w_u"], p["l_u"]) for j in range(p["ub_units"])]
               if p.get("unit_copies") else
               [f("nfet", "BU", "pb", "vbn", "vss", "vss", p["w_u"] * p["ub_units"], p["l_u"])])]
    if p.get("dac_cascode"):
        # low-voltage cascoded pfet diode and legs (gate vcp): the legs' drains sit at the rectifier
        # node (~0.5 V) while the diode's sits at vdd - V_SG; without cascodes that V_DS difference made
        # the DAC 5-7 % non-linear
        lines += [f("pfet_lvt", "BP", "bpx", "pb", "vdd", "vdd", p["w_p"], p["l_p"] * 2),
                  f("pfet_lvt", "BPC", "pb", "vcp", "bpx", "vdd", p["w_pc"], p["l_pc"])]
    else:
        lines.append(f("pfet_lvt", "BP", "pb", "pb", "vdd", "vdd", p["w_p"], p["l_p"] * 2))
    for k in range(m):
        leg = f"bl{k}"
        if p.get("dac_cascode"):
            lines += [f("pfet_lvt", f"BL{k}_{j}", f"blx{k}", "pb", "vdd", "vdd", p["w_p"], p["l_p"] * 2)
                      for j in range(2 ** k)]      # unit copies: no narrow-width ratio error
            lines.append(f("pfet_lvt", f"BLC{k}", leg, "vcp", f"blx{k}", "vdd", p["w_pc"] * 2 ** k, p["l_pc"]))
        elif p.get("unit_copies"):
            lines += [f("pfet_lvt", f"BL{k}_{j}", leg, "pb", "vdd", "vdd", p["w_p"], p["l_p"] * 2)
                      for j in range(2 ** k)]
        else:
            lines.append(f("pfet_lvt", f"BL{k}", leg, "pb", "vdd", "vdd", p["w_p"] * 2 ** k, p["l_p"] * 2))
        lines.append(f("pfet_lvt", f"BS{k}", "xe", f"o{k}b", leg, "vdd", p["w_sw"] * 2 ** k, p["l_sw"] * 2.4))
        # o{k}b = inverted bit (pfet switch on when the bit is 1): local inverter
        lines.append(f("nfet", f"IN{k}", f"o{k}b", f"o{k}", "vss", "vss", 0.42, 0.15))
        lines.append(f("pfet", f"IP{k}", f"o{k}b", f"o{k}", "vdd", "vdd", 0.42, 0.15))
    half = 2 ** (m - 1)
    lines += [f("nfet", "SXE", "xe", "en", "x", "vss", p["w_sw"] * 4, p["l_sw"]),
              *([f("nfet", f"BSK{j}", "xk", "vbn", "vss", "vss", p["w_u"], p["l_u"])
                 for j in range(p["ub_units"] * half)] if p.get("unit_copies") else
                [f("nfet", "BSK", "xk", "vbn", "vss", "vss", p["w_u"] * p["ub_units"] * half, p["l_u"])]),
              f("nfet", "BSKE", "x", "en", "xk", "vss", p["w_sw"] * 4, p["l_sw"]),
              "* rectifier: diode nfet of 2^bits-1 units at X"]
    units = 2 ** n - 1
    lines.append(f("nfet", "NR", "x", "x", "vss", "vss", p["w_o"] * units, p["l_o"]))
    # output legs: sink from s, and sink from y (pfet mirror -> d)
    for tgt, tag in (("s", "S"), ("y", "Y")):
        for k in range(n):
            top = f"o{tag}{k}c"
            if p["cascode"]:
                lines.append(f("nfet", f"O{tag}C{k}", tgt, "vcn", top, "vss", p["w_nc"] * 2 ** k, p["l_nc"]))
            else:
                top = tgt
            lines.append(f("nfet", f"O{tag}S{k}", top, f"b{k}", f"o{tag}e{k}", "vss", p["w_sw"] * 2 ** k, p["l_sw"]))
            lines.append(f("nfet", f"O{tag}E{k}", f"o{tag}e{k}", "en", f"o{tag}u{k}", "vss", p["w_sw"] * 2 ** k,
                           p["l_sw"]))
            lines.append(f("nfet", f"O{tag}U{k}", f"o{tag}u{k}", "x", "vss", "vss", p["w_o"] * 2 ** k, p["l_o"]))
    lines += ["* pfet mirror y -> d", *mir("pfet", "PY", "y", "y", "vdd", True),
              *mir("pfet", "PYD", "d", "y", "vdd", False), f".ends {name}"]
    return L.Subckt(name, L.edge_pins(n, m), "\n".join(lines), p)


# ------------------------------------------------------------------------------------------ characterization
def _combos(kind):
    """Characterized (code, ocode) pairs: every magnitude bit alone and the extremes at zero bias, and
    every other offset code at full magnitude (a full 16 x 16 set costs ~20 min of ngspice on 2 cores)."""
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    mags = [0] + [2 ** k for k in range(kind.bits)] + [full]
    offs = sorted((set(range(0, 2 ** kind.obits, 2)) | {2 ** kind.obits - 1}) - {half})
    return [(c, half) for c in mags] + [(full, o) for o in offs]


def _fit_relu(dv, i, i_min: float = 1e-9):
    """Least squares i = relu(g dv + b) -> (g, b); None if fewer than 3 points conduct more than i_min."""
    from scipy.optimize import least_squares
    on = i > max(0.01 * np.max(np.abs(i)), i_min)
    if on.sum() < 3:
        return None
    g0, b0 = np.polyfit(dv[on], i[on], 1)
    r = least_squares(lambda p: np.maximum(p[0] * dv + p[1], 0) - i, x0=[g0, b0], x_scale=[abs(g0) + 1e-9, 1e-7])
    return float(r.x[0]), float(r.x[1])


def char_relu(pdk, kind, corner, n_mc):
    from .characterize import _header, _inst
    from ..sim.ngspice import run_deck
    sub = kind.subckt(pdk)
    combos = _combos(kind)
    lo, hi = kind.vcm - kind.span, kind.vcm + kind.span
    n = int(round((hi - lo) / kind.step)) + 1
    vd_step = kind.span / 2
    vd_grid = kind.vcm + vd_step * np.array([-1.0, 0.0, 1.0])
    nd = len(vd_grid)
    # rshunt: a 1e12 ohm path at every node (<= 1.2 pA) - halves the Newton work of the rectifier's
    # high-impedance off states
    lines = [ln.replace(".options ", ".options rshunt=1e12 ") for ln in
             _header(pdk, kind, corner, sub, "DC surfaces")] + [f"Vs s 0 dc {kind.vcm}", f"Vd d 0 dc {kind.vcm}"]
    for c, o in combos:
        lines += _inst(kind, sub, f"c{c}o{o}", c, o)
    lines += _inst(kind, sub, "off", 2 ** kind.bits - 1, 2 ** kind.obits - 1, en="0")
    lines += [f".dc Vs {lo:.4f} {hi:.4f} {kind.step:.4f} Vd {vd_grid[0]:.4f} {vd_grid[-1]:.4f} {vd_step:.4f}",
              ".end"]
    res = run_deck("\n".join(lines), cell=kind.name, point=f"DC surface grid at corner {corner}",
                   expect_points=[n * nd])
    dc = res.plots[0]
    grid = lo + kind.step * np.arange(n)
    shp = (nd, n)
    i_d = np.stack([dc[f"i(vmdc{c}o{o})"].reshape(shp) for c, o in combos])
    i_s = np.stack([dc[f"i(vmsc{c}o{o})"].reshape(shp) for c, o in combos])
    i_dd = np.stack([dc[f"i(vddc{c}o{o})"].reshape(shp) for c, o in combos])
    leak = float(max(np.max(np.abs(dc["i(vmdoff)"])), np.max(np.abs(dc["i(vmsoff)"]))))
    i_ub = float(sub.params["ub_units"]) * kind.i_unit
    return analyze_relu(kind, corner, combos, grid, vd_grid, i_d, i_s, i_dd, leak, res.wall_s, i_ub)


def analyze_relu(kind, corner, combos, grid, vd_grid, i_d, i_s, i_dd, leak, wall, i_ub):
    """Fits, figures of merit and code tables of the ReLU cell from its surfaces (no simulation)."""
    from .tables import CellTable, CodeParam, CodeTable
    combos = [tuple(int(x) for x in cb) for cb in combos]
    n, nd = len(grid), len(vd_grid)
    VS, VD = np.meshgrid(grid, vd_grid)
    DV = VS - VD
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    a_nom = np.array([c / full for c, _ in combos])
    b_nom = np.array([(o - half) * i_ub for _, o in combos])
    from scipy.optimize import minimize_scalar

    def ideal(G):
        return a_nom[:, None, None] * np.maximum(G * DV[None] + b_nom[:, None, None], 0)
    # per-combo fits (relu(g dv + b)); the cell transconductance G0 = median of the full-code slopes
    fits = [_fit_relu(DV.ravel(), i_d[j].ravel()) for j in range(len(combos))]
    g_full = [fits[j][0] for j, (c, o) in enumerate(combos) if c == full and fits[j]]
    G0 = float(np.median(g_full)) if g_full else float(
        minimize_scalar(lambda G: np.sum((i_d - ideal(G)) ** 2), bounds=(1e-7, 2e-5), method="bounded").x)
    Gs = np.linspace(0.7 * G0, 1.3 * G0, 241)
    devs = [np.max(np.abs(i_d - ideal(G))) for G in Gs]
    G_mm = float(Gs[int(np.argmin(devs))])
    i_fs = float(np.max(np.abs(ideal(G_mm))))
    dev = float(min(devs)) / i_fs
    inner = (np.abs(VS - kind.vcm) <= 2 * kind.span / 3 + 1e-9) & (np.abs(VD - kind.vcm) <= 2 * kind.span / 3 + 1e-9)
    dev_inner = float(min(np.max(np.abs(i_d - ideal(G))[:, inner]) for G in Gs)) / i_fs
    dev_fit_inner = 0.0
    for j in range(len(combos)):
        f_in = _fit_relu(DV[inner], i_d[j][inner])
        model = np.maximum(f_in[0] * DV + f_in[1], 0) if f_in else np.zeros_like(DV)
        dev_fit_inner = max(dev_fit_inner, float(np.max(np.abs(i_d[j] - model)[inner])) / i_fs)
    dev_fit = 0.0
    for j, ft in enumerate(fits):
        if ft is not None:
            dev_fit = max(dev_fit, float(np.max(np.abs(i_d[j] - np.maximum(ft[0] * DV + ft[1], 0)))) / i_fs)
    # code tables: gain per magnitude code (at the zero-bias offset code), bias per offset code (at full code)
    gains, biases = [], []
    for j, (c, o) in enumerate(combos):
        if o == half:
            gains.append((c, fits[j][0] if fits[j] else a_nom[j] * G_mm))
    # offset codes whose surface conducts at >= 6 grid points give a reliable intercept; the others
    # (mostly off over the input range) are filled from those
    obs = [(o, fits[j][1]) for j, (c, o) in enumerate(combos)
           if c == full and fits[j] and np.count_nonzero(i_d[j] > 1e-9) >= 6]
    # codes not measured (or fully off over the input range): piecewise-linear between measured codes,
    # linear extrapolation (slope of the measured ones) beyond them
    obs.sort()
    xo, yo = np.array([x for x, _ in obs], float), np.array([y for _, y in obs], float)
    po = np.polyfit(xo, yo, 1) if len(obs) >= 2 else [i_ub, -half * i_ub]
    for o in range(2 ** kind.obits):
        f = dict(obs).get(o)
        if f is None and len(obs) >= 2:
            if xo[0] <= o <= xo[-1]:
                f = float(np.interp(o, xo, yo))
            elif o < xo[0]:
                f = float(yo[0] + po[0] * (o - xo[0]))
            else:
                f = float(yo[-1] + po[0] * (o - xo[-1]))
        elif f is None:
            f = float((o - half) * i_ub)
        biases.append((o, f))
    gains.sort(); biases.sort()
    kcl = float(np.max(np.abs(i_d - i_s))) / i_fs
    nominal = ideal(G_mm)
    zero_ok = tuple(j for j in range(len(combos)) if np.max(np.abs(nominal[j])) < 0.01 * i_fs)
    table = CellTable(kind.name, corner, np.arange(len(combos)), grid, vd_grid, i_d, i_s, i_dd, {}, zero_ok)
    summary = dict(cell=kind.name, corner=corner, i_fs_A=i_fs, i_unit_A=kind.i_unit, i_bias_unit_A=i_ub,
                   vcm_V=kind.vcm, span_V=kind.span, grid_step_V=kind.step, grid_points=int(n * nd),
                   vd_rows_V=vd_grid.tolist(),
                   combos=[list(x) for x in combos], gain_G0_A_per_V=G_mm,
                   max_dev_pct_fs=100 * dev, max_dev_percode_fit_pct_fs=100 * dev_fit,
                   inner_span_V=2 * kind.span / 3, max_dev_inner_pct_fs=100 * dev_inner,
                   max_dev_percode_fit_inner_pct_fs=100 * dev_fit_inner,
                   kcl_mismatch_pct_fs=100 * kcl, leakage_disabled_A=leak,
                   leakage_pct_of_i_unit=100 * leak / kind.i_unit, wall_s_dc=wall, mc_n=0,
                   ideal_law="i = (code/15) * relu(G0*(vs-vd) + (ocode-8)*I_ub)",
                   supply_current_A={f"{c},{o}": float(i_dd[j, nd // 2, n // 2]) for j, (c, o) in enumerate(combos)})
    codetab = CodeTable(kind.name, corner, {
        "gain": CodeParam([g[0] for g in gains], [g[1] for g in gains]),
        "bias": CodeParam([b[0] for b in biases], [b[1] for b in biases])},
        units={"gain": "A/V", "bias": "A"},
        meta=dict(bits=kind.bits, obits=kind.obits, gain_G0_A_per_V=G_mm, i_bias_unit_A=i_ub,
                  law="i(s->d) = (code/15) * relu(G0 (vs-vd) + bias[ocode]); gain[code] = code/15 * G0",
                  table_index="CellTable codes index the (code, ocode) pairs in summary.combos",
                  bias_note="bias[ocode] is measured at code 15; scaled by code/15 at other codes"))
    table.scalars = summary
    return summary, table, codetab


def reanalyze_relu(corner: str, out_dir=None, plots: bool = True) -> dict:
    """Recompute the ReLU fits / code tables from a saved <corner>.npz (no SPICE)."""
    from pathlib import Path
    from .characterize import KINDS, REPO, write_results
    from .tables import CellTable
    kind = KINDS["relu_diff"]
    out_dir = Path(out_dir) if out_dir is not None else REPO / "characterization" / kind.name
    t = CellTable.load(out_dir / f"{corner}.npz")
    old = t.scalars
    summary, table, codetab = analyze_relu(kind, corner, old["combos"], t.vs, t.vd, t.i_d, t.i_s, t.i_dd,
                                           old["leakage_disabled_A"], old["wall_s_dc"], old["i_bias_unit_A"])
    summary["wall_s_total"] = old.get("wall_s_total")
    return write_results(kind, corner, table, codetab, summary, out_dir, plots)
