"""tanh edge cell, three-parameter form (paper Eq. 13): a programmable-slope tanh of a current-domain sum.

    i(s->d) = I_T tanh(theta1 (vs - v_cm) + theta2 (vd - v_cm) + theta3)
    theta1 = K (+-gs/15) G_s,  theta2 = K (+-gd/15) G_d,  theta3 = K (ocode - 8) I_ub / ub_div,  K = k_pair R

  - front end = relu_lin's circuit (`relu_lin.lin_inputs`) at its own sizes (DEFAULTS): two degenerated lvt pairs
    (vs / vcm and vd / vcm; 128/4, split tails on a local weak-inversion diode), sign bits swap their gates, 4-bit
    binary pfet_lvt legs put (gs/15)(I_A1 - I_B1) + (gd/15)(I_A2 - I_B2) into node X (B legs through the nbx
    mirror);
  - bias: relu_diff's offset-binary DAC (`relu._bias_legs`) into two pfet diodes of ub_div units each, copied
    1:1 unit (so divided by ub_div) into X and nbx: X gets + (ocode - 8) I_ub / ub_div (a finer theta3 step);
  - current -> voltage: an xhigh-poly resistor R (r_conv) from X to REF: V_X - V_REF = R I_x by Ohm's law,
    whatever REF's impedance. REF is a local class-AB stack (pfet_lvt diode from vdd, nfet diode to vss, a
    standing current of ~1 uA) that absorbs I_x - no signal current from the chip's vcm line;
  - clamp: two nfet_lvt diodes (bulk = source) between X and REF, back to back: they conduct only when
    |V_X - V_REF| exceeds ~0.3 V, where the tanh is saturated, and keep the legs and the nbx mirror in
    saturation when the net current is large;
  - tanh: tanh_diff's nfet_01v8_lvt pair (bulk = common source) with gates X and REF, a fixed cascoded tail of
    tail_t units (I_T ~ 1 uA from vbn), tanh_diff's lvt-cascoded mirrors and output current steering
    (`library._outputs(..., steer=True, pre="T")`): en only steers the outputs, the cell stays biased.

Pins (`tanh_lin_pins`): s d en gs0..gs3 ngs gd0..gd3 ngd o0..o3 vbn vcp vcn vcm vdd vss (no vk: no rectifier).
"""
from __future__ import annotations

import numpy as np

from ..pdk import Pdk
from . import library as L
from . import relu as R
from . import relu_lin as RL
from . import sweep as SW

DEFAULTS = dict(RL.DEFAULTS, enable="output", r_conv=1.6e6, w_rc=0.35, ub_div=14, w_cl=16.0, l_cl=1.0,
                w_rp=2.0, l_rp=8.0, w_rn=8.0, l_rn=8.0, tail_t=15, w_tt=1.022, l_tt=4.0, w_ttc=1.0, l_ttc=1.0,
                w_in=128.0, l_in=4.0, tail_local=(64.0, 8.0), w_nb=8.0, w_nc=128.0)
# Session 12 (docs/cells.md, tanh_lin, "Session 12: the 1.5 % target met at tt"): at ~74 /V a cancellation line
# needs the two transconductors to agree within ~0.1 mV over +-0.3 V, and the standing currents they carry (2 x 1.47 uA per
# input) to reach X through the A path (pfet legs) and the B path (pfet legs -> nbx nfet mirror) with the same
# gain within ~5e-5. Measured with ideal parts put in one at a time: the front end's even-order residual and the
# nbx mirror's gain error were the two large terms. w_in/l_in (relu_lin: 16/1): a longer, wider lvt pair (weaker
# inversion, less DIBL: the even residual at +-0.3 V from -1.07 to -0.08 mV). tail_local (W, L): the split tails
# as W/L units on a local weak-inversion diode, which keeps them saturated where the low input's source falls to
# ~0.3 V. w_nb/w_nc (were w_n 16 / w_nc 16): the nbx mirror's main devices narrower and its cascodes wider, so the
# main devices keep their V_DS at 3 uA (offset per full-code input from -0.011 to -0.004 in theta3 units).
# r_conv: the I -> V resistor (sky130 xhigh_po, 2000 ohm/sq, width w_rc): theta1 per volt at full code
# ~ k_pair r_conv G ~ 12.5 * 1.6 MOhm * 2.5 uA/V ~ 50 /V. ub_div: the bias DAC's unit (relu's I_ub ~ 175 nA) is
# divided by this pfet mirror ratio, so the theta3 step is ~ k_pair r_conv I_ub / ub_div ~ 0.35.
# w_cl/l_cl: the X-REF clamp diodes (nfet_01v8_lvt, bulk = source). w_rp/l_rp, w_rn/l_rn: REF's class-AB stack.
# tail_t units of w_tt/l_tt (from vbn of the shared 1/4 reference: 1.022 = tanh_diff's V_DS trim) with a
# cascode per unit (w_ttc/l_ttc, gate vcn) = the fixed full-scale tail I_T. Keys "t_<name>" override
# library.DEFAULTS["tanh_diff"] for the tanh stage (pair, mirrors, steering switches).


def tanh_lin_pins(bits: int = 4, obits: int = 4):
    return (["s", "d", "en"] + [f"gs{k}" for k in range(bits)] + ["ngs"] + [f"gd{k}" for k in range(bits)] +
            ["ngd"] + [f"o{k}" for k in range(obits)] + ["vbn", "vcp", "vcn", "vcm", "vdd", "vss"])


BIAS_PINS = ["vbn", "vcp", "vcn"]


def _divided_bias(pdk: Pdk, p: dict) -> list:
    """The bias DAC's two pfet diodes (nc: o I_ub, nk: the fixed 8 I_ub), ub_div cascoded units each, and their
    one-unit copies into X (from nc) and nbx (from nk): X gets (o - 8) I_ub / ub_div."""
    f = lambda *a, **k: L._fet(pdk, *a, **k)
    div = int(p["ub_div"])
    out = []
    for dio, copy, node, dst in (("PC", "PCX", "nc", "x"), ("PK", "PKX", "nk", "nbx")):
        out += [f("pfet_lvt", dio, f"x{dio.lower()}", node, "vdd", "vdd", p["w_pu"], p["l_pu"], m=div),
                f("pfet_lvt", dio + "C", node, "vcp", f"x{dio.lower()}", "vdd", p["w_pcu"], p["l_pcu"], m=div),
                f("pfet_lvt", copy, f"x{copy.lower()}", node, "vdd", "vdd", p["w_pu"], p["l_pu"]),
                f("pfet_lvt", copy + "C", dst, "vcp", f"x{copy.lower()}", "vdd", p["w_pcu"], p["l_pcu"])]
    return out


def _tanh_stage(pdk: Pdk, p: dict) -> list:
    """R from X to REF, REF's class-AB stack, the X-REF clamp, the tanh pair (gates X, REF) on its fixed
    cascoded tail, tanh_diff's output mirrors with current steering."""
    f = lambda *a, **k: L._fet(pdk, *a, **k)
    pt = dict(L.DEFAULTS["tanh_diff"])
    pt.update({k[2:]: v for k, v in p.items() if k.startswith("t_")})
    res = pdk.device("res_xhigh")
    lr = p["r_conv"] / float(res["rs_ohm_per_sq"]) * p["w_rc"]
    nt = int(p["tail_t"])
    return ["* current -> voltage: R from X to REF (xhigh poly)",
            (f"XRC x ref vss {res['name']} w={p['w_rc']:g} l={lr:.2f}" if not p.get("r_ideal") else
             f"RRC x ref {p['r_conv']:.6g}"),
            "* REF: class-AB stack (pfet_lvt diode from vdd, nfet diode to vss) absorbs the net current",
            *([f("pfet_lvt", "RFP", "ref", "ref", "vdd", "vdd", p["w_rp"], p["l_rp"]),
               f("nfet", "RFN", "ref", "ref", "vss", "vss", p["w_rn"], p["l_rn"])] if not p.get("ref_v") else
              [f"VREF ref vss {p['ref_v']}"]),
            "* clamp: back-to-back nfet_lvt diodes (bulk = source) X <-> REF, on beyond ~0.3 V",
            *([] if p.get("no_clamp") else [f(p.get("cl_dev", "nfet_lvt"), "CLP", "x", "x", "ref", p.get("cl_bulk") or "ref", p["w_cl"], p["l_cl"]),
            f(p.get("cl_dev", "nfet_lvt"), "CLN", "ref", "ref", "x", p.get("cl_bulk") or "x", p["w_cl"], p["l_cl"])]),
            "* tanh pair (bulk = common source) on a fixed cascoded tail; en -> enb inverter for the steering",
            f("pfet", "MIP", "enb", "en", "vdd", "vdd", 0.42, 0.15),
            f("nfet", "MIN", "enb", "en", "vss", "vss", 0.42, 0.15),
            f(pt["pair"], "TM1", "ta", "x", "tt", "tt", pt["w_in"], pt["l_in"]),
            f(pt["pair"], "TM2", "tb", "ref", "tt", "tt", pt["w_in"], pt["l_in"]),
            f("nfet", "TTC", "tt", "vcn", "ttq", "vss", p["w_ttc"], p["l_ttc"], m=nt),
            f("nfet", "TTU", "ttq", "vbn", "vss", "vss", p["w_tt"], p["l_tt"], m=nt),
            *L._outputs(pdk, pt, "ta", "tb", steer=True, pre="T")]


def tanh_lin_subckt(pdk: Pdk, name: str | None = None, **kw) -> L.Subckt:
    """Subcircuit of the three-parameter tanh cell (module docstring)."""
    p = dict(DEFAULTS); p.update(kw)
    if p["enable"] != "output":
        raise ValueError(f"tanh_lin: enable={p['enable']!r}; only output steering ('output') is built")
    n, m = int(p["bits"]), int(p["obits"])
    full = 2 ** n - 1
    name = name or f"kc_tanh_lin{n}_{m}"
    pn = dict(p, cascode=p.get("nb_cascode", True), w_n=p.get("w_nb", p["w_n"]), l_n=p.get("l_nb", p["l_n"]))
    mirn = lambda *a: L._mirror(pdk, pn, *a)
    pins = tanh_lin_pins(n, m)
    lines = [f".subckt {name} {' '.join(pins)}",
             f"* kchip tanh_lin edge cell: I_T tanh(K (+-gs/{full} G (vs-vcm) +- gd/{full} G (vd-vcm) + "
             f"(o-{2 ** (m - 1)}) I_ub/{p['ub_div']}))",
             *RL.lin_inputs(pdk, p, n),
             "* bias: offset-binary DAC into pfet diodes nc / nk, divided copies into X / nbx",
             *R._bias_legs(pdk, p, m, "nc", "nk"), *_divided_bias(pdk, p),
             "* nbx -> X: nfet mirror sinks the B-branch sum from X",
             *mirn("nfet", "NBX", "nbx", "nbx", "vss", True),
             *mirn("nfet", "NBS", "x", "nbx", "vss", False),
             *_tanh_stage(pdk, p),
             f".ends {name}"]
    return L.Subckt(name, pins, "\n".join(lines), p)


# ------------------------------------------------------------------------------------------ characterization
GRID_ALPHA = 0.2       # grid shape: v - v_cm = span (a u + (1 - a) u^3), u uniform in [-1, 1]


def grid_volts(kind, n: int | None = None, alpha: float = GRID_ALPHA) -> np.ndarray:
    """The characterization grid of one input: n points from v_cm - span to v_cm + span, dense near v_cm (where
    a steep tanh turns) and coarse at the ends (where it is saturated): v = v_cm + span (a u + (1 - a) u^3)."""
    n = n or int(round(2 * kind.span / kind.step)) + 1
    u = np.linspace(-1.0, 1.0, n)
    return kind.vcm + kind.span * (alpha * u + (1 - alpha) * u ** 3)


def _sweep_head(kind, grid) -> list:
    """Sources: vcm at v_cm, and the serpentine path over grid x grid (`kchip.cells.sweep`: one input moves by
    one grid step at a time, in sub-steps; a nested 2-D .dc restarted its inner sweep with a 0.6 V jump at which
    Newton failed and fell back to gmin stepping)."""
    return [f"Vcm vcm 0 {kind.vcm}"] + SW.path_sources(grid, grid)


def _head(pdk, kind, corner, sub, title) -> list:
    """characterize._header + a 1 TOhm shunt on every node (`rshunt`): the off magnitude legs leave pfet
    cascode drains that only off switches touch, and with gmin = 1e-15 Newton failed at most sweep points and fell
    back to gmin stepping (3 instances x 5 points: 36 s -> 14 s; the shunt adds <= 1 pA at any node)."""
    from .characterize import _header
    return _header(pdk, kind, corner, sub, title) + [".options rshunt=1e12"]


def _tanh_combos(kind):
    """Characterized (cs, cd, o): every magnitude bit alone per input with both signs (o = 8: theta3 ~ 0),
    +-15 on one input and on both (all four sign pairs), a bias series at zero gain (the output is then
    I_T tanh(theta3[o]) everywhere), mixed combos, difference-form combos cd = -cs with offsets, and
    `MIXED_DRAWS` seeded mixed triples (`_mixed_draws`)."""
    base = _base_combos(kind)
    return base + _mixed_draws(base)


def _base_combos(kind):
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    out = []
    for k in range(kind.bits):
        for sg in (1, -1):
            out += [(sg * 2 ** k, 0, half), (0, sg * 2 ** k, half)]
    out += [(full, 0, half), (-full, 0, half), (0, full, half), (0, -full, half)]
    out += [(a, b, half) for a in (full, -full) for b in (full, -full)]
    out += [(0, 0, o) for o in (0, 3, 5, 7, 8, 9, 11, 13, 15)]
    out += [(5, -10, 9), (-7, 3, 11), (12, 6, 5), (9, 2, 6)]          # mixed (held out of the surrogate fit)
    out += [(6, -6, 8), (10, -10, 11), (3, -3, 5), (-8, 8, 10)]       # difference form theta1 (vs - vd) + theta3
    return out


MIXED_DRAWS, MIXED_SEED = 16, 2026


def _mixed_draws(have, n: int = MIXED_DRAWS, seed: int = MIXED_SEED) -> list:
    """n seeded mixed triples: |cs|, |cd| in 1..14 with random signs (not the difference form cd = -cs), o in 0..15.
    They tie down what single-input and full-code combos leave free (the loading of X by both inputs' legs at once,
    and its product with the bias): without them the structural surrogate was 0.52 % FS off the characterized
    triples but 2.3-3.4 % off random ones (docs/results.md). Like the other mixed combos they stay out of the code
    tables' fits."""
    rng = np.random.default_rng(seed)
    out, seen = [], set(have)
    while len(out) < n:
        a, b = (int(rng.integers(1, 15)) * (1 if rng.random() < 0.5 else -1) for _ in range(2))
        t = (a, b, int(rng.integers(0, 16)))
        if a != -b and t not in seen:
            out.append(t); seen.add(t)
    return out


def _inst(kind, sub, tag, cs, cd, o, en="en", s="s", d="d"):
    return RL._inst_lin(kind, sub, tag, cs, cd, o, en=en, bias=BIAS_PINS, s=s, d=d)


DECK_INSTANCES = 3      # instances per DC deck (see _chunked_run)


def _chunked_run(head, insts, analysis, jobs, inst_lines, per_deck: int = DECK_INSTANCES, **kw):
    """Like relu._split_run, but `per_deck` instances per deck and `jobs` decks at a time. Where Newton fails at a
    sweep point ngspice steps gmin for the whole deck, so the cost grows faster than the instance count: one deck
    of 21 instances x 81 points ran > 18 min, 5 instances 70 s (docs/cells.md)."""
    import time
    from ..sim.ngspice import run_decks
    decks = ["\n".join(list(head) + [ln for it in insts[k:k + per_deck] for ln in inst_lines(*it)] + [analysis, ".end"])
             for k in range(0, len(insts), per_deck)]
    t0 = time.perf_counter()
    results = run_decks(decks, jobs=max(1, jobs), **kw)
    wall = time.perf_counter() - t0
    vec = {}
    for r in results:
        vec.update(r.plots[0].vectors)
    return vec, wall, len(decks)


def char_tanh_lin(pdk, kind, corner, n_mc, jobs=1, substeps=SW.SUBSTEPS):
    """DC surfaces of every combo (+ one disabled instance) over the vs x vd grid (`grid_volts`), instances
    split over `jobs` ngspice runs side by side; AC; mismatch (n_mc copies)."""
    from .tanh_lin_analysis import analyze_tanh_lin
    sub = kind.subckt(pdk)
    combos = _tanh_combos(kind)
    grid = grid_volts(kind)
    n = len(grid)
    head = _head(pdk, kind, corner, sub, "DC surfaces") + _sweep_head(kind, grid)
    full = 2 ** kind.bits - 1
    insts = [(RL._tag(*c), *c, "en") for c in combos] + [("off", full, full, 2 ** kind.obits - 1, "0")]
    dc, wall, n_decks = _chunked_run(
        head, insts, SW.path_analysis(n, substeps), jobs, lambda tag, cs, cd, o, en: _inst(kind, sub, tag, cs, cd, o, en=en),
        cell=kind.name, point=f"DC surface grid at corner {corner}", expect_points=[SW.path_points(n, substeps)],
        timeout=3600)
    dc = SW.at_grid(dc, n, substeps)
    get = lambda pre: np.stack([SW.surface(dc[f"i({pre}{RL._tag(*c)})"], n) for c in combos])
    i_d, i_s, i_dd = get("vmd"), get("vms"), get("vdd")
    leak = float(max(np.max(np.abs(dc["i(vmdoff)"])), np.max(np.abs(dc["i(vmsoff)"]))))
    fe = frontend_sweep(pdk, kind, corner)
    summary, table, codetab = analyze_tanh_lin(kind, corner, combos, grid, i_d, i_s, i_dd, leak, wall,
                                               frontend=(fe["x_V"], fe["residual_V"]))
    summary.update(dc_runs=n_decks, supply_disabled_A=float(SW.surface(dc["i(vddoff)"], n)[n // 2, n // 2]),
                   wall_s_frontend=fe["wall_s"], frontend_slope_A_per_V=fe["slope_A_per_V"])
    summary.update(ac_tanh_lin(pdk, kind, corner))
    if n_mc > 1:
        summary.update(mismatch_tanh_lin(pdk, kind, corner, n_mc, summary, jobs))
    return summary, table, codetab


FRONTEND_STEP = 0.0025     # V, the front-end sweep's step


def frontend_deck(pdk, kind, corner, step: float = FRONTEND_STEP, vcm: float | None = None, post=None) -> str:
    """The front-end test deck: four copies of the cell with the X node held (r_conv an ideal 1 kOhm into REF,
    REF a source at v_cm, no clamp) so that I_x = (V_x - V_REF) / 1 kOhm is the programmable transconductors'
    output alone; one input at full code (+15, -15 on s; +15, -15 on d), the other at v_cm, swept together over
    v_cm +- (span + 10 mV) in `step`. post: a text edit of the cell (benchmarks: variants)."""
    from .characterize import cell_bias
    vcm = kind.vcm if vcm is None else vcm
    sub = tanh_lin_subckt(pdk, name="kc_tanh_lin_fe", bits=kind.bits, obits=kind.obits, ref_v=vcm, no_clamp=True,
                          **(kind.design or {}))
    text = "\n".join(("RRC x ref 1000" if ln.startswith("XRC ") else ln) for ln in sub.text.splitlines())
    text = post(text) if post else text
    cells, _ = pdk.share_models("\n".join([cell_bias(pdk, kind.name, kind.design).text, text]))
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    lines = [f"* kchip characterization: {kind.name} {corner} front-end sweep", pdk.model_include(corner),
             f".temp {pdk.temperature_c}", ".options gmin=1e-15 reltol=1e-4 abstol=1e-15 rshunt=1e12", cells,
             f"Vdd vdd 0 {pdk.vdd}", f"Iref vdd vbn {kind.i_unit:.6e}", "XB vbn vcp vcn vk vdd 0 kc_bias",
             f"Ven en 0 {pdk.vdd}", f"Vcm vcm 0 {vcm}", f"Vx vx 0 dc {vcm}", f"Vh h 0 {vcm}"]
    for tag, cs, cd in _fe_runs(full):
        sn, dn = ("vx", "h") if cs else ("h", "vx")
        lines += _inst(kind, sub, tag, cs, cd, half, s=sn, d=dn)
    lim = kind.span + 0.01
    n = int(round(2 * lim / step))
    return "\n".join(lines + [f".dc Vx {vcm - lim:.6f} {vcm - lim + n * step:.6f} {step:.6f}", ".end"])


def _fe_runs(full):
    """The front-end deck's instances: (tag, cs, cd) with +15 / -15 on s, then on d."""
    return (("sp", full, 0), ("sm", -full, 0), ("dp", 0, full), ("dm", 0, -full))


def frontend_sweep(pdk, kind, corner, step: float = FRONTEND_STEP, vcm: float | None = None, post=None) -> dict:
    """Run `frontend_deck` -> x_V (M,) (input - v_cm), the input-referred residual (2 inputs, 2 signs (+, -), M) in
    V of each transconductor: (I_x(x) - I_x(0)) / G - x with G its least-squares slope over +-span (so the residual
    is 0 at v_cm and has no slope there on average), slope_A_per_V (2, 2) = G, wall_s. The structural surrogate
    takes it as its fine residual f_i (`tanh_lin_surrogate`): between the 9-point grid's outer points (146 mV
    apart) the residual bends by ~1 mV, which at ~66 /V is several % of the output on a cancellation line."""
    import time
    from ..sim.ngspice import run_deck
    vcm = kind.vcm if vcm is None else vcm
    t0 = time.perf_counter()
    r = run_deck(frontend_deck(pdk, kind, corner, step, vcm, post), cell=kind.name,
                 point=f"front-end sweep at corner {corner}").plots[0]
    wall = time.perf_counter() - t0
    x = np.real(r["v(vx)"]) - vcm
    full = 2 ** kind.bits - 1
    res, slope = np.zeros((2, 2, len(x))), np.zeros((2, 2))
    inner = np.abs(x) <= kind.span + 1e-9
    for k, (tag, _, _) in enumerate(_fe_runs(full)):
        ix = (np.real(r[f"v(x{tag}.x)"]) - np.real(r[f"v(x{tag}.ref)"])) / 1e3
        ix = ix - np.interp(0.0, x, ix)
        g = float(np.polyfit(x[inner], ix[inner], 1)[0])
        res[k // 2, k % 2], slope[k // 2, k % 2] = ix / g - x, g
    return dict(x_V=x, residual_V=res, slope_A_per_V=slope.tolist(), wall_s=wall)


def ac_tanh_lin(pdk, kind, corner) -> dict:
    """Small-signal bandwidth of theta1 ((15, 0, 8), vs driven) and theta2 ((0, 15, 8), the d pin driven: the
    cell's d input is its own output node), both inputs at v_cm: -3 dB frequency of |i_d / v|."""
    sub = kind.subckt(pdk)
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    lines = _head(pdk, kind, corner, sub, "AC") + [f"Vcm vcm 0 {kind.vcm}", f"Vs s 0 dc {kind.vcm} ac 1",
                                                     f"Vd d 0 dc {kind.vcm}"]
    lines += _inst(kind, sub, "t1", full, 0, half) + _inst(kind, sub, "t2", 0, full, half, s="d", d="s")
    return RL.ac_theta_bandwidths(kind, corner, lines)


def mismatch_tanh_lin(pdk, kind, corner, n_mc, summary, jobs=1) -> dict:
    """n_mc copies (corner <corner>_mm) of (15, 0, 8), (4, 0, 8), (0, 4, 8) (active input swept over
    v_cm +- span_k, 7 points, the other at v_cm) and (0, 0, 8) -> per combo sigma of the fitted slope (relative)
    and of theta3 (atanh(i / A) = theta x + theta3, fitted on the unsaturated points) and the input-referred
    offset theta3 / theta (V)."""
    mm = corner + pdk.mismatch_suffix
    sub = kind.subckt(pdk)
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    combos = [(full, 0, half), (4, 0, half), (0, 4, half), (0, 0, half)]
    amp = summary["amp_A"]
    npts = 7
    head = _head(pdk, kind, mm, sub, f"mismatch x{n_mc}") + [
        f"Vcm vcm 0 {kind.vcm}", "Vu u 0 dc 0", f"Bs1 s1 0 V = {kind.vcm} + 0.03 * v(u)",
        f"Bs2 s2 0 V = {kind.vcm} + 0.1 * v(u)", f"Vh h 0 {kind.vcm}"]
    net = {combos[0]: ("s1", "h"), combos[1]: ("s2", "h"), combos[2]: ("h", "s2"), combos[3]: ("h", "h")}
    span = {combos[0]: 0.03, combos[1]: 0.1, combos[2]: 0.1, combos[3]: 0.1}
    insts = [(f"{RL._tag(*c)}m{m}", *c) for c in combos for m in range(n_mc)]

    def lines(tag, cs, cd, o):
        sn, dn = net[(cs, cd, o)]
        return _inst(kind, sub, tag, cs, cd, o, s=sn, d=dn)
    dc, wall, _ = R._split_run(head, insts, f".dc Vu -1 1 {2 / (npts - 1):.6f}", max(1, jobs), lines,
                               cell=kind.name, point=f"mismatch sweep at corner {mm}", expect_points=[npts])
    u = np.linspace(-1, 1, npts)
    sig_t, sig_t3, sig_off = {}, {}, {}
    for c in combos:
        th, t3 = [], []
        for m in range(n_mc):
            y = np.real(dc[f"i(vmd{RL._tag(*c)}m{m})"]) / amp
            ok = np.abs(y) < 0.95
            z = np.arctanh(np.clip(y, -0.999, 0.999))
            if c[:2] == (0, 0):
                t3.append(float(np.mean(z))); continue
            if ok.sum() >= 3:
                pg = np.polyfit(span[c] * u[ok], z[ok], 1)
                th.append(pg[0]); t3.append(pg[1])
        key = ",".join(str(x) for x in c)
        sig_t3[key] = float(np.std(t3, ddof=1)) if len(t3) > 2 else float("nan")
        if th:
            sig_t[key] = float(np.std(th, ddof=1) / abs(np.mean(th))) if len(th) > 2 else float("nan")
            sig_off[key] = float(np.std(np.array(t3) / np.array(th), ddof=1)) if len(th) > 2 else float("nan")
    return dict(mc_n=n_mc, mc_combos=[list(x) for x in combos], sigma_slope_rel=sig_t, sigma_theta3=sig_t3,
                sigma_offset_V=sig_off, wall_s_mc=wall)
