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
from . import sweep as SW
from .relu_lin_analysis import analyze_relu_lin     # the analysis half: fits, code tables, plots
from .relu_lin_knee import apply_knee, knee_sweep

DEFAULTS = dict(R.DEFAULTS, tail_units=15, w_pu=2.0, l_pu=6.0, w_pcu=2.0, l_pcu=1.0, w_tg=0.42, l_tg=0.15,
                d_switch=True, w_dsw=1.0, l_dsw=0.5, enable="output")
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


def local_tail_bias(pdk: Pdk, p: dict) -> list:
    """The local tail bias of `tail_local` = (W, L): a vbn unit sinks one unit current from a pfet_lvt diode, whose
    copy sources it into an nfet diode of W/L (gate vbl): tails of W/L units on vbl then carry the same unit current
    per device at a lower current density (weak inversion, a smaller V_DS,sat). Empty without `tail_local`."""
    if not p.get("tail_local"):
        return []
    f = lambda *a, **k: L._fet(pdk, *a, **k)
    w, l_ = p["tail_local"]
    return ["* local tail bias (tail_local): vbn unit -> pfet mirror -> nfet diode vbl",
            f("nfet", "LBN", "lbp", "vbn", "vss", "vss", p["w_u"], p["l_u"]),
            f("pfet_lvt", "LBP", "lbp", "lbp", "vdd", "vdd", p["w_pu"], p["l_pu"]),
            f("pfet_lvt", "LBC", "vbl", "lbp", "vdd", "vdd", p["w_pu"], p["l_pu"]),
            f("nfet", "LBD", "vbl", "vbl", "vss", "vss", w, l_)]


def lin_inputs(pdk: Pdk, p: dict, n: int) -> list:
    """The two signed, 4-bit programmable transconductors (shared by relu_lin and tanh_lin): pair i (gates
    input / vcm, swapped by the sign bit through transmission gates), its branch currents into cascoded pfet_lvt
    diodes of 2^n - 1 units, binary legs (bit k = 2^k units) of branch A into node x and of branch B into nbx.
    x then gets (gs/15)(I_A1 - I_B1) + (gd/15)(I_A2 - I_B2) once nbx is mirrored out of x."""
    f = lambda *a, **k: L._fet(pdk, *a, **k)
    full = 2 ** n - 1
    lines = local_tail_bias(pdk, p)
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
    return lines


def relu_lin_subckt(pdk: Pdk, name: str | None = None, **kw) -> L.Subckt:
    """Subcircuit of the three-parameter ReLU cell (module docstring). Ratios from unit devices (m=): pair-side
    pfet diodes m = 2^bits - 1, magnitude legs m = 2^k, bias DAC as relu_diff, rectifier m = 2^bits - 1."""
    p = dict(DEFAULTS); p.update(kw)
    n, m = int(p["bits"]), int(p["obits"])
    full = 2 ** n - 1
    name = name or f"kc_relu_lin{n}_{m}"
    mir = lambda *a: L._mirror(pdk, p, *a)
    pn = dict(p, cascode=p.get("nb_cascode", True), w_n=p.get("w_nb", p["w_n"]), l_n=p.get("l_nb", p["l_n"]))
    mirn = lambda *a: L._mirror(pdk, pn, *a)
    pins = lin_pins(n, m)
    lines = [f".subckt {name} {' '.join(pins)}",
             f"* kchip relu_lin edge cell: relu(+-gs/{full} G0 (vs-vcm) +- gd/{full} G0 (vd-vcm) + (o-{2 ** (m - 1)}) I_ub)",
             *lin_inputs(pdk, p, n)]
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


def _inst_lin(kind, sub: L.Subckt, tag: str, cs: int, cd: int, o: int, en: str = "en", bias=None,
              s: str = "s", d: str = "d") -> list:
    """Instance `tag` at signed gain codes cs (theta1), cd (theta2) and offset code o, its s / d pins on nets `s` /
    `d` through ammeters i(vmd<tag>) (into d), i(vms<tag>) (out of s), i(vdd<tag>) (supply). bias: the cell's
    bias pins (default relu_lin's, `L.bias_pins(obits)`; tanh_lin has no vk)."""
    n, m = kind.bits, kind.obits
    bias = L.bias_pins(m) if bias is None else bias
    pins = [f"s{tag}", f"d{tag}", en, *_code_bits(cs, n), *_code_bits(cd, n),
            *["vdd" if (o >> k) & 1 else "0" for k in range(m)], *bias, "vcm", f"vdd{tag}", "0"]
    return [f"Vmd{tag} d{tag} {d} 0", f"Vms{tag} {s} s{tag} 0", f"Vdd{tag} vdd vdd{tag} 0",
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


def char_relu_lin(pdk, kind, corner, n_mc, jobs=1, substeps=None):
    """DC surfaces of every combo (+ one disabled instance) over vs x vd, split over `jobs` parallel ngspice
    runs; then mismatch (n_mc copies)."""
    from .characterize import _header
    substeps = substeps or SW.SUBSTEPS
    sub = kind.subckt(pdk)
    combos = _combos_lin(kind)
    lo, hi = kind.vcm - kind.span, kind.vcm + kind.span
    n = int(round((hi - lo) / kind.step)) + 1
    grid = lo + kind.step * np.arange(n)
    # the vs x vd grid as one serpentine path in sub-steps (kchip.cells.sweep; a nested 2-D .dc restarted its
    # inner sweep with a 0.6 V jump and fell back to gmin stepping)
    head = _header(pdk, kind, corner, sub, "DC surfaces") + [f"Vcm vcm 0 {kind.vcm}"] + SW.path_sources(grid, grid)
    full = 2 ** kind.bits - 1
    insts = [(_tag(*c), *c, "en") for c in combos] + [("off", full, full, 2 ** kind.obits - 1, "0")]
    dc, wall, n_decks = R._split_run(
        head, insts, SW.path_analysis(n, substeps),
        max(1, jobs), lambda tag, cs, cd, o, en: _inst_lin(kind, sub, tag, cs, cd, o, en=en),
        cell=kind.name, point=f"DC surface grid at corner {corner}", expect_points=[SW.path_points(n, substeps)],
        timeout=3600)
    dc = SW.at_grid(dc, n, substeps)
    get = lambda pre: np.stack([SW.surface(dc[f"i({pre}{_tag(*c)})"], n) for c in combos])
    i_d, i_s, i_dd = get("vmd"), get("vms"), get("vdd")
    leak = float(max(np.max(np.abs(dc["i(vmdoff)"])), np.max(np.abs(dc["i(vmsoff)"]))))
    i_dd_off = float(SW.surface(dc["i(vddoff)"], n)[n // 2, n // 2])
    summary, table, codetab = analyze_relu_lin(kind, corner, combos, grid, i_d, i_s, i_dd, leak, wall)
    summary.update(dc_runs=n_decks, supply_disabled_A=i_dd_off)
    # fine sweeps across the knee: where a settling node stops, and the tail below it (kchip.cells.relu_lin_knee)
    fam, v, i_k, wall_k = knee_sweep(pdk, kind, corner, jobs)
    apply_knee(kind, corner, table, codetab, summary, fam, v, i_k)
    summary["wall_s_knee"] = wall_k
    summary.update(ac_lin(pdk, kind, corner))
    if n_mc > 1:
        summary.update(mismatch_lin(pdk, kind, corner, n_mc, jobs))
    return summary, table, codetab


SWAP = {"s": "d", "d": "s"}      # `_inst_lin` nets: the sweep/AC node s on the cell's d pin, the held node on s


def ac_lin(pdk, kind, corner) -> dict:
    """Small-signal bandwidth of theta1 (code (15, 0, 12), vs driven) and theta2 ((0, 15, 12), the d pin driven:
    d(i into d)/d(vd) is theta2 itself), both inputs at v_cm: -3 dB frequency of |i_d / v|."""
    from .characterize import _header
    sub = kind.subckt(pdk)
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    c1, c2 = (full, 0, half + half // 2), (0, full, half + half // 2)
    lines = _header(pdk, kind, corner, sub, "AC") + [f"Vcm vcm 0 {kind.vcm}", f"Vs s 0 dc {kind.vcm} ac 1",
                                                     f"Vd d 0 dc {kind.vcm}"]
    lines += _inst_lin(kind, sub, "t1", *c1) + _inst_lin(kind, sub, "t2", *c2, **SWAP)
    return ac_theta_bandwidths(kind, corner, lines)


def ac_theta_bandwidths(kind, corner, lines) -> dict:
    """Run an AC deck (`lines`: header, sources, instance t1 driven on s, instance t2 driven on its d pin) and
    return the -3 dB frequency and the low-frequency |i_d / v| of theta1 (t1) and theta2 (t2) and the wall time
    (shared by relu_lin and tanh_lin)."""
    from .characterize import _bandwidth
    from ..sim.ngspice import run_deck
    res = run_deck("\n".join(lines + [".ac dec 10 1e3 1e9", ".end"]), cell=kind.name,
                   point=f"AC at corner {corner}")
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
    def lines(tag, cs, cd, o):                         # vd-combos: the sweep goes to d, s held at v_cm
        return _inst_lin(kind, sub, tag, cs, cd, o, **(SWAP if cd else {}))
    dc, wall, _ = R._split_run(head, insts, f".dc Vs {lo:.4f} {hi:.4f} {(hi - lo) / (npts - 1):.4f}", max(1, jobs),
                               lines, cell=kind.name, point=f"mismatch sweep at corner {mm}", expect_points=[npts])
    sig_g, sig_off = R.mismatch_sigmas(dc, combos, n_mc, np.linspace(0.0, hi - lo, npts),
                                       lambda c, m: f"i(vmd{_tag(*c)}m{m})")
    return dict(mc_n=n_mc, mc_combos=[list(x) for x in combos], sigma_gain_rel=sig_g, sigma_offset_V=sig_off,
                wall_s_mc=wall)


def pin_caps_lin(pdk, kind, corner: str = "tt", f: float = 1e3, enabled: bool = False) -> dict:
    """Passive pin capacitance [F] of s and d at V_cm (codes (15, 15, 8), cell disabled unless `enabled`) of a
    three-parameter cell (relu_lin, tanh_lin: same pin order, tanh_lin without vk): Im(Y)/omega of an .ac at
    frequency f; instance "cs" has the ac source on its s pin, instance "cd" (pins swapped) on its d pin, the
    other pin held at V_cm."""
    from .characterize import _header
    from ..sim.ngspice import run_deck
    sub = kind.subckt(pdk)
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    en = "en" if enabled else "0"
    lines = _header(pdk, kind, corner, sub, "pin capacitance") + [
        f"Vcm vcm 0 {kind.vcm}", f"Vs s 0 dc {kind.vcm} ac 1", f"Vd d 0 dc {kind.vcm}"]
    bias = L.bias_pins(kind.obits if kind.family == "relu_lin" else 0)
    lines += _inst_lin(kind, sub, "cs", full, full, half, en=en, bias=bias)
    lines += _inst_lin(kind, sub, "cd", full, full, half, en=en, bias=bias, **SWAP)
    lines += [f".ac lin 1 {f:g} {f:g}", ".end"]
    ac = run_deck("\n".join(lines), cell=kind.name, point=f"pin capacitance {corner}").plots[0]
    w = 2 * np.pi * f
    # i(vmscs): current from the driven node into the s pin; i(vmdcd): current out of the d pin into the node
    return {"s": float(np.imag(ac["i(vmscs)"][0]) / w), "d": float(-np.imag(ac["i(vmdcd)"][0]) / w)}
