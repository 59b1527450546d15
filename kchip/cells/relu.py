"""ReLU edge cell, difference form, rectified in the current domain.

    i(s->d) = (code/15) * relu(G0 (vs - vd) + (ocode - 2^(obits-1)) * I_ub)

  - linear transconductor: nfet pair with split tails (2 x I_T) and a sky130 xhigh-poly
    degeneration resistor between the sources: I_A - I_B ~ 2 (vs - vd) / (R + 2/gm) = G0 (vs - vd);
  - the pair currents go to cascoded pfet_lvt diodes; node X receives I_A - I_B plus the bipolar bias DAC
    ((ocode - 2^(obits-1)) I_ub, pfet source legs against a fixed nfet sink);
  - X drives a diode-connected nfet (the rectifier: it only conducts the positive part), built of
    2^bits - 1 unit devices; binary-weighted copies (magnitude code bits) sink code/(2^bits-1) of it from s,
    and the same through a cascoded pfet_lvt mirror into d;
  - enable by output steering (default): the cell stays biased; en routes the s legs to s (else vdd) and the
    mirror output to d (else vss). enable="bias" gates the tails, bias legs, clamp and keep-alive instead,
    with pfet dumps that keep the tails conducting (slow: ~1.5 us to settle after en rises, docs/cells.md);
  - while the net current is negative an nfet follower (gate vk from kc_bias) holds X just below
    conduction instead of letting it fall to 0 V, and a keep-alive unit current (cancelled at d) keeps the
    y -> d mirror on: no dead time at a knee crossing (the residual lag: kchip.cells.relu_transient).
"""
from __future__ import annotations


import numpy as np

from ..pdk import Pdk
from . import library as L

DEFAULTS = dict(bits=4, obits=4, pair="nfet_lvt", w_in=16.0, l_in=1.0, pair_bulk="source", w_u=2.0, l_u=8.0,
                tail_units=30, r_deg=530e3, w_r=0.35, w_p=16.0, l_p=6.0, w_n=16.0, l_n=6.0, w_sw=1.0, l_sw=0.15,
                cascode=True, w_pc=24.0, l_pc=1.0, w_nc=16.0, l_nc=1.0, pfet="pfet_lvt", w_o=1.0, l_o=2.0, w_oc=2.0,
                ub_units=2, bias_cascode=True,
                clamp=True, w_k=4.0, l_k=1.0, ky_units=1, w_py=8.0, l_py=6.0, w_dump=1.0,
                enable="output", w_so=2.0)
# the characterized design (experiments: docs/cells.md). clamp: nfet follower (w_k/l_k, gate vk from kc_bias)
# holds X just below the rectifier's conduction while the net current is negative; ky_units: keep-alive
# current (unit nfets from vbn) through the y -> d pfet mirror, cancelled at d by a matched sink;
# w_py/l_py: that mirror's main devices (the pair-side pfet mirrors use w_p/l_p). enable: "output" (steer the
# outputs, w_so the steering switches) or "bias" (gate the bias paths).


def relu_diff_subckt(pdk: Pdk, sign: int = 1, name: str | None = None, **kw) -> L.Subckt:
    """Subcircuit of the ReLU cell (module docstring). Every current ratio is made of unit devices
    (instance multiplier m): tails m = tail_units, bias legs m = ub_units 2^k, fixed sink m = ub_units 2^(obits-1),
    rectifier m = 2^bits - 1, output legs m = 2^k."""
    p = dict(DEFAULTS); p.update(kw)
    n, m = int(p["bits"]), int(p["obits"])
    name = name or f"kc_relu_diff_{'p' if sign > 0 else 'n'}{n}_{m}"
    ga, gb = ("s", "d") if sign > 0 else ("d", "s")
    mir = lambda *a: L._mirror(pdk, p, *a)
    lines = [f".subckt {name} {' '.join(L.edge_pins(n, m))}",
             f"* kchip relu_diff edge cell, sign {sign:+d}, {n}-bit gain, {m}-bit offset-binary bias",
             *_pair(pdk, p, ga, gb),
             "* bias: offset-binary legs (2^k ub_units units, bit o_k) add to branch A, a fixed",
             "* 2^(obits-1) ub_units sink adds to branch B -> X gets (ocode - 2^(obits-1)) I_ub; same units, same",
             "* drain node kind (the pfet diodes), so the ratios are exact",
             *_bias_legs(pdk, p, m)]
    lines += ["* pfet diodes; into X: I_A' - I_B'",
              *mir("pfet", "PA", "na", "na", "vdd", True), *mir("pfet", "PB", "nb", "nb", "vdd", True),
              *mir("pfet", "PAX", "x", "na", "vdd", False),
              *mir("pfet", "PBX", "nbx", "nb", "vdd", False),
              *mir("nfet", "NBX", "nbx", "nbx", "vss", True),
              *mir("nfet", "NBS", "x", "nbx", "vss", False),
              *_rect_out(pdk, p, [f"b{k}" for k in range(n)]),
              f".ends {name}"]
    return L.Subckt(name, L.edge_pins(n, m), "\n".join(lines), p)


def _pair(pdk: Pdk, p: dict, ga: str, gb: str, sfx: str = "") -> list:
    """Degenerated nfet pair (gates ga, gb; drains na<sfx>, nb<sfx>) with split tails (shared by relu_diff and
    relu_lin). enable="bias": the tails are en-gated and dumped into vdd while en = 0; "output": always on."""
    f = lambda *a, **k: L._fet(pdk, *a, **k)
    res = pdk.device("res_xhigh")
    rs = float(res["rs_ohm_per_sq"]); wr = float(p["w_r"])
    lr = p["r_deg"] / rs * wr
    wu, lu = p["w_u"], p["l_u"]
    # tails: unit devices on the shared vbn line, or (tail_local = (W, L): tanh_lin's default since session 12)
    # W/L units on the local diode vbl of `relu_lin.local_tail_bias`
    tg, (wt, lt) = ("vbl", p["tail_local"]) if p.get("tail_local") else ("vbn", (wu, lu))
    na, nb, sa, sb, ta, tb = (x + sfx for x in ("na", "nb", "sa", "sb", "ta", "tb"))
    ba, bb = (sa, sb) if p["pair_bulk"] == "source" else ("vss", "vss")
    on = _on(p)
    out = ["* degenerated pair (bulk = own source: isolated p-wells) with split tails",
            f(p["pair"], f"M1{sfx}", na, ga, sa, ba, p["w_in"], p["l_in"]),
            f(p["pair"], f"M2{sfx}", nb, gb, sb, bb, p["w_in"], p["l_in"]),
            (f"XR{sfx} {sa} {sb} vss {res['name']} w={wr:g} l={lr:.2f}" if not p.get("r_ideal") else
             f"RDEG{sfx} {sa} {sb} {p['r_deg']:.6g}"),
            f("nfet", f"SEA{sfx}", sa, on, ta, "vss", p["w_sw"] * 4, p["l_sw"]),
            f("nfet", f"SEB{sfx}", sb, on, tb, "vss", p["w_sw"] * 4, p["l_sw"]),
            *[f("nfet", f"MT{x}{sfx}", t, tg, "vss", "vss", wt, lt, m=p["tail_units"]) for x, t in (("A", ta), ("B", tb))]]
    if on == "en":
        out += ["* disabled: the tails (and bias legs) keep conducting, into vdd (pfet dumps on while en = 0), so",
                "* that enabling the cell does not swing their drains and kick the shared bias lines",
                f("pfet", f"DTA{sfx}", ta, "en", "vdd", "vdd", p["w_dump"], p["l_sw"]),
                f("pfet", f"DTB{sfx}", tb, "en", "vdd", "vdd", p["w_dump"], p["l_sw"])]
    return out


def _on(p: dict) -> str:
    """Gate net of the bias-path switches: en for enable="bias", vdd (always on) for enable="output"."""
    if p.get("enable", "bias") not in ("bias", "output"):
        raise ValueError(f"enable: {p.get('enable')!r} is not 'output' or 'bias'")
    return "en" if p.get("enable", "bias") == "bias" else "vdd"


def _rect_out(pdk: Pdk, p: dict, gates: list) -> list:
    """Rectifier at X (diode nfet of 2^n - 1 units, n = len(gates)), X clamp, cascoded binary output legs
    (leg k: 2^k units behind a switch with gate gates[k]) sinking from s and from y, y -> d pfet mirror and its
    keep-alive (shared by relu_diff and relu_lin; relu_lin ties every leg gate to vdd: fixed full scale)."""
    f = lambda *a, **k: L._fet(pdk, *a, **k)
    n = len(gates)
    wu, lu = p["w_u"], p["l_u"]
    on, steer = _on(p), p.get("enable", "bias") == "output"
    lines = ["* rectifier: diode nfet of 2^bits-1 units at X (conducts only the positive part)",
             f("nfet", "NR", "x", "x", "vss", "vss", p["w_o"], p["l_o"], m=2 ** n - 1)]
    if p.get("clamp"):
        # the follower sources the negative net current into X, so X stays where NR carries I_q^2 / |I_net|
        # (I_q ~ 8 nA ~ 0.3 % FS, set by kc_bias) instead of falling to 0 V: no dead time at a knee crossing.
        # Behind a switch SK (gate en for enable="bias": en = 0 -> no current into X, X falls, the legs are off).
        lines += ["* clamp: nfet follower from vdd (gate vk) holds X just below conduction",
                  f("nfet", "SK", "kd", on, "vdd", "vss", p["w_sw"], p["l_sw"]),
                  f("nfet", "MK", "kd", "vk", "x", "vss", p["w_k"], p["l_k"])]
    # output legs (cascoded): sink code/(2^bits-1) of the rectified current from s, and from y (-> pfet
    # mirror -> d). enable="bias": no enable switch needed here, en = 0 removes every current into X, so X
    # falls and the legs are off. enable="output": the steering switches below.
    dout = "d"
    if steer:
        # enable by output steering: the whole cell stays biased and settled; en = 1 connects the s legs to s
        # and the mirror output (after the keep-alive cancel sink) to d, en = 0 hands them to vdd / vss
        # (docs/cells.md: the bias-gated cell needed ~1.5 us to settle after en rose in a chip)
        dout = "do"
        lines += ["* output steering: the s legs sink from s while en = 1, from vdd while en = 0; the y -> d",
                  "* mirror output (minus the keep-alive) goes to d while en = 1, to vss while en = 0",
                  f("nfet", "ESO", "s", "en", "so", "vss", p["w_so"], p["l_sw"]),
                  f("pfet", "DSO", "so", "en", "vdd", "vdd", p["w_so"], p["l_sw"]),
                  f("nfet", "IVN", "enb", "en", "vss", "vss", 1.0, p["l_sw"]),
                  f("pfet", "IVP", "enb", "en", "vdd", "vdd", 2.0, p["l_sw"]),
                  f("pfet", "EDO", "d", "enb", "do", "vdd", 2 * p["w_so"], p["l_sw"]),
                  f("nfet", "DDO", "do", "enb", "vss", "vss", p["w_so"], p["l_sw"])]
    for tgt, tag in ((("so" if steer else "s"), "S"), ("y", "Y")):
        for k in range(n):
            top = f"o{tag}{k}c"
            lines.append(f("nfet", f"O{tag}C{k}", tgt, "vcn", top, "vss", p["w_oc"], p["l_nc"], m=2 ** k))
            lines.append(f("nfet", f"O{tag}S{k}", top, gates[k], f"o{tag}u{k}", "vss", p["w_sw"], p["l_sw"], m=2 ** k))
            lines.append(f("nfet", f"O{tag}U{k}", f"o{tag}u{k}", "x", "vss", "vss", p["w_o"], p["l_o"], m=2 ** k))
    py = dict(p, w_p=p.get("w_py", p["w_p"]), l_p=p.get("l_py", p["l_p"]))
    miry = lambda *a: L._mirror(pdk, py, *a)
    dsw = p.get("d_switch") and not steer
    lines += ["* pfet mirror y -> d", *miry("pfet", "PY", "y", "y", "vdd", True),
              *miry("pfet", "PYD", "yd" if dsw else dout, "y", "vdd", False)]
    if dsw:
        # disabled: the pfet_lvt mirror leaks ~0.1 nA at V_SG = 0 (fs); a standard-V_T pfet switch (gate enb)
        # between it and d cuts that (relu_lin only: relu_diff's text is unchanged without d_switch)
        lines += ["* output switch at d (standard pfet, on while en = 1); enb = not en",
                  f("pfet", "IEP", "enb", "en", "vdd", "vdd", 0.84, 0.15),
                  f("nfet", "IEN", "enb", "en", "vss", "vss", 0.42, 0.15),
                  f("pfet", "SYD", "d", "enb", "yd", "vdd", p.get("w_dsw", 2.0), p.get("l_dsw", p["l_sw"]))]
    ky = int(p.get("ky_units") or 0)
    if ky:
        # keep-alive: ky unit currents always flow through PY (y never floats up to vdd when the rectified
        # current is zero: no dead time there either); PYD copies them into d, where a matched sink removes them
        lines += ["* keep-alive of the y mirror (ky units from vbn, cascoded), cancelled at d",
                  f("nfet", "KYC", "y", "vcn", "kyq", "vss", p["w_oc"], p["l_nc"], m=ky),
                  f("nfet", "KYS", "kyq", on, "kyu", "vss", p["w_sw"], p["l_sw"], m=ky),
                  f("nfet", "KYU", "kyu", "vbn", "vss", "vss", wu, lu, m=ky),
                  f("nfet", "KDC", dout, "vcn", "kdq", "vss", p["w_oc"], p["l_nc"], m=ky),
                  f("nfet", "KDS", "kdq", on, "kdu", "vss", p["w_sw"], p["l_sw"], m=ky),
                  f("nfet", "KDU", "kdu", "vbn", "vss", "vss", wu, lu, m=ky)]
    return lines


def _bias_legs(pdk: Pdk, p: dict, m: int, na: str = "na", nb: str = "nb") -> list:
    """Offset-binary bias DAC: legs (bit o_k, 2^k ub_units units, cascoded) sink o I_ub from node na, a fixed
    2^(m-1) ub_units sink takes from node nb; enable="bias": both en-gated, dumped into vdd while en = 0."""
    f = lambda *a, **k: L._fet(pdk, *a, **k)
    wu, lu, ub = p["w_u"], p["l_u"], int(p["ub_units"])
    casc = p.get("bias_cascode")
    out = []
    for k in range(m):
        top = f"bq{k}" if casc else "bsa"
        if casc:
            out.append(f("nfet", f"BC{k}", "bsa", "vcn", top, "vss", p["w_oc"], p["l_nc"], m=ub * 2 ** k))
        out.append(f("nfet", f"BS{k}", top, f"o{k}", f"bu{k}", "vss", p["w_sw"], p["l_sw"], m=2 ** k))
        out.append(f("nfet", f"BU{k}", f"bu{k}", "vbn", "vss", "vss", wu, lu, m=ub * 2 ** k))
    half = 2 ** (m - 1)
    if casc:
        out.append(f("nfet", "BKC", "bsb", "vcn", "bkq", "vss", p["w_oc"], p["l_nc"], m=ub * half))
    out += [f("nfet", "BK", "bkq" if casc else "bsb", "vbn", "vss", "vss", wu, lu, m=ub * half),
            f("nfet", "BEA", na, _on(p), "bsa", "vss", p["w_sw"] * 4, p["l_sw"]),
            f("nfet", "BEB", nb, _on(p), "bsb", "vss", p["w_sw"] * 4, p["l_sw"])]
    if _on(p) == "en":
        out += [f("pfet", "DBA", "bsa", "en", "vdd", "vdd", p["w_dump"], p["l_sw"]),
                f("pfet", "DBB", "bsb", "en", "vdd", "vdd", p["w_dump"], p["l_sw"])]
    return out


# ------------------------------------------------------------------------------------------ characterization
def _combos(kind):
    """Characterized (code, ocode) pairs: every magnitude bit alone and the extremes at zero bias, every
    offset code at full magnitude, and three mixed pairs that check the product form code/15 * relu(...)."""
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    mags = [0] + [2 ** k for k in range(kind.bits)] + [full]
    offs = [o for o in range(2 ** kind.obits) if o != half]
    mixed = [(full // 3, 2 ** kind.obits - 4), (2 * full // 3, half // 2), (full // 5, 2 ** kind.obits - 1)]
    return [(c, half) for c in mags] + [(full, o) for o in offs] + mixed


def _fit_relu(dv, i, i_min: float = 1e-9):
    """Least squares i = relu(g dv + b) -> (g, b); None if fewer than 3 points conduct more than i_min."""
    from scipy.optimize import least_squares
    on = i > max(0.01 * np.max(np.abs(i)), i_min)
    if on.sum() < 3:
        return None
    g0, b0 = np.polyfit(dv[on], i[on], 1)
    r = least_squares(lambda p: np.maximum(p[0] * dv + p[1], 0) - i, x0=[g0, b0], x_scale=[abs(g0) + 1e-9, 1e-7])
    return float(r.x[0]), float(r.x[1])


def _split_run(head, insts, analysis, jobs, inst_lines, **kw):
    """Spread the instances round-robin over `jobs` decks (same header and analysis), run them side by side
    (`run_decks`) and merge their vectors. Returns (vectors, wall seconds, number of decks)."""
    import time
    from ..sim.ngspice import run_decks
    decks = ["\n".join(list(head) + [ln for it in insts[k::jobs] for ln in inst_lines(*it)] + [analysis, ".end"])
             for k in range(min(jobs, len(insts)))]
    t0 = time.perf_counter()
    results = run_decks(decks, jobs=jobs, **kw)
    wall = time.perf_counter() - t0
    vec = {}
    for r in results:
        vec.update(r.plots[0].vectors)
    return vec, wall, len(decks)


def char_relu(pdk, kind, corner, n_mc, jobs=1):
    """DC surfaces of every combo (+ one disabled instance) over vs x vd, split over `jobs` parallel ngspice
    runs (each run holds a share of the instances and sweeps the whole grid); then mismatch (n_mc copies)."""
    from .characterize import _header, _inst
    sub = kind.subckt(pdk)
    combos = _combos(kind)
    lo, hi = kind.vcm - kind.span, kind.vcm + kind.span
    n = int(round((hi - lo) / kind.step)) + 1
    vd_step = kind.span / 2
    vd_grid = kind.vcm + vd_step * np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    nd = len(vd_grid)
    head = _header(pdk, kind, corner, sub, "DC surfaces") + [f"Vs s 0 dc {kind.vcm}", f"Vd d 0 dc {kind.vcm}"]
    insts = [(f"c{c}o{o}", c, o, "en") for c, o in combos] + [("off", 2 ** kind.bits - 1, 2 ** kind.obits - 1, "0")]
    dc, wall, n_decks = _split_run(
        head, insts, f".dc Vs {lo:.4f} {hi:.4f} {kind.step:.4f} Vd {vd_grid[0]:.4f} {vd_grid[-1]:.4f} {vd_step:.4f}",
        max(1, jobs), lambda tag, c, o, en: _inst(kind, sub, tag, c, o, en=en),
        cell=kind.name, point=f"DC surface grid at corner {corner}", expect_points=[n * nd], timeout=3600)
    grid = lo + kind.step * np.arange(n)
    shp = (nd, n)
    i_d = np.stack([dc[f"i(vmdc{c}o{o})"].reshape(shp) for c, o in combos])
    i_s = np.stack([dc[f"i(vmsc{c}o{o})"].reshape(shp) for c, o in combos])
    i_dd = np.stack([dc[f"i(vddc{c}o{o})"].reshape(shp) for c, o in combos])
    leak = float(max(np.max(np.abs(dc["i(vmdoff)"])), np.max(np.abs(dc["i(vmsoff)"]))))
    i_ub = float(sub.params["ub_units"]) * kind.i_unit
    summary, table, codetab = analyze_relu(kind, corner, combos, grid, vd_grid, i_d, i_s, i_dd, leak, wall, i_ub)
    summary["dc_runs"] = n_decks
    from .ports import ac_relu_diff
    summary.update(ac_relu_diff(pdk, kind, corner))
    if n_mc > 1:
        summary.update(mismatch_relu(pdk, kind, corner, n_mc, jobs))
    return summary, table, codetab


def mismatch_relu(pdk, kind, corner, n_mc, jobs=1) -> dict:
    """n_mc copies (each draws its own sky130 mismatch, corner <corner>_mm) of three combos at vd = v_cm,
    vs swept over the conducting part of the range -> sigma of the fitted gain and of the input-referred
    offset (-b/g) per combo."""
    from .characterize import _header, _inst
    mm = corner + pdk.mismatch_suffix
    sub = kind.subckt(pdk)
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    combos = [(full, half), (full // 3 + 1, half), (full, half + half // 2)]
    npts = 7
    lo, hi = kind.vcm, kind.vcm + kind.span
    insts = [(f"c{c}o{o}m{m}", c, o) for c, o in combos for m in range(n_mc)]
    head = _header(pdk, kind, mm, sub, f"mismatch x{n_mc}") + [f"Vs s 0 dc {kind.vcm}", f"Vd d 0 dc {kind.vcm}"]
    dc, wall, _ = _split_run(head, insts, f".dc Vs {lo:.4f} {hi:.4f} {(hi - lo) / (npts - 1):.4f}", max(1, jobs),
                             lambda tag, c, o: _inst(kind, sub, tag, c, o),
                             cell=kind.name, point=f"mismatch sweep at corner {mm}", expect_points=[npts])
    sig_g, sig_off = mismatch_sigmas(dc, combos, n_mc, np.linspace(0.0, hi - lo, npts),
                                     lambda c, m: f"i(vmdc{c[0]}o{c[1]}m{m})")
    return dict(mc_n=n_mc, mc_combos=[list(x) for x in combos], sigma_gain_rel=sig_g, sigma_offset_V=sig_off,
                wall_s_mc=wall)


def mismatch_sigmas(dc, combos, n_mc: int, dv, vector):
    """Per combo, over its n_mc mismatch copies: the line fitted to the conducting points (> 2 % of the peak) of
    the output current vs the swept input dv -> (sigma of the gain relative to its mean, sigma of the
    input-referred offset -b/g in V), keyed "c0,c1,..."; NaN with fewer than 3 usable copies. `vector(c, m)` is
    the name of copy m's current vector in `dc` (shared by relu_diff and relu_lin)."""
    sig_g, sig_off = {}, {}
    for c in combos:
        g, off = [], []
        for m in range(n_mc):
            i = np.asarray(dc[vector(c, m)])
            on = i > 0.02 * np.max(i)
            if on.sum() >= 3:
                pg = np.polyfit(dv[on], i[on], 1)
                g.append(pg[0]); off.append(-pg[1] / pg[0])
        key = ",".join(str(x) for x in c)
        sig_g[key] = float(np.std(g, ddof=1) / np.mean(g)) if len(g) > 2 else float("nan")
        sig_off[key] = float(np.std(off, ddof=1)) if len(off) > 2 else float("nan")
    return sig_g, sig_off


def analyze_relu(kind, corner, combos, grid, vd_grid, i_d, i_s, i_dd, leak, wall, i_ub):
    """Fits, figures of merit and code tables of the ReLU cell from its surfaces (no simulation)."""
    from .tables import CellTable, CodeParam, CodeTable
    combos = [tuple(int(x) for x in cb) for cb in combos]
    n, nd = len(grid), len(vd_grid)
    VS, VD = np.meshgrid(grid, vd_grid)
    DV = VS - VD
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    a_nom = np.array([c / full for c, _ in combos])
    o_rel = np.array([o - half for _, o in combos], float)
    i_ub_nominal = i_ub

    def ideal(G, ub):
        return a_nom[:, None, None] * np.maximum(G * DV[None] + (o_rel * ub)[:, None, None], 0)
    # per-combo fits (relu(g dv + b)); the cell constants G0 (transconductance) and I_ub (bias unit) are
    # fitted once per cell and corner (like the tanh cell's slope): least squares, then minimax on a grid
    fits = [_fit_relu(DV.ravel(), i_d[j].ravel()) for j in range(len(combos))]
    g_full = [fits[j][0] for j, (c, o) in enumerate(combos) if c == full and fits[j]]
    G0 = float(np.median(g_full)) if g_full else 2e-6
    from scipy.optimize import least_squares
    ls = least_squares(lambda q: (ideal(q[0] * G0, q[1] * i_ub) - i_d).ravel() / G0, x0=[1.0, 1.0])
    G_ls, ub_ls = ls.x[0] * G0, ls.x[1] * i_ub
    Gs = np.linspace(0.9 * G_ls, 1.1 * G_ls, 81)
    ubs = np.linspace(0.85 * ub_ls, 1.15 * ub_ls, 61)
    grid_dev = np.array([[np.max(np.abs(i_d - ideal(G, u))) for u in ubs] for G in Gs])
    jg, ju = np.unravel_index(int(np.argmin(grid_dev)), grid_dev.shape)
    G_mm, i_ub = float(Gs[jg]), float(ubs[ju])        # the fitted bias unit from here on
    i_fs = float(np.max(np.abs(ideal(G_mm, i_ub))))
    dev = float(grid_dev[jg, ju]) / i_fs
    inner = (np.abs(VS - kind.vcm) <= 2 * kind.span / 3 + 1e-9) & (np.abs(VD - kind.vcm) <= 2 * kind.span / 3 + 1e-9)
    dev_inner = float(min(np.max(np.abs(i_d - ideal(G, i_ub))[:, inner]) for G in Gs)) / i_fs
    dev_fit_inner = 0.0
    for j in range(len(combos)):
        f_in = _fit_relu(DV[inner], i_d[j][inner]) or fits[j]
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
    from .ports import cm_output_conductance
    g_cm = max(cm_output_conductance(grid, vd_grid, i_d[j], 0.1 * i_fs) for j, c in enumerate(combos) if c[0] == full)
    nominal = ideal(G_mm, i_ub)
    zero_ok = tuple(j for j in range(len(combos)) if np.max(np.abs(nominal[j])) < 0.01 * i_fs)
    table = CellTable(kind.name, corner, np.arange(len(combos)), grid, vd_grid, i_d, i_s, i_dd, {}, zero_ok)
    summary = dict(cell=kind.name, corner=corner, i_fs_A=i_fs, i_unit_A=kind.i_unit, i_bias_unit_A=i_ub,
                   i_bias_unit_nominal_A=i_ub_nominal,
                   vcm_V=kind.vcm, span_V=kind.span, grid_step_V=kind.step, grid_points=int(n * nd),
                   vd_rows_V=vd_grid.tolist(),
                   combos=[list(x) for x in combos], gain_G0_A_per_V=G_mm,
                   max_dev_pct_fs=100 * dev, max_dev_percode_fit_pct_fs=100 * dev_fit,
                   inner_span_V=2 * kind.span / 3, max_dev_inner_pct_fs=100 * dev_inner,
                   max_dev_percode_fit_inner_pct_fs=100 * dev_fit_inner,
                   kcl_mismatch_pct_fs=100 * kcl, leakage_disabled_A=leak,
                   cm_output_conductance_S=g_cm, cm_output_resistance_ohm=1 / g_cm if g_cm > 0 else float("inf"),
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
    codetab.meta["surrogate"] = surrogate_constants(kind, table, codetab)
    return summary, table, codetab


def surrogate_constants(kind, table, codetab) -> dict:
    """The L2 surrogate's constants (`kchip.cells.relu_surrogate`) fitted to every surface, with a held-out
    check: the same fit without the three mixed pairs of `_combos`, evaluated on them."""
    from .relu_surrogate import fit_from_table
    const = fit_from_table(table, codetab)
    mixed = [tuple(cb) for cb in _combos(kind)[-3:]]
    held = fit_from_table(table, codetab, hold=mixed)
    const["held_out_check"] = dict(pairs=[list(h) for h in mixed], max_dev_fit_pct_fs=held["max_dev_pct_fs"],
                                   max_dev_held_out_pct_fs=held["max_dev_held_out_pct_fs"])
    return const


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
                                           old["leakage_disabled_A"], old["wall_s_dc"],
                                           old.get("i_bias_unit_nominal_A", old["i_bias_unit_A"]))
    for k in ("wall_s_total", "dc_runs", "mc_n", "mc_combos", "sigma_gain_rel", "sigma_offset_V", "wall_s_mc",
              "bandwidth_Hz", "bandwidth_per_code_Hz", "ac_lowfreq_A_per_V", "ac_vs_minus_vd_V", "wall_s_ac"):
        if k in old:
            summary[k] = old[k]
    return write_results(kind, corner, table, codetab, summary, out_dir, plots)
