"""Analysis of the relu_lin cell's characterization (no simulation): fits of the three-parameter law per code,
figures of merit, the code tables the quantize stage and the L2 surrogate take, plots. `kchip.cells.relu_lin`
holds the subcircuit and the ngspice decks that produce the surfaces analysed here."""
from __future__ import annotations

import numpy as np


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




def analyze_relu_lin(kind, corner, combos, grid, i_d, i_s, i_dd, leak, wall):
    """Fits, figures of merit and code tables of the relu_lin cell from its surfaces (no simulation)."""
    from scipy.optimize import least_squares, minimize
    from .tables import CellTable, CodeTable
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


# summary keys a reanalysis keeps from the saved table (measured by the AC and mismatch runs, not by the DC fits),
# in the order they are written; `mismatch` names the cell's mismatch figures besides sigma_offset_V
def _keep(*mismatch) -> tuple:
    return ("wall_s_total", "dc_runs", "supply_disabled_A", "bandwidth_theta1_Hz", "bandwidth_theta2_Hz",
            "ac_lowfreq_theta1_A_per_V", "ac_lowfreq_theta2_A_per_V", "wall_s_ac", "mc_n", "mc_combos", *mismatch,
            "sigma_offset_V", "wall_s_mc")


def reanalyze_lin(kind_name: str, analyze, keep, corner: str, out_dir=None, plots: bool = True, post=None,
                  analyze_kw=None) -> dict:
    """Recompute a three-parameter cell's fits / code tables from a saved <corner>.npz (no SPICE) with its
    `analyze` function, keeping the summary keys `keep` (AC, mismatch, wall times) from the saved table;
    analyze_kw(saved table) -> further keyword arguments of `analyze` (from the saved table's extra arrays);
    post(kind, corner, saved table, table, codetab, summary): a further step on them."""
    from pathlib import Path
    from .characterize import KINDS, REPO, write_results
    from .tables import CellTable
    kind = KINDS[kind_name]
    out_dir = Path(out_dir) if out_dir is not None else REPO / "characterization" / kind.name
    t = CellTable.load(out_dir / f"{corner}.npz")
    old = t.scalars
    summary, table, codetab = analyze(kind, corner, old["combos"], t.vs, t.i_d, t.i_s, t.i_dd,
                                      old["leakage_disabled_A"], old["wall_s_dc"],
                                      **(analyze_kw(t) if analyze_kw else {}))
    summary.update({k: old[k] for k in keep if k in old})
    if post is not None:
        post(kind, corner, t, table, codetab, summary)
    return write_results(kind, corner, table, codetab, summary, out_dir, plots)


def reanalyze_relu_lin(corner: str, out_dir=None, plots: bool = True) -> dict:
    """Recompute the relu_lin fits / code tables from a saved <corner>.npz (no SPICE)."""
    def knee(kind, corner, saved, table, codetab, summary):       # refit the knee on the saved sweeps, if any
        from .relu_lin_knee import apply_knee
        x = saved.extra
        if "knee_i_d" in x:
            apply_knee(kind, corner, table, codetab, summary, x["knee_families"], x["knee_v"], x["knee_i_d"])
    return reanalyze_lin("relu_lin", analyze_relu_lin, _keep("sigma_gain_rel", "wall_s_knee"), corner, out_dir,
                         plots, post=knee)


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
    from .characterize import save_deviation_plot
    save_deviation_plot(fig, ax[2], dev, g, table.vd, s["max_dev_pct_fs"], path)
