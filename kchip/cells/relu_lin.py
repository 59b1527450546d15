"""ReLU edge cell, three-parameter form (paper Eq. 12), rectified in the current domain.

    i(s->d) = relu(theta1 (vs - v_cm) + theta2 (vd - v_cm) + theta3)
    theta1 = (-1)^ngs (gs/15) G0,  theta2 = (-1)^ngd (gd/15) G0,  theta3 = (ocode - 8) I_ub

  - two degenerated nfet pairs like relu_diff's (`relu._pair`): pair 1 compares vs with v_cm (pin vcm), pair 2
    vd with v_cm. The sign bit of each pair (ngs, ngd) swaps its two gate inputs through transmission gates
    (an internal inverter makes the complement), so I_A - I_B = +-G0 (v - v_cm);
  - each pair's currents go to cascoded pfet_lvt diodes of 15 unit devices; binary-weighted copies (leg k =
    2^k units, behind an nfet switch driven by magnitude bit k) put gs/15 of I_A into X and gs/15 of I_B into
    nbx (an nfet diode whose 1:1 copy sinks from X): X gets (gs/15)(I_A1 - I_B1) + (gd/15)(I_A2 - I_B2);
  - offset-binary bias DAC (`relu._bias_legs`) into two more pfet diodes, copied 1:1 into X (o I_ub) and
    into nbx (the fixed 8 I_ub): X gets + (ocode - 8) I_ub;
  - rectifier, X clamp, output legs (all on: fixed full scale), y -> d mirror with keep-alive: relu_diff's
    (`relu._rect_out`). en = 0 gates the tails (dumped into vdd, so enabling does not kick the bias lines),
    the bias legs, the clamp and the keep-alive: zero output.

Pins (`lin_pins`): s d en gs0..gs3 ngs gd0..gd3 ngd o0..o3 vbn vcp vcn vk vcm vdd vss.
"""
from __future__ import annotations

import numpy as np

from ..pdk import Pdk
from . import library as L
from . import relu as R

DEFAULTS = dict(R.DEFAULTS, tail_units=15, w_pu=2.0, l_pu=6.0, w_pcu=2.0, l_pcu=1.0, w_tg=0.42, l_tg=0.15,
                d_switch=True, w_dsw=1.0, l_dsw=0.5, enable="bias")
# tail_units 15 (relu_diff: 30): each pair sees only +-0.3 V, and the pairs' standing current, which X receives
# from the A legs and gives back through the nbx mirror, left an offset at the knee (X low) of ~1 % of it per
# pair at full code: 30 units -> +56 / +73 nA at (15, 15) / (-15, -15), 15 units -> +21 / +25 nA (tt).
# d_switch: a standard-V_T pfet switch (w_dsw/l_dsw, gate enb from an internal inverter) between the y -> d
# pfet_lvt mirror and d: disabled, that mirror leaked 130 pA into d at fs (0.2 % of I_unit) even with its
# gates at vdd; with the switch (L = 0.5: at L = 0.15 it leaked 66-109 pA) < 0.1 pA.
# w_pu/l_pu: unit pfet_lvt of the pair-side diodes (15 units) and magnitude legs (2^k units); w_pcu/l_pcu their
# cascode units (gate vcp). w_tg/l_tg: sign-select transmission gates (nfet w_tg, pfet 2 w_tg).
# The bias generator is kchip.cells.characterize.cell_bias("relu_lin") = relu_diff's (W/L 1/4 reference).


def lin_pins(bits: int = 4, obits: int = 4):
    return (["s", "d", "en"] + [f"gs{k}" for k in range(bits)] + ["ngs"] + [f"gd{k}" for k in range(bits)] +
            ["ngd"] + [f"o{k}" for k in range(obits)] + L.bias_pins(obits) + ["vcm", "vdd", "vss"])


def _tgate(pdk, p, name, a, b, on, off):
    """Transmission gate a <-> b, conducting while net `on` is high (and `off` low)."""
    return [L._fet(pdk, "nfet", f"{name}N", a, on, b, "vss", p["w_tg"], p["l_tg"]),
            L._fet(pdk, "pfet", f"{name}P", a, off, b, "vdd", 2 * p["w_tg"], p["l_tg"])]


def relu_lin_subckt(pdk: Pdk, name: str | None = None, **kw) -> L.Subckt:
    """Subcircuit of the three-parameter ReLU cell (module docstring). Ratios from unit devices (m=): pair-side
    pfet diodes m = 2^bits - 1, magnitude legs m = 2^k, bias DAC as relu_diff, rectifier m = 2^bits - 1."""
    p = dict(DEFAULTS); p.update(kw)
    n, m = int(p["bits"]), int(p["obits"])
    full = 2 ** n - 1
    name = name or f"kc_relu_lin{n}_{m}"
    f = lambda *a, **k: L._fet(pdk, *a, **k)
    mir = lambda *a: L._mirror(pdk, p, *a)
    pn = dict(p, cascode=p.get("nb_cascode", True), w_n=p.get("w_nb", p["w_n"]), l_n=p.get("l_nb", p["l_n"]))
    mirn = lambda *a: L._mirror(pdk, pn, *a)
    pins = lin_pins(n, m)
    lines = [f".subckt {name} {' '.join(pins)}",
             f"* kchip relu_lin edge cell: relu(+-gs/{full} G0 (vs-vcm) +- gd/{full} G0 (vd-vcm) + (o-{2 ** (m - 1)}) I_ub)"]
    for i, (inp, sg) in enumerate((("s", "ngs"), ("d", "ngd")), start=1):
        sb = f"{sg}b"
        lines += [f"* input {i}: pair {inp} vs vcm; sign bit {sg} = 1 swaps the gates (theta{i} < 0)",
                  f("pfet", f"IP{i}", sb, sg, "vdd", "vdd", 2 * p["w_tg"], p["l_tg"]),
                  f("nfet", f"IN{i}", sb, sg, "vss", "vss", p["w_tg"], p["l_tg"]),
                  *_tgate(pdk, p, f"TA{i}P", inp, f"g{i}a", sb, sg), *_tgate(pdk, p, f"TA{i}N", "vcm", f"g{i}a", sg, sb),
                  *_tgate(pdk, p, f"TB{i}P", "vcm", f"g{i}b", sb, sg), *_tgate(pdk, p, f"TB{i}N", inp, f"g{i}b", sg, sb),
                  *R._pair(pdk, p, f"g{i}a", f"g{i}b", str(i))]
        bits = [f"g{inp}{k}" for k in range(n)]
        for br, dst in (("a", "x"), ("b", "nbx")):
            node = f"n{br}{i}"
            P = f"P{br.upper()}{i}"
            lines += [f"* pfet diode of branch {br.upper()}{i} ({full} units) and its binary legs into {dst}",
                      f("pfet_lvt", P, f"x{P.lower()}", node, "vdd", "vdd", p["w_pu"], p["l_pu"], m=full),
                      f("pfet_lvt", P + "C", node, "vcp", f"x{P.lower()}", "vdd", p["w_pcu"], p["l_pcu"], m=full)]
            for k, b in enumerate(bits):
                q = f"{P}L{k}"
                lines += [f("pfet_lvt", q, f"x{q.lower()}", node, "vdd", "vdd", p["w_pu"], p["l_pu"], m=2 ** k),
                          f("pfet_lvt", q + "C", f"c{q.lower()}", "vcp", f"x{q.lower()}", "vdd", p["w_pcu"],
                            p["l_pcu"], m=2 ** k),
                          f("nfet", q + "S", f"c{q.lower()}", b, dst, "vss", p["w_sw"], p["l_sw"], m=2 ** k)]
    lines += ["* bias: offset-binary DAC sinks o I_ub from pfet diode nc (copied into X) and the fixed",
              f"* {2 ** (m - 1)} I_ub from pfet diode nk (copied into nbx, so sunk from X); en-gated",
              *R._bias_legs(pdk, p, m, "nc", "nk"),
              *mir("pfet", "PC", "nc", "nc", "vdd", True), *mir("pfet", "PCX", "x", "nc", "vdd", False),
              *mir("pfet", "PK", "nk", "nk", "vdd", True), *mir("pfet", "PKX", "nbx", "nk", "vdd", False),
              "* nbx -> X: nfet mirror sinks the B-branch sum from X",
              *mirn("nfet", "NBX", "nbx", "nbx", "vss", True),
              *mirn("nfet", "NBS", "x", "nbx", "vss", False),
              "* rectifier, clamp, output legs at full scale (switch gates at vdd), y -> d mirror (relu_diff's)",
              *R._rect_out(pdk, p, ["vdd"] * n),
              f".ends {name}"]
    return L.Subckt(name, pins, "\n".join(lines), p)


# ------------------------------------------------------------------------------------------ characterization
def _code_bits(c: int, n: int):
    return ["vdd" if (abs(int(c)) >> k) & 1 else "0" for k in range(n)] + ["vdd" if c < 0 else "0"]


def _inst_lin(kind, sub: L.Subckt, tag: str, cs: int, cd: int, o: int, en: str = "en") -> list:
    """Instance `tag` at signed gain codes cs (theta1), cd (theta2) and offset code o, with ammeters
    i(vmd<tag>) (into d), i(vms<tag>) (out of s), i(vdd<tag>) (supply)."""
    n, m = kind.bits, kind.obits
    pins = [f"s{tag}", f"d{tag}", en, *_code_bits(cs, n), *_code_bits(cd, n),
            *["vdd" if (o >> k) & 1 else "0" for k in range(m)], *L.bias_pins(m), "vcm", f"vdd{tag}", "0"]
    return [f"Vmd{tag} d{tag} d 0", f"Vms{tag} s s{tag} 0", f"Vdd{tag} vdd vdd{tag} 0",
            f"X{tag} {' '.join(pins)} {sub.name}"]


def _tag(cs, cd, o):
    f = lambda c: f"{'m' if c < 0 else 'p'}{abs(c)}"
    return f"s{f(cs)}d{f(cd)}o{o}"


def _combos_lin(kind):
    """Characterized (cs, cd, o): every magnitude bit alone per input with both signs (at o = 12, which keeps
    them conducting over the whole grid: clean gains), the extremes (+-15 on one and on both inputs) at zero
    bias, a bias series at (15, 15), a zero and a constant (no gain) code, mixed codes."""
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    out = []
    for k in range(kind.bits):
        for sg in (1, -1):
            out += [(sg * 2 ** k, 0, half + half // 2), (0, sg * 2 ** k, half + half // 2)]
    out += [(full, 0, half), (-full, 0, half), (0, full, half), (0, -full, half)]
    out += [(a, b, half) for a in (full, -full) for b in (full, -full)]
    out += [(full, full, o) for o in (0, 3, 6, 10, 12, 2 ** kind.obits - 1)]
    out += [(0, 0, half), (0, 0, half + half // 2)]
    out += [(5, -10, 12), (-7, 3, 11), (12, 6, 4), (3, -3, 9)]
    return out


def soft_relu(u, i_q):
    """Clamped rectifier law: the follower/diode translinear loop carries I_F I_R = I_q^2, I_R - I_F = u."""
    return 0.5 * (u + np.sqrt(u * u + 4.0 * i_q * i_q))


def surrogate_law(u, i_q, k_c):
    """The L2 surrogate's output law: soft_relu(u, I_q) with a quadratic output compression r - k_c r^2."""
    r = soft_relu(u, i_q)
    return r - k_c * r * r


def _knee_comp(i_d, u, i_fs):
    """Minimax (grid) fit of the knee current I_q and the output compression k_c of `surrogate_law` to the
    measured surfaces i_d at pre-activations u -> (I_q, k_c, max |deviation|)."""
    best = (0.0, 0.0, np.inf)
    for iq in np.linspace(0.0, 0.02 * i_fs, 41):
        r = soft_relu(u, iq)
        for kc in np.linspace(0.0, 0.1 / i_fs, 51):       # the max deviation is not unimodal: grid
            d = float(np.max(np.abs(i_d - (r - kc * r * r))))
            if d < best[2]:
                best = (float(iq), float(kc), d)
    return best


def _fit_lin(X, Y, i, i_min: float = 1e-9, guess=None):
    """Least squares i = relu(a X + b Y + c) -> (a, b, c); None if fewer than 3 points conduct. Started from the
    linear fit of the conducting points and (if given) from `guess`; the better of the two is kept (a combo that
    conducts at only a few grid points can end in a poor local minimum from the first)."""
    from scipy.optimize import least_squares
    on = i > max(0.01 * np.max(np.abs(i)), i_min)
    if on.sum() < 3:
        return None
    A = np.stack([X[on], Y[on], np.ones(on.sum())], 1)
    starts = [np.linalg.lstsq(A, i[on], rcond=None)[0]] + ([np.asarray(guess, float)] if guess is not None else [])
    best = None
    for x0 in starts:
        sc = np.abs(x0) + np.array([1e-8, 1e-8, 1e-8])
        r = least_squares(lambda q: np.maximum(q[0] * X + q[1] * Y + q[2], 0) - i, x0=x0, x_scale=sc)
        if best is None or r.cost < best.cost:
            best = r
    return tuple(float(v) for v in best.x)


def char_relu_lin(pdk, kind, corner, n_mc, jobs=1):
    """DC surfaces of every combo (+ one disabled instance) over vs x vd, split over `jobs` parallel ngspice
    runs; then mismatch (n_mc copies)."""
    from .characterize import _header
    sub = kind.subckt(pdk)
    combos = _combos_lin(kind)
    lo, hi = kind.vcm - kind.span, kind.vcm + kind.span
    n = int(round((hi - lo) / kind.step)) + 1
    head = _header(pdk, kind, corner, sub, "DC surfaces") + [f"Vcm vcm 0 {kind.vcm}", f"Vs s 0 dc {kind.vcm}",
                                                              f"Vd d 0 dc {kind.vcm}"]
    full = 2 ** kind.bits - 1
    insts = [(_tag(*c), *c, "en") for c in combos] + [("off", full, full, 2 ** kind.obits - 1, "0")]
    dc, wall, n_decks = R._split_run(
        head, insts, f".dc Vs {lo:.4f} {hi:.4f} {kind.step:.4f} Vd {lo:.4f} {hi:.4f} {kind.step:.4f}",
        max(1, jobs), lambda tag, cs, cd, o, en: _inst_lin(kind, sub, tag, cs, cd, o, en=en),
        cell=kind.name, point=f"DC surface grid at corner {corner}", expect_points=[n * n], timeout=3600)
    grid = lo + kind.step * np.arange(n)
    shp = (n, n)
    get = lambda pre: np.stack([dc[f"i({pre}{_tag(*c)})"].reshape(shp) for c in combos])
    i_d, i_s, i_dd = get("vmd"), get("vms"), get("vdd")
    leak = float(max(np.max(np.abs(dc["i(vmdoff)"])), np.max(np.abs(dc["i(vmsoff)"]))))
    i_dd_off = float(dc["i(vddoff)"][(n * n) // 2])
    summary, table, codetab = analyze_relu_lin(kind, corner, combos, grid, i_d, i_s, i_dd, leak, wall)
    summary.update(dc_runs=n_decks, supply_disabled_A=i_dd_off)
    summary.update(ac_lin(pdk, kind, corner))
    if n_mc > 1:
        summary.update(mismatch_lin(pdk, kind, corner, n_mc, jobs))
    return summary, table, codetab


def _swap_sd(lines, tag):
    """Instance lines with the sweep/AC node s on the cell's d pin and the held node d on its s pin."""
    return [ln.replace(f"Vmd{tag} d{tag} d 0", f"Vmd{tag} d{tag} s 0").replace(f"Vms{tag} s s{tag} 0",
                                                                               f"Vms{tag} d s{tag} 0") for ln in lines]


def ac_lin(pdk, kind, corner) -> dict:
    """Small-signal bandwidth of theta1 (code (15, 0, 12), vs driven) and theta2 ((0, 15, 12), the d pin driven:
    d(i into d)/d(vd) is theta2 itself), both inputs at v_cm: -3 dB frequency of |i_d / v|."""
    from .characterize import _bandwidth, _header
    from ..sim.ngspice import run_deck
    sub = kind.subckt(pdk)
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    c1, c2 = (full, 0, half + half // 2), (0, full, half + half // 2)
    lines = _header(pdk, kind, corner, sub, "AC") + [f"Vcm vcm 0 {kind.vcm}", f"Vs s 0 dc {kind.vcm} ac 1",
                                                     f"Vd d 0 dc {kind.vcm}"]
    lines += _inst_lin(kind, sub, "t1", *c1) + _swap_sd(_inst_lin(kind, sub, "t2", *c2), "t2")
    lines += [".ac dec 10 1e3 1e9", ".end"]
    res = run_deck("\n".join(lines), cell=kind.name, point=f"AC at corner {corner}")
    ac = res.plots[-1]
    freq = np.real(ac["frequency"])
    out = {}
    for tag, nm in (("t1", "theta1"), ("t2", "theta2")):
        mag = np.abs(ac[f"i(vmd{tag})"])
        out[f"bandwidth_{nm}_Hz"] = _bandwidth(freq, mag)
        out[f"ac_lowfreq_{nm}_A_per_V"] = float(mag[0])
    out["wall_s_ac"] = res.wall_s
    return out


def mismatch_lin(pdk, kind, corner, n_mc, jobs=1) -> dict:
    """n_mc copies (corner <corner>_mm) of (15,0,8), (0,15,8), (8,0,8), (15,0,12); the active input swept over
    [v_cm, v_cm + span] (the other at v_cm) -> sigma of the fitted gain (relative) and of the input-referred
    offset -theta3/theta (V)."""
    from .characterize import _header
    mm = corner + pdk.mismatch_suffix
    sub = kind.subckt(pdk)
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    combos = [(full, 0, half), (0, full, half), (8, 0, half), (full, 0, half + half // 2)]
    npts = 7
    lo, hi = kind.vcm, kind.vcm + kind.span
    insts = [(f"{_tag(*c)}m{m}", *c) for c in combos for m in range(n_mc)]
    head = _header(pdk, kind, mm, sub, f"mismatch x{n_mc}") + [f"Vcm vcm 0 {kind.vcm}", f"Vs s 0 dc {kind.vcm}",
                                                               f"Vd d 0 dc {kind.vcm}"]
    # one sweep source drives both inputs' sweeps: instances of vd-combos see vd = sweep, vs = v_cm
    def lines(tag, cs, cd, o):
        out = _inst_lin(kind, sub, tag, cs, cd, o)
        return _swap_sd(out, tag) if cd else out       # the sweep goes to d, s held at v_cm
    dc, wall, _ = R._split_run(head, insts, f".dc Vs {lo:.4f} {hi:.4f} {(hi - lo) / (npts - 1):.4f}", max(1, jobs),
                               lines, cell=kind.name, point=f"mismatch sweep at corner {mm}", expect_points=[npts])
    dv = np.linspace(0.0, hi - lo, npts)
    sig_g, sig_off = {}, {}
    for c in combos:
        g, off = [], []
        for m in range(n_mc):
            i = np.asarray(dc[f"i(vmd{_tag(*c)}m{m})"])
            on = i > 0.02 * np.max(i)
            if on.sum() >= 3:
                pg = np.polyfit(dv[on], i[on], 1)
                g.append(pg[0]); off.append(-pg[1] / pg[0])
        key = ",".join(str(x) for x in c)
        sig_g[key] = float(np.std(g, ddof=1) / np.mean(g)) if len(g) > 2 else float("nan")
        sig_off[key] = float(np.std(off, ddof=1)) if len(off) > 2 else float("nan")
    return dict(mc_n=n_mc, mc_combos=[list(x) for x in combos], sigma_gain_rel=sig_g, sigma_offset_V=sig_off,
                wall_s_mc=wall)


def analyze_relu_lin(kind, corner, combos, grid, i_d, i_s, i_dd, leak, wall):
    """Fits, figures of merit and code tables of the relu_lin cell from its surfaces (no simulation)."""
    from scipy.optimize import least_squares, minimize
    from .tables import CellTable, CodeParam, CodeTable
    combos = [tuple(int(x) for x in c) for c in combos]
    n = len(grid)
    VS, VD = np.meshgrid(grid, grid)                # (vd, vs) layout, vs fastest
    X, Y = VS - kind.vcm, VD - kind.vcm
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    cs = np.array([c[0] for c in combos], float) / full
    cd = np.array([c[1] for c in combos], float) / full
    orel = np.array([c[2] - half for c in combos], float)

    def ideal(q):       # q = (G_s, G_d, I_ub): the cell constants
        u = q[0] * cs[:, None, None] * X + q[1] * cd[:, None, None] * Y + (q[2] * orel)[:, None, None]
        return np.maximum(u, 0)
    q0 = np.array([2.7e-6, 2.7e-6, 1.8e-7])
    ls = least_squares(lambda q: (ideal(q * q0) - i_d).ravel() / 1e-6, x0=[1, 1, 1])
    mm = minimize(lambda q: np.max(np.abs(ideal(q * q0) - i_d)), ls.x, method="Nelder-Mead",
                  options=dict(xatol=1e-5, fatol=1e-12, maxiter=4000))
    q = mm.x * q0
    G_s, G_d, i_ub = (float(v) for v in q)
    fits = [_fit_lin(X.ravel(), Y.ravel(), i_d[j].ravel(), guess=(G_s * cs[j], G_d * cd[j], i_ub * orel[j]))
            for j in range(len(combos))]
    nominal = ideal(q)
    i_fs = float(np.max(nominal))
    dev = float(np.max(np.abs(i_d - nominal))) / i_fs
    # where: the worst combo and point
    jw, dw, sw = np.unravel_index(int(np.argmax(np.abs(i_d - nominal))), i_d.shape)
    dev_fit = 0.0
    theta = []
    for j, ft in enumerate(fits):
        model = np.maximum(ft[0] * X + ft[1] * Y + ft[2], 0) if ft else np.zeros_like(X)
        dev_fit = max(dev_fit, float(np.max(np.abs(i_d[j] - model))) / i_fs)
        theta.append(list(ft) if ft else [0.0, 0.0, 0.0])
    theta = np.array(theta)
    # code tables. gains: per magnitude bit and sign from the bit-alone combos; a code's gain = the sum of its
    # bits' (binary-weighted legs add). bias: additive in the offset bits, least squares over the (15, 15, o)
    # series (o = 8 included; codes whose surface barely conducts are left out); the fixed 8 I_ub sink is the
    # intercept.
    def bit_gain(axis, k, sg):
        c = [0, 0, half + half // 2]; c[axis] = sg * 2 ** k
        j = combos.index(tuple(c))
        return theta[j, axis]
    n_on = np.array([np.count_nonzero(i_d[j] > 0.01 * i_fs) for j in range(len(combos))])
    good = [j for j in range(len(combos)) if fits[j] is not None and n_on[j] >= 6]
    # theta3 of the (15, 15, o) series with theta1, theta2 held at the (15, 15, 8) fit: the codes that conduct
    # at only a few grid points (o = 0) cannot fit their own slopes
    ser = [j for j, c in enumerate(combos) if c[0] == full and c[1] == full]
    j8 = combos.index((full, full, half))
    a8, b8 = theta[j8, 0], theta[j8, 1]
    t3 = {}
    for j in ser:
        r = least_squares(lambda v: np.maximum(a8 * X + b8 * Y + v[0], 0).ravel() - i_d[j].ravel(),
                          x0=[theta[j8, 2] + orel[j] * 1.8e-7], x_scale=[1e-7])
        t3[j] = float(r.x[0])
    tabs, k_cm, bias_resid = _code_tables(kind, combos, theta, good, t3)
    add_err = {}
    for axis, nm in ((0, "g_s"), (1, "g_d")):
        for sg in (1, -1):    # additivity: the bit-alone fits' sum vs the fit at +-15
            c = [0, 0, half]; c[axis] = sg * full
            s_bits = sum(bit_gain(axis, k, sg) for k in range(kind.bits))
            add_err[f"{nm}[{sg * full}]"] = float(theta[combos.index(tuple(c)), axis] / s_bits - 1)
    bias_vals = tabs["bias"].values

    def model(tb, kc, sel):
        gs_v = np.array([tb["g_s"].value(combos[j][0]) for j in sel])
        gd_v = np.array([tb["g_d"].value(combos[j][1]) for j in sel])
        b_v = np.array([tb["bias"].value(combos[j][2]) for j in sel])
        u = gs_v[:, None, None] * X + gd_v[:, None, None] * Y + b_v[:, None, None]
        return u, u + (kc * (np.abs(cs[sel]) + np.abs(cd[sel])))[:, None, None]
    allj = list(range(len(combos)))
    # table model: relu(g_s[cs] x + g_d[cd] y + bias[o]) for every combo (what the quantizer uses), and the
    # surrogate's: + k_cm (|cs| + |cd|) / 15, with the clamped rectifier's soft knee (I_q fitted on a grid)
    u_tab, u_sur = model(tabs, k_cm, allj)
    dev_tab = float(np.max(np.abs(i_d - np.maximum(u_tab, 0)))) / i_fs
    i_q, k_c, dev_tab_soft = _knee_comp(i_d, u_sur, i_fs)
    dev_tab_soft /= i_fs
    # held out: the tables (and I_q, k_c) rebuilt without the mixed combos, evaluated on them
    mixed = [j for j, c in enumerate(combos) if c[0] not in (0, full, -full) and c[1] not in (0, full, -full)]
    dev_tab_soft_mixed = float("nan")
    if mixed:
        rest = [j for j in allj if j not in mixed]
        tb_h, kc_h, _ = _code_tables(kind, combos, theta, [j for j in good if j not in mixed], t3)
        iq_h, kcomp_h, _ = _knee_comp(i_d[rest], model(tb_h, kc_h, rest)[1], i_fs)
        dev_tab_soft_mixed = float(np.max(np.abs(i_d[mixed] - surrogate_law(model(tb_h, kc_h, mixed)[1], iq_h,
                                                                              kcomp_h)))) / i_fs
    off8 = [theta[j, 2] for j, c in enumerate(combos) if c[2] == half and fits[j] is not None]
    kcl = float(np.max(np.abs(i_d - i_s))) / i_fs
    # output (port) conductance: the fitted dependence on the input whose code is 0 (d for cd = 0: d i_d/d vd;
    # s for cs = 0) - ideally 0
    g_port_d = max([abs(theta[j, 1]) for j, c in enumerate(combos) if c[1] == 0 and fits[j]] or [0.0])
    g_port_s = max([abs(theta[j, 0]) for j, c in enumerate(combos) if c[0] == 0 and fits[j]] or [0.0])
    zero_ok = tuple(j for j in range(len(combos)) if np.max(nominal[j]) < 0.01 * i_fs)
    table = CellTable(kind.name, corner, np.arange(len(combos)), grid, grid, i_d, i_s, i_dd, {}, zero_ok)
    key = lambda c: ",".join(str(x) for x in c)
    summary = dict(cell=kind.name, corner=corner, i_fs_A=i_fs, i_unit_A=kind.i_unit, vcm_V=kind.vcm,
                   span_V=kind.span, grid_step_V=kind.step, grid_points=int(n * n), combos=[list(c) for c in combos],
                   G_s_A_per_V=G_s, G_d_A_per_V=G_d, i_bias_unit_A=i_ub,
                   max_dev_pct_fs=100 * dev,
                   max_dev_at=dict(combo=list(combos[jw]), vs_V=float(grid[sw]), vd_V=float(grid[dw])),
                   max_dev_percode_fit_pct_fs=100 * dev_fit,
                   theta_per_combo={key(c): theta[j].tolist() for j, c in enumerate(combos)},
                   gain_additivity_rel=add_err, bias_table_resid_A=bias_resid,
                   theta3_spread_at_o8_A=float(np.ptp(off8)) if off8 else 0.0,
                   max_dev_table_model_pct_fs=100 * dev_tab, knee_current_A=i_q, theta3_cm_A=k_cm,
                   compression_per_A=k_c,
                   max_dev_table_soft_pct_fs=100 * dev_tab_soft,
                   max_dev_table_soft_heldout_mixed_pct_fs=100 * dev_tab_soft_mixed,
                   kcl_mismatch_pct_fs=100 * kcl, leakage_disabled_A=leak,
                   port_conductance_d_S=g_port_d, port_conductance_s_S=g_port_s,
                   leakage_pct_of_i_unit=100 * leak / kind.i_unit, wall_s_dc=wall, mc_n=0,
                   ideal_law="i = relu(G_s (cs/15) (vs-vcm) + G_d (cd/15) (vd-vcm) + (o-8) I_ub)",
                   supply_current_A={key(c): float(i_dd[j, n // 2, n // 2]) for j, c in enumerate(combos)})
    codetab = CodeTable(kind.name, corner, tabs, units={"g_s": "A/V", "g_d": "A/V", "bias": "A"},
                        meta=dict(bits=kind.bits, obits=kind.obits, G_s_A_per_V=G_s, G_d_A_per_V=G_d,
                                  i_bias_unit_A=i_ub, knee_current_A=i_q, theta3_cm_A=k_cm,
                                  compression_per_A=k_c, vcm_V=kind.vcm,
                                  law="i(s->d) = relu(g_s[cs] (vs-vcm) + g_d[cd] (vd-vcm) + bias[o]); "
                                      "signed gain codes: sign pin ngs/ngd = 1 for cs/cd < 0",
                                  surrogate_law="r - compression_per_A r^2, r = soft_relu(u + theta3_cm_A "
                                                "(|cs| + |cd|) / 15, knee_current_A), soft_relu(u, I_q) = "
                                                "(u + sqrt(u^2 + 4 I_q^2)) / 2",
                                  table_index="CellTable codes index the (cs, cd, o) triples in summary.combos",
                                  gain_note="g_s/g_d: sum of per-bit gains (per sign), least squares over the combos",
                                  bias_note="bias[o]: additive in the offset bits, at zero gain codes; the realized "
                                            "theta3 adds theta3_cm_A (|cs| + |cd|) / 15"))
    table.scalars = summary
    return summary, table, codetab


def _code_tables(kind, combos, theta, good, t3):
    """Code tables from the per-combo fits theta (K, 3): g_s / g_d = sums of per-bit gains (per sign; least
    squares over the reliable combos `good` with that sign: legs add); bias[o] additive in the offset bits plus a
    common-mode term theta3 = bias[o] + k_cm (|cs| + |cd|) / 15 (the pairs' standing current, carried to X by the
    legs and back by the nbx mirror, leaves a small excess per active leg), least squares over `good` and the
    (15, 15, o) series (theta3 from t3 {index: theta3 at fixed gains}). Returns (tables, k_cm, bias residual)."""
    from .tables import CodeParam
    full = 2 ** kind.bits - 1
    bitrow = lambda c: [float((abs(c) >> k) & 1) for k in range(kind.bits)]
    tabs = {}
    for axis, nm in ((0, "g_s"), (1, "g_d")):
        w = {}
        for sg in (1, -1):
            rows = [j for j in good if np.sign(combos[j][axis]) == sg]
            w[sg] = np.linalg.lstsq(np.array([bitrow(combos[j][axis]) for j in rows]), theta[rows, axis],
                                    rcond=None)[0]
        codes = list(range(-full, full + 1))
        tabs[nm] = CodeParam(codes, [float(np.dot(bitrow(c), w[1 if c >= 0 else -1])) for c in codes])
    rows = sorted(set(good) | set(t3))
    th3 = np.array([t3.get(j, theta[j, 2]) for j in rows])
    A = np.array([[1.0] + [float((combos[j][2] >> k) & 1) for k in range(kind.obits)] +
                  [(abs(combos[j][0]) + abs(combos[j][1])) / full] for j in rows])
    beta = np.linalg.lstsq(A, th3, rcond=None)[0]
    ocodes = list(range(2 ** kind.obits))
    tabs["bias"] = CodeParam(ocodes, [float(beta[0] + sum(beta[1 + k] for k in range(kind.obits) if (o >> k) & 1))
                                      for o in ocodes])
    return tabs, float(beta[-1]), float(np.max(np.abs(A @ beta - th3)))


def reanalyze_relu_lin(corner: str, out_dir=None, plots: bool = True) -> dict:
    """Recompute the relu_lin fits / code tables from a saved <corner>.npz (no SPICE)."""
    from pathlib import Path
    from .characterize import KINDS, REPO, write_results
    from .tables import CellTable
    kind = KINDS["relu_lin"]
    out_dir = Path(out_dir) if out_dir is not None else REPO / "characterization" / kind.name
    t = CellTable.load(out_dir / f"{corner}.npz")
    old = t.scalars
    summary, table, codetab = analyze_relu_lin(kind, corner, old["combos"], t.vs, t.i_d, t.i_s, t.i_dd,
                                               old["leakage_disabled_A"], old["wall_s_dc"])
    for k in ("wall_s_total", "dc_runs", "supply_disabled_A", "bandwidth_theta1_Hz", "bandwidth_theta2_Hz",
              "ac_lowfreq_theta1_A_per_V", "ac_lowfreq_theta2_A_per_V", "wall_s_ac", "mc_n", "mc_combos", "sigma_gain_rel",
              "sigma_offset_V", "wall_s_mc"):
        if k in old:
            summary[k] = old[k]
    return write_results(kind, corner, table, codetab, summary, out_dir, plots)


def plot_relu_lin(kind, table, path) -> None:
    """Curves at vd = v_cm (theta1 codes) and at vs = v_cm (theta2 codes); map of the worst deviation from the
    cell law over the (vs, vd) grid."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    s = table.scalars
    g = table.vs
    mid = len(g) // 2
    cb = [tuple(c) for c in s["combos"]]
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4), dpi=80)
    for j, c in enumerate(cb):
        if c[1] == 0 and c[0] != 0:
            ax[0].plot(g, table.i_d[j, mid] * 1e9, lw=1, label=f"cs={c[0]} o={c[2]}")
        if c[0] == 0 and c[1] != 0:
            ax[1].plot(g, table.i_d[j, :, mid] * 1e9, lw=1, label=f"cd={c[1]} o={c[2]}")
    ax[0].set_xlabel("vs [V] (vd = v_cm)"); ax[0].set_ylabel("I into d [nA]")
    ax[1].set_xlabel("vd [V] (vs = v_cm)")
    ax[0].set_title(f"{table.cell} {table.corner}: theta1 codes"); ax[1].set_title("theta2 codes")
    ax[0].legend(fontsize=5, ncol=2); ax[1].legend(fontsize=5, ncol=2)
    VS, VD = np.meshgrid(g, table.vd)
    a = np.array([c[0] for c in cb]) / full
    b = np.array([c[1] for c in cb]) / full
    o = np.array([c[2] - half for c in cb], float)
    ideal = np.maximum(s["G_s_A_per_V"] * a[:, None, None] * (VS - kind.vcm) + s["G_d_A_per_V"] * b[:, None, None]
                       * (VD - kind.vcm) + (o * s["i_bias_unit_A"])[:, None, None], 0)
    dev = np.max(np.abs(table.i_d - ideal), axis=0) / s["i_fs_A"] * 100
    im = ax[2].imshow(dev, origin="lower", extent=[g[0], g[-1], table.vd[0], table.vd[-1]], aspect="auto")
    fig.colorbar(im, ax=ax[2], label="max over codes |I - ideal| [% FS]")
    ax[2].set_xlabel("vs [V]"); ax[2].set_ylabel("vd [V]")
    ax[2].set_title(f"deviation, max {s['max_dev_pct_fs']:.2f} % FS")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
