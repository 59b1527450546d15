"""Analysis of the tanh_lin cell's characterization (no simulation): the cell law with a few constants per
corner, per-combo fits of the three-parameter tanh, the code tables the quantize stage and the L2 surrogate
take, plots. `kchip.cells.tanh_lin` holds the subcircuit and the ngspice decks.

Cell law (4 constants A, S_s, S_d, T per corner):  i = A tanh(S_s (cs/15) x + S_d (cd/15) y + T (o - 8)),
x = vs - v_cm, y = vd - v_cm. Table law: i = A tanh(slope_s[cs] x + slope_d[cd] y + offset[o]). Surrogate law:
i = A_+- tanh(u), u = the table argument + k_cm (|cs| + |cd|) / 15, A_+ for u >= 0 and A_- for u < 0.
"""
from __future__ import annotations

import numpy as np



def surrogate_current(u, a_pos: float, a_neg: float):
    """Output of the surrogate law for the tanh argument u (numpy)."""
    return np.where(u >= 0, a_pos, a_neg) * np.tanh(u)


def _amplitudes(i_d):
    """Output amplitudes from the saturated points: median of i over the points within 3 % of the largest
    positive (negative) output -> (A_+, A_-), both > 0."""
    ap = float(np.median(i_d[i_d > 0.97 * np.max(i_d)]))
    an = float(-np.median(i_d[i_d < 0.97 * np.min(i_d)]))
    return ap, an


def _fit_combo(X, Y, i, amp, guess):
    """i = amp tanh(t1 X + t2 Y + t3) -> (t1, t2, t3): linear least squares of atanh(i / amp) on the unsaturated
    points (weights 1 - (i/amp)^2, the inverse of atanh's error gain), then nonlinear least squares from there and
    from `guess` (the cell law); the start with the smaller max deviation wins. A steep combo is a near-step
    function on the grid, where least squares from the cell law alone stopped in a local minimum (10 % FS)."""
    from scipy.optimize import least_squares
    y = (i / amp).ravel()
    ok = np.abs(y) < 0.97
    starts = [np.asarray(guess, float)]
    if ok.sum() >= 3:
        w = 1 - y[ok] ** 2
        M = np.stack([X.ravel()[ok], Y.ravel()[ok], np.ones(ok.sum())], 1) * w[:, None]
        starts.append(np.linalg.lstsq(M, np.arctanh(y[ok]) * w, rcond=None)[0])
    best, best_dev = None, np.inf
    for x0 in starts:
        r = least_squares(lambda q: (np.tanh(q[0] * X + q[1] * Y + q[2]) - i / amp).ravel(), x0=x0,
                          x_scale=[10.0, 10.0, 0.3])
        dev = float(np.max(np.abs(np.tanh(r.x[0] * X + r.x[1] * Y + r.x[2]) - i / amp)))
        if dev < best_dev:
            best, best_dev = r.x, dev
    return best


def _cell_law(combos, X, Y, i_d, kind):
    """A, S_s, S_d, T of the cell law: A from the saturated points, S_s, S_d, T by least squares, then all four
    minimax (Nelder-Mead) -> q = (A, S_s, S_d, T)."""
    from scipy.optimize import least_squares, minimize
    a0 = float(np.mean(_amplitudes(i_d)))
    q0 = np.array([a0, 70.0, 70.0, 0.35])
    law = lambda q: _law_surfaces(np.asarray(q) * q0, combos, X, Y, kind)
    ls = least_squares(lambda q: (law(np.r_[1.0, q]) - i_d).ravel() / a0, x0=[1, 1, 1])
    x1 = np.r_[1.0, ls.x]
    mm = minimize(lambda q: np.max(np.abs(law(q) - i_d)), x1, method="Nelder-Mead",
                  options=dict(xatol=1e-6, fatol=1e-13, maxiter=6000))
    q = mm.x if mm.fun <= np.max(np.abs(law(x1) - i_d)) else x1
    return q * q0


def _law_surfaces(q, combos, X, Y, kind):
    """The cell law A tanh(S_s (cs/15) x + S_d (cd/15) y + T (o - 8)) of constants q = (A, S_s, S_d, T) over the
    grid for every combo."""
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    c = np.asarray(combos, float)[:, :, None, None]
    cs, cd, orel = c[:, 0] / full, c[:, 1] / full, c[:, 2] - half
    return q[0] * np.tanh(q[1] * cs * X + q[2] * cd * Y + q[3] * orel)


def _surrogate_fit(i_d, u, amp):
    """Minimax (grid) amplitudes A_+ (u >= 0) and A_- (u < 0): the two halves are independent."""
    best = []
    for sel in (u >= 0, u < 0):
        t = np.tanh(u[sel])
        cand = amp * np.linspace(0.95, 1.05, 1001)
        err = [np.max(np.abs(i_d[sel] - a * t)) if sel.any() else 0.0 for a in cand]
        best.append(float(cand[int(np.argmin(err))]))
    return best


def _table_arg(tabs, k_cm, combos, sel, X, Y, kmax):
    """Table argument slope_s[cs] x + slope_d[cd] y + offset[o] of the combos `sel`, and the same + the
    common-mode term k_cm (|cs| + |cd|) / 15 (the surrogate's)."""
    gs = np.array([tabs["slope_s"].value(combos[j][0]) for j in sel])[:, None, None]
    gd = np.array([tabs["slope_d"].value(combos[j][1]) for j in sel])[:, None, None]
    b = np.array([tabs["offset"].value(combos[j][2]) for j in sel])[:, None, None]
    cm = np.array([(abs(combos[j][0]) + abs(combos[j][1])) / kmax for j in sel])[:, None, None]
    return gs * X + gd * Y + b, gs * X + gd * Y + b + k_cm * cm


def _code_tables(kind, combos, theta, rows):
    """slope_s / slope_d [1/V] for the signed codes: sums of per-bit slopes, one set per sign, each bit's slope
    from its bit-alone combo (the legs add; the combos at +-15 check that). offset[o]: additive in the offset
    bits plus a common-mode term theta3 = offset[o] + k_cm (|cs| + |cd|) / 15, least squares over the combos
    `rows`, each row weighted by how well its surface pins theta3: a combo with cs = cd = 0 is flat, i = A tanh(theta3),
    so its theta3 carries an error ~ 1 / sech^2(theta3) (at o = 0 the surface sits within 0.3 % of A and a per-combo
    fit may put theta3 anywhere beyond -3): weight sech^2(theta3); combos with a slope code turn on the grid: weight 1.
    Returns (tables, k_cm, max weighted residual of the offset fit)."""
    from .tables import CodeParam
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    tabs = {}
    for axis, nm in ((0, "slope_s"), (1, "slope_d")):
        w = {}
        for sg in (1, -1):
            def bit(k):
                c = [0, 0, half]; c[axis] = sg * 2 ** k
                return theta[combos.index(tuple(c)), axis]
            w[sg] = np.array([bit(k) for k in range(kind.bits)])
        codes = list(range(-full, full + 1))
        tabs[nm] = CodeParam(codes, [float(sum(w[1 if c >= 0 else -1][k] for k in range(kind.bits)
                                               if (abs(c) >> k) & 1)) for c in codes])
    A = np.array([[1.0] + [float((combos[j][2] >> k) & 1) for k in range(kind.obits)] +
                  [(abs(combos[j][0]) + abs(combos[j][1])) / full] for j in rows])
    wt = np.array([1.0 if combos[j][0] or combos[j][1] else 1.0 / np.cosh(theta[j, 2]) ** 2 for j in rows])
    beta = np.linalg.lstsq(A * wt[:, None], theta[rows, 2] * wt, rcond=None)[0]
    ocodes = list(range(2 ** kind.obits))
    tabs["offset"] = CodeParam(ocodes, [float(beta[0] + sum(beta[1 + k] for k in range(kind.obits) if (o >> k) & 1))
                                        for o in ocodes])
    return tabs, float(beta[-1]), float(np.max(np.abs(A @ beta - theta[rows, 2]) * wt))


def _tables_and_surrogate(kind, combos, theta, i_d, X, Y, amp, i_fs):
    """Code tables from the per-combo fits (every combo but the mixed ones), the table law's deviation, the
    surrogate's amplitudes and deviation over all combos, on the mixed combos held out of every fit (tables and
    amplitudes rebuilt without them), and on the difference-form combos (cd = -cs)."""
    full = 2 ** kind.bits - 1
    allj = list(range(len(combos)))
    mixed = [j for j, c in enumerate(combos) if c[0] not in (0, full, -full) and c[1] not in (0, full, -full)
             and c[0] != -c[1]]
    rest = [j for j in allj if j not in mixed]
    diff = [j for j, c in enumerate(combos) if c[0] == -c[1] and c[0] != 0]
    tabs, k_cm, resid = _code_tables(kind, combos, theta, rest)
    u_tab, u_sur = _table_arg(tabs, k_cm, combos, allj, X, Y, full)
    dev_tab = float(np.max(np.abs(i_d - amp * np.tanh(u_tab)))) / i_fs
    a_p, a_n = _surrogate_fit(i_d, u_sur, amp)
    err = np.abs(i_d - surrogate_current(u_sur, a_p, a_n)) / i_fs
    ap_h, an_h = _surrogate_fit(i_d[rest], u_sur[rest], amp)
    dev_held = float(np.max(np.abs(i_d[mixed] - surrogate_current(u_sur[mixed], ap_h, an_h)))) / i_fs
    return tabs, dict(theta3_cm=float(k_cm), offset_table_resid=float(resid), a_pos_A=a_p, a_neg_A=a_n,
                      max_dev_table_model_pct_fs=100 * dev_tab, max_dev_surrogate_pct_fs=100 * float(np.max(err)),
                      max_dev_surrogate_heldout_mixed_pct_fs=100 * dev_held,
                      max_dev_surrogate_diff_form_pct_fs=100 * float(np.max(err[diff])) if diff else float("nan"),
                      heldout_combos=[list(combos[j]) for j in mixed])


def struct_surrogate(kind, combos, grid, i_d, i_fs, powers=(2, 8), frontend=None, **kw):
    """The structural L2 surrogate (`tanh_lin_surrogate.fit_tanh_lin`) fitted to every combo -> its constants (json
    meta["surrogate"], with its figures and `held_out_check`: the same fit without the 8 fixed two-input combos
    below full code (cs, cd not in (0, +-15), not among the seeded draws `tanh_lin._mixed_draws`), and its max
    deviation on them). The figures stay out of the summary, which the npz holds too."""
    from .tanh_lin import _base_combos
    from .tanh_lin_surrogate import fit_tanh_lin
    full = 2 ** kind.bits - 1
    base = set(_base_combos(kind))
    hold = [c for c in combos if c in base and c[0] not in (0, full, -full) and c[1] not in (0, full, -full)]
    fit = lambda h: fit_tanh_lin(grid, grid, combos, i_d, i_fs, kind.vcm, kind.bits, kind.obits, hold=h, powers=powers,
                                 frontend=frontend, **kw)
    const, held = fit(()), fit(hold)
    const["held_out_check"] = {k: held[k] for k in ("held_out", "max_dev_pct_fs", "max_dev_at",
                                                     "max_dev_held_out_pct_fs", "max_dev_held_out_at")}
    return const


def _law_fit(kind, combos, X, Y, i_d):
    """The cell law fitted on every characterized combo: its constants q = (A, S_s, S_d, T), its max deviation / A
    over the structured combos (`tanh_lin._base_combos`; all combos if none is among them) and over all combos (the
    acceptance figure, since session 12: the seeded mixed draws are codes too), and where the latter is (combo, vd,
    vs indices). Sessions 4-11 fitted the law on the structured combos alone."""
    from .tanh_lin import _base_combos
    base = set(_base_combos(kind))
    inb = np.array([c in base for c in combos]) if any(c in base for c in combos) else np.ones(len(combos), bool)
    q = _cell_law(list(combos), X, Y, i_d, kind)
    err = np.abs(i_d - _law_surfaces(q, combos, X, Y, kind))
    worst = np.unravel_index(int(np.argmax(err)), i_d.shape)
    return q, float(np.max(err[inb])) / q[0], float(np.max(err)) / q[0], worst


def analyze_tanh_lin(kind, corner, combos, grid, i_d, i_s, i_dd, leak, wall, fit_surrogate: bool = True,
                     frontend=None):
    """Fits, figures of merit and code tables of the tanh_lin cell from its surfaces (no simulation); with
    `fit_surrogate`, the structural L2 surrogate's constants in the code table's meta["surrogate"] (~15 s).
    frontend: the front-end sweep (x_V, residual_V) (`tanh_lin.frontend_sweep`), kept in the table's extra arrays
    (frontend_x_V, frontend_residual_V) and taken by the surrogate as its fine input residual."""
    from .tables import CellTable, CodeTable
    combos = [tuple(int(x) for x in c) for c in combos]
    n = len(grid)
    VS, VD = np.meshgrid(grid, grid)                # (vd, vs) layout, vs fastest
    X, Y = VS - kind.vcm, VD - kind.vcm
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    q, dev, dev_all, (jw, dw, sw) = _law_fit(kind, combos, X, Y, i_d)
    amp, S_s, S_d, T = (float(v) for v in q)
    i_fs = amp
    theta, dev_fit = [], 0.0
    for j, c in enumerate(combos):
        t = _fit_combo(X, Y, i_d[j], amp, (S_s * c[0] / full, S_d * c[1] / full, T * (c[2] - half)))
        theta.append(t)
        dev_fit = max(dev_fit, float(np.max(np.abs(i_d[j] - amp * np.tanh(t[0] * X + t[1] * Y + t[2])))) / i_fs)
    theta = np.array(theta)
    params, sur = _tables_and_surrogate(kind, combos, theta, i_d, X, Y, amp, i_fs)
    kcl = float(np.max(np.abs(i_d - i_s))) / i_fs
    from .ports import port_conductances
    ports = port_conductances(combos, grid, grid, i_d, i_s)
    key = lambda c: ",".join(str(x) for x in c)
    ranges = dict(theta1_max_per_V=float(np.max(np.abs(params["slope_s"].values))),
                  theta2_max_per_V=float(np.max(np.abs(params["slope_d"].values))),
                  theta3_min=float(np.min(params["offset"].values)), theta3_max=float(np.max(params["offset"].values)),
                  theta3_step=float(np.median(np.diff(params["offset"].values))))
    table = CellTable(kind.name, corner, np.arange(len(combos)), grid, grid, i_d, i_s, i_dd, {}, ())
    if frontend is not None:
        table.extra = dict(frontend_x_V=np.asarray(frontend[0]), frontend_residual_V=np.asarray(frontend[1]))
    summary = dict(cell=kind.name, corner=corner, i_fs_A=i_fs, amp_A=amp, i_unit_A=kind.i_unit, vcm_V=kind.vcm,
                   span_V=kind.span, grid_V=[float(v) for v in grid], grid_points=int(n * n),
                   combos=[list(c) for c in combos], S_s_per_V=S_s, S_d_per_V=S_d, T_per_lsb=T,
                   max_dev_pct_fs=100 * dev_all, max_dev_base_combos_pct_fs=100 * dev,
                   max_dev_at=dict(combo=list(combos[jw]), vs_V=float(grid[sw]), vd_V=float(grid[dw])),
                   max_dev_percode_fit_pct_fs=100 * dev_fit,
                   theta_per_combo={key(c): theta[j].tolist() for j, c in enumerate(combos)}, **ranges, **sur,
                   kcl_mismatch_pct_fs=100 * kcl, leakage_disabled_A=leak, **ports,
                   leakage_pct_of_i_unit=100 * leak / kind.i_unit, wall_s_dc=wall, mc_n=0,
                   ideal_law="i = A tanh(S_s (cs/15) (vs-vcm) + S_d (cd/15) (vd-vcm) + T (o-8))",
                   supply_current_A={key(c): float(i_dd[j, n // 2, n // 2]) for j, c in enumerate(combos)})
    codetab = CodeTable(kind.name, corner, params, units={"slope_s": "1/V", "slope_d": "1/V", "offset": "1"},
                        meta=dict(bits=kind.bits, obits=kind.obits, vcm_V=kind.vcm, amp_A=amp,
                                  amp_pos_A=sur["a_pos_A"], amp_neg_A=sur["a_neg_A"], theta3_cm=sur["theta3_cm"],
                                  S_s_per_V=S_s, S_d_per_V=S_d, T_per_lsb=T, **ranges,
                                  law="i(s->d) = I_T tanh(slope_s[cs] (vs-vcm) + slope_d[cd] (vd-vcm) + offset[o]); "
                                      "signed gain codes: sign pin ngs/ngd = 1 for cs/cd < 0",
                                  surrogate_law="A tanh(u), u = table argument + theta3_cm (|cs| + |cd|) / 15, "
                                                "A = amp_pos_A for u >= 0, amp_neg_A for u < 0",
                                  table_index="CellTable codes index the (cs, cd, o) triples in summary.combos",
                                  slope_note="slope_s/slope_d [1/V]: sums of per-bit slopes (per sign), least squares "
                                             "over the per-combo fits; theta1_SW = slope * V_u",
                                  offset_note="offset[o]: additive in the offset bits, at zero gain codes; the realized "
                                              "theta3 adds theta3_cm (|cs| + |cd|) / 15"))
    if fit_surrogate:
        codetab.meta["surrogate"] = struct_surrogate(kind, combos, grid, i_d, i_fs, frontend=frontend)
    table.scalars = summary
    return summary, table, codetab


def reanalyze_tanh_lin(corner: str, out_dir=None, plots: bool = True) -> dict:
    """Recompute the tanh_lin fits / code tables from a saved <corner>.npz (no SPICE), with its front-end sweep
    if the npz holds one."""
    from .relu_lin_analysis import _keep, reanalyze_lin
    from .tanh_lin_surrogate import frontend_of
    keep = _keep("sigma_slope_rel", "sigma_theta3") + ("wall_s_frontend", "frontend_slope_A_per_V")
    return reanalyze_lin("tanh_lin", analyze_tanh_lin, keep, corner, out_dir, plots,
                         analyze_kw=lambda saved: dict(frontend=frontend_of(saved)))


def plot_tanh_lin(kind, table, path) -> None:
    """Curves at vd = v_cm (theta1 codes) and at vs = v_cm (theta2 codes); map of the worst deviation from the
    cell law over the (vs, vd) grid."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .characterize import save_deviation_plot
    s = table.scalars
    g = np.asarray(table.vs)
    mid = len(g) // 2
    cb = [tuple(c) for c in s["combos"]]
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4), dpi=80)
    for j, c in enumerate(cb):
        if c[1] == 0 and c[0] != 0:
            ax[0].plot(g, table.i_d[j, mid] * 1e9, ".-", lw=1, ms=3, label=f"cs={c[0]}")
        if c[0] == 0 and c[1] != 0:
            ax[1].plot(g, table.i_d[j, :, mid] * 1e9, ".-", lw=1, ms=3, label=f"cd={c[1]}")
    ax[0].set_xlabel("vs [V] (vd = v_cm, o = 8)"); ax[0].set_ylabel("I into d [nA]")
    ax[1].set_xlabel("vd [V] (vs = v_cm, o = 8)")
    ax[0].set_title(f"{table.cell} {table.corner}: theta1 codes"); ax[1].set_title("theta2 codes")
    ax[0].legend(fontsize=5, ncol=2); ax[1].legend(fontsize=5, ncol=2)
    VS, VD = np.meshgrid(g, g)
    ideal = _law_surfaces((s["amp_A"], s["S_s_per_V"], s["S_d_per_V"], s["T_per_lsb"]), cb, VS - kind.vcm,
                          VD - kind.vcm, kind)
    dev = np.max(np.abs(table.i_d - ideal), axis=0) / s["i_fs_A"] * 100
    save_deviation_plot(fig, ax[2], dev, g, g, s["max_dev_pct_fs"], path)
