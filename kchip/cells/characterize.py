"""Characterization of the edge cells with ngspice (many operating points per run).

`characterize(kind, corner, pdk, out_dir)` runs, for one cell kind at one corner:
  1. one DC deck: every magnitude code as its own instance (plus one disabled instance) in parallel,
     a 2-D `.dc` sweep of (vs, vd) over [v_cm - span, v_cm + span]^2, and an `.ac` sweep at v_cm
     -> I-V surfaces, per-code fits, deviation from the ideal law, KCL mismatch, disabled leakage,
        common-mode output resistance, supply current, small-signal bandwidth;
  2. one mismatch deck (corner `<corner>_mm`): n_mc copies of a few codes, a 1-D Δv sweep
     -> sigma of amplitude/offset per code (sky130 mismatch models);
and writes characterization/<kind>/<corner>.npz (CellTable), <corner>.csv (surfaces),
<corner>.json (CodeTable + summary figures), <corner>.png (plots).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..pdk import Pdk, load_pdk
from ..sim.ngspice import run_deck, run_parallel
from . import library as L
from .tables import CellTable, CodeParam, CodeTable

__all__ = ["CellKind", "KINDS", "characterize", "dc_deck", "fit_tanh", "ideal_current"]

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CellKind:
    name: str
    bits: int = 4
    obits: int = 0
    i_fs: float = 1e-6        # full-scale current (A) = (2^bits - 1) * I_unit
    vcm: float = 0.9          # characterization common mode (V)
    span: float = 0.3         # mapped input range: v_cm +- span (V)
    step: float = 0.04        # DC grid step (V)
    family: str = "tanh"
    design: dict = None       # overrides of kchip.cells.library.DEFAULTS[name]

    @property
    def i_unit(self) -> float:
        return self.i_fs / (2 ** self.bits - 1)

    def subckt(self, pdk: Pdk, sign: int = 1) -> L.Subckt:
        if self.family == "tanh":
            return L.tanh_diff(pdk, sign=sign, bits=self.bits, **(self.design or {}))
        if self.family == "relu_lin":       # signs are code bits of this cell (pins ngs, ngd), not wiring
            from .relu_lin import relu_lin_subckt
            return relu_lin_subckt(pdk, bits=self.bits, obits=self.obits, **(self.design or {}))
        if self.family == "tanh_lin":
            from .tanh_lin import tanh_lin_subckt
            return tanh_lin_subckt(pdk, bits=self.bits, obits=self.obits, **(self.design or {}))
        return L.relu_diff(pdk, sign=sign, bits=self.bits, obits=self.obits, **(self.design or {}))


KINDS: Dict[str, CellKind] = {
    "tanh_diff": CellKind("tanh_diff", family="tanh"),
    "relu_diff": CellKind("relu_diff", bits=4, obits=4, family="relu", step=0.05),
    "relu_lin": CellKind("relu_lin", bits=4, obits=4, family="relu_lin", step=0.1),
    "tanh_lin": CellKind("tanh_lin", bits=4, obits=4, family="tanh_lin", step=0.075),
}


def _bits(code: int, n: int) -> List[str]:
    return ["vdd" if (code >> k) & 1 else "0" for k in range(n)]


def _inst(kind: CellKind, sub: L.Subckt, tag: str, code: int, ocode: int = 0, en: str = "en",
          s: str = "s", d: str = "d") -> List[str]:
    """Instance `tag` with its own ammeters: i(vmd<tag>) = current into d, i(vms<tag>) = current out of s,
    i(vdd<tag>) = supply current."""
    pins = [f"s{tag}", f"d{tag}", en, *_bits(code, kind.bits), *_bits(ocode, kind.obits), *L.bias_pins(kind.obits),
            f"vdd{tag}", "0"]
    return [f"Vmd{tag} d{tag} {d} 0", f"Vms{tag} {s} s{tag} 0", f"Vdd{tag} vdd vdd{tag} 0",
            f"X{tag} {' '.join(pins)} {sub.name}"]


def cell_bias(pdk: Pdk, kind_name: str, design: Optional[dict] = None, mult: int = 1) -> L.Subckt:
    """The bias generator the cells of `kind_name` are characterized with - and so the one a chip of those
    cells must use (`kchip.netlist.transistor`): its reference diode size sets every unit current. (For
    relu_diff this is a W/L 1/4 diode while the cell's units are 2/8: each unit carries ~1.4 I_ref, which the
    measured tables include.)"""
    d = dict(L.DEFAULTS.get(kind_name, {})); d.update(design or {})
    return L.bias_gen(pdk, w_u=d.get("w_u", 1.0), l_u=d.get("l_u", 4.0), mult=mult)


def _header(pdk: Pdk, kind: CellKind, corner: str, sub: L.Subckt, title: str) -> List[str]:
    """Title, model include, options, the bias generator and the cell (their devices bound to shared model
    cards, `Pdk.share_models`: a Monte Carlo deck of 32 tanh_lin copies spent 33 of its 45 s expanding
    per-transistor card copies, 1.8 s shared; the mismatch draws stay per instance), supply, reference, enable."""
    b = cell_bias(pdk, kind.name, kind.design)
    cells, _ = pdk.share_models("\n".join([b.text, sub.text]))
    return [f"* kchip characterization: {kind.name} {corner} {title}", pdk.model_include(corner),
            f".temp {pdk.temperature_c}", ".options gmin=1e-15 reltol=1e-3 abstol=1e-14",
            cells, f"Vdd vdd 0 {pdk.vdd}", f"Iref vdd vbn {kind.i_unit:.6e}",
            "XB vbn vcp vcn vk vdd 0 kc_bias", f"Ven en 0 {pdk.vdd}"]


def dc_deck(pdk: Pdk, kind: CellKind, corner: str, codes: Sequence[int], ocodes: Sequence[int] = (0,),
            ac: bool = True, leak: bool = True):
    sub = kind.subckt(pdk)
    lo, hi = kind.vcm - kind.span, kind.vcm + kind.span
    lines = _header(pdk, kind, corner, sub, "DC surfaces")
    lines += [f"Vs s 0 dc {kind.vcm} ac 1", f"Vd d 0 dc {kind.vcm}"]
    tags = []
    for c in codes:
        for o in ocodes:
            tag = f"c{c}o{o}"
            tags.append((c, o, tag))
            lines += _inst(kind, sub, tag, c, o)
    # disabled instance at full code: leakage
    full = 2 ** kind.bits - 1
    ofull = 2 ** kind.obits - 1 if kind.obits else 0
    if leak:
        lines += _inst(kind, sub, "off", full, ofull, en="0")
    n = int(round((hi - lo) / kind.step)) + 1
    lines.append(f".dc Vs {lo:.4f} {hi:.4f} {kind.step:.4f} Vd {lo:.4f} {hi:.4f} {kind.step:.4f}")
    if ac:
        lines.append(".ac dec 10 1e3 1e9")
    lines.append(".end")
    return "\n".join(lines), tags, n


def ideal_current(family: str, dv, code_amp, k, off=0.0, bias=0.0):
    if family == "tanh":
        return code_amp * np.tanh(k * (dv - off))
    return np.maximum(code_amp * k * dv + bias, 0.0)


def fit_tanh(dv: np.ndarray, i: np.ndarray, amp0: float) -> tuple:
    """Least-squares fit of i = a tanh(k (dv - off)); returns (a, k, off)."""
    from scipy.optimize import least_squares
    r = least_squares(lambda p: (p[0] * np.tanh(p[1] * (dv - p[2])) - i) / amp0,
                      x0=[amp0, 12.0, 0.0], x_scale=[amp0, 10.0, 0.01])
    return tuple(float(x) for x in r.x)


def _bandwidth(freq: np.ndarray, mag: np.ndarray) -> float:
    ref = mag[0]
    below = np.flatnonzero(mag < ref / np.sqrt(2))
    if len(below) == 0:
        return float(freq[-1])
    j = below[0]
    f0, f1, m0, m1 = np.log(freq[j - 1]), np.log(freq[j]), mag[j - 1], mag[j]
    t = (m0 - ref / np.sqrt(2)) / (m0 - m1)
    return float(np.exp(f0 + t * (f1 - f0)))


def run_dc(pdk: Pdk, kind: CellKind, corner: str, codes=None, ac: bool = True, jobs: int = 1):
    """DC surfaces (+ AC) of every code. jobs > 1 splits the codes over that many decks run side by side
    (the same circuit and grid; the disabled instance sits in the first deck)."""
    codes = list(range(2 ** kind.bits)) if codes is None else list(codes)
    if jobs > 1 and len(codes) > 1:
        chunks = [list(c) for c in np.array_split(np.array(codes), min(jobs, len(codes)))]
        parts = run_parallel([lambda c=c, j=j: _run_dc_one(pdk, kind, corner, c, ac, leak=(j == 0))
                           for j, c in enumerate(chunks)], jobs)
        out = dict(parts[0])
        for k in ("tags",):
            out[k] = [t for p in parts for t in p[k]]
        out["codes"] = codes
        for k in ("i_d", "i_s", "i_dd"):
            out[k] = np.concatenate([p[k] for p in parts])
        out["bw"] = {k: v for p in parts for k, v in p["bw"].items()}
        out["wall"] = max(p["wall"] for p in parts)
        return out
    return _run_dc_one(pdk, kind, corner, codes, ac)


def _run_dc_one(pdk: Pdk, kind: CellKind, corner: str, codes, ac: bool = True, leak: bool = True):
    ocodes = [0] if not kind.obits else list(range(2 ** kind.obits))
    deck, tags, n = dc_deck(pdk, kind, corner, codes, ocodes, ac=ac, leak=leak)
    res = run_deck(deck, cell=kind.name, point=f"DC surface grid at corner {corner}",
                   expect_points=[n * n, None] if ac else [n * n])
    dc = res.plots[0]
    lo = kind.vcm - kind.span
    grid = lo + kind.step * np.arange(n)
    shape = (n, n)  # (vd, vs): vs is the inner sweep
    i_d = np.stack([dc[f"i(vmd{t})"].reshape(shape) for _, _, t in tags])
    i_s = np.stack([dc[f"i(vms{t})"].reshape(shape) for _, _, t in tags])
    i_dd = np.stack([dc[f"i(vdd{t})"].reshape(shape) for _, _, t in tags])
    leak = (dc["i(vmdoff)"].reshape(shape), dc["i(vmsoff)"].reshape(shape), dc["i(vddoff)"].reshape(shape)) \
        if leak else None
    bw = {}
    freq = np.real(res.plots[1]["frequency"]) if ac else None
    for c, o, t in (tags if ac else []):
        ac_ = res.plots[1]
        mag = np.abs(ac_[f"i(vmd{t})"])
        if mag[0] > 1e-12:
            bw[(c, o)] = _bandwidth(freq, mag)
    return dict(codes=codes, ocodes=ocodes, tags=tags, grid=grid, i_d=i_d, i_s=i_s, i_dd=i_dd, leak=leak,
                bw=bw, wall=res.wall_s)


def run_mismatch(pdk: Pdk, kind: CellKind, corner: str, codes: Sequence[int], n_mc: int = 16,
                 npts: int = 7):
    """n_mc independent copies (each instance draws its own sky130 mismatch) of each code; Δv sweep."""
    mm = corner + pdk.mismatch_suffix
    sub = kind.subckt(pdk)
    lines = _header(pdk, kind, mm, sub, f"mismatch x{n_mc}")
    lines += [f"Vs s 0 dc {kind.vcm}", f"Vd d 0 dc {kind.vcm}"]
    tags = []
    for c in codes:
        for m in range(n_mc):
            tag = f"c{c}m{m}"
            tags.append((c, m, tag))
            lines += _inst(kind, sub, tag, c, 0)
    lines.append(f".dc Vs {kind.vcm - kind.span:.4f} {kind.vcm + kind.span:.4f} "
                 f"{2 * kind.span / (npts - 1):.4f}")
    lines.append(".end")
    res = run_deck("\n".join(lines), cell=kind.name, point=f"mismatch sweep at corner {mm}",
                   expect_points=[npts])
    dc = res.plots[0]
    dv = dc["v(v-sweep)"] - kind.vcm if "v(v-sweep)" in dc else dc["v(s)"] - kind.vcm
    out = {}
    for c in codes:
        curves = np.stack([dc[f"i(vmd{t})"] for cc, _, t in tags if cc == c])
        out[c] = curves
    return dv, out, res.wall_s


def characterize(kind_name: str, corner: str = "tt", pdk: Optional[Pdk] = None,
                 out_dir: Optional[Path] = None, n_mc: int = 8, plots: bool = True, jobs: int = 1) -> dict:
    """jobs: ngspice processes run side by side (tanh cells: the DC grid split by code + the mismatch deck;
    relu cells: the DC instances, then the mismatch copies, split over `jobs` decks)."""
    pdk = pdk or load_pdk()
    pdk.check_corner(corner)
    if kind_name not in KINDS:
        raise ValueError(f"unknown cell kind {kind_name!r}; known: {', '.join(KINDS)}")
    kind = KINDS[kind_name]
    out_dir = Path(out_dir) if out_dir is not None else REPO / "characterization" / kind.name
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if kind.family == "tanh":
        summary, table, codetab = _char_tanh(pdk, kind, corner, n_mc, jobs)
    elif kind.family == "relu_lin":
        from .relu_lin import char_relu_lin
        summary, table, codetab = char_relu_lin(pdk, kind, corner, n_mc, jobs)
    elif kind.family == "tanh_lin":
        from .tanh_lin import char_tanh_lin
        summary, table, codetab = char_tanh_lin(pdk, kind, corner, n_mc, jobs)
    else:
        from .relu import char_relu
        summary, table, codetab = char_relu(pdk, kind, corner, n_mc, jobs)
    summary["wall_s_total"] = time.perf_counter() - t0
    return write_results(kind, corner, table, codetab, summary, out_dir, plots)


def write_results(kind: CellKind, corner: str, table: CellTable, codetab: CodeTable, summary: dict,
                  out_dir: Path, plots: bool = True) -> dict:
    """Write characterization/<cell>/<corner>.npz|.csv|.json (+ .png) with `summary` as the table scalars."""
    table.scalars = summary
    table.save(out_dir / f"{corner}.npz")
    table.to_csv(out_dir / f"{corner}.csv")
    codetab.meta["summary"] = summary
    codetab.to_json(out_dir / f"{corner}.json")
    if plots:
        _plot(kind, table, codetab, out_dir / f"{corner}.png")
    return summary


def _char_tanh(pdk: Pdk, kind: CellKind, corner: str, n_mc: int, jobs: int = 1):
    mc_codes = [c for c in (1, 4, 2 ** kind.bits - 1) if c < 2 ** kind.bits]
    if jobs > 1 and n_mc > 1:      # the mismatch deck runs beside the DC decks
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=1) as ex:
            mc_future = ex.submit(run_mismatch, pdk, kind, corner, mc_codes, n_mc)
            r = run_dc(pdk, kind, corner, jobs=max(1, jobs - 1))
            mc_result = mc_future.result()
    else:
        r = run_dc(pdk, kind, corner, jobs=jobs)
        mc_result = run_mismatch(pdk, kind, corner, mc_codes, n_mc) if n_mc > 1 else None
    grid, codes = r["grid"], np.array(r["codes"])
    table = CellTable(kind.name, corner, codes, grid, grid, r["i_d"], r["i_s"], r["i_dd"], {})
    leak = float(max(np.max(np.abs(r["leak"][0])), np.max(np.abs(r["leak"][1]))))
    mid = len(grid) // 2
    extra = dict(leakage_disabled_A=leak, leakage_pct_of_i_unit=100 * leak / kind.i_unit,
                 leakage_pct_of_i_fs=100 * leak / kind.i_fs,
                 supply_current_A={int(c): float(r["i_dd"][j, mid, mid]) for j, c in enumerate(codes)},
                 bandwidth_Hz={int(c): float(f) for (c, _), f in r["bw"].items()}, wall_s_dc=r["wall"])
    summary, codetab = analyze_tanh(table, kind)
    # mismatch (sky130 mismatch models, <corner>_mm)
    sig_amp, sig_off, mc_wall = {}, {}, 0.0
    if mc_result is not None:
        dv, curves, mc_wall = mc_result
        for c, cur in curves.items():
            amp_hw = 0.5 * (cur[:, -1] - cur[:, 0])                # half the full swing ~ amplitude
            i0 = cur[:, len(dv) // 2]                             # output at dv = 0
            sig_amp[int(c)] = float(np.std(amp_hw, ddof=1))
            sig_off[int(c)] = float(np.std(i0, ddof=1) / (c * kind.i_unit * summary["slope_per_V"]))
    extra.update(mc_n=n_mc, mc_codes=mc_codes, sigma_amp_A=sig_amp, sigma_offset_V=sig_off,
                 sigma_amp_pct_fs={c: 100 * v / kind.i_fs for c, v in sig_amp.items()}, wall_s_mc=mc_wall)
    summary.update(extra)
    codetab.params["amp"].sigma = np.array([sig_amp.get(int(c), np.nan) for c in codes])
    codetab.params["offset"].sigma = np.array([sig_off.get(int(c), np.nan) for c in codes])
    return summary, table, codetab


def analyze_tanh(table: CellTable, kind: CellKind):
    """Fits and figures of merit of a tanh cell from its DC surfaces (no simulation)."""
    from scipy.optimize import minimize_scalar
    grid, codes = table.vs, np.asarray(table.codes)
    VS, VD = np.meshgrid(table.vs, table.vd)          # (vd, vs) layout
    DV = VS - VD
    i_fs = kind.i_fs
    amp_nom = codes * kind.i_unit
    I = table.i_d
    nz = codes > 0

    def err(k):
        return np.sum((I[nz] - amp_nom[nz, None, None] * np.tanh(k * DV)[None]) ** 2)
    k_ls = float(minimize_scalar(err, bounds=(5, 20), method="bounded").x)

    def maxdev(k, sel=slice(None)):
        return np.max(np.abs(I[:, sel][:, :, sel] - amp_nom[:, None, None] * np.tanh(k * DV[sel][:, sel])[None])) / i_fs
    ks = np.linspace(k_ls - 1.5, k_ls + 1.5, 301)
    devs = np.array([maxdev(k) for k in ks])
    k_mm, dev_mm = float(ks[np.argmin(devs)]), float(devs.min())
    # the same figure over a smaller input range (|v - v_cm| <= span/1.5)
    inner = np.flatnonzero(np.abs(grid - kind.vcm) <= kind.span / 1.5 + 1e-9)
    sel = slice(inner[0], inner[-1] + 1)
    dev_inner = float(min(maxdev(k, sel) for k in ks))
    amps, slopes, offs, devs_code = [], [], [], []
    for j, c in enumerate(codes):
        if c == 0:
            amps.append(0.0); slopes.append(k_mm); offs.append(0.0); devs_code.append(
                float(np.max(np.abs(I[j])) / i_fs))
            continue
        a, k, o = fit_tanh(DV.ravel(), I[j].ravel(), amp_nom[j])
        amps.append(a); slopes.append(k); offs.append(o)
        devs_code.append(float(np.max(np.abs(I[j] - a * np.tanh(k * (DV - o)))) / i_fs))
    kcl = float(np.max(np.abs(table.i_d - table.i_s)) / i_fs)
    jf = len(codes) - 1
    diag = np.array([I[jf, m, m] for m in range(len(grid))])
    g_cm = float(np.max(np.abs(np.gradient(diag, grid))))
    summary = dict(cell=kind.name, corner=table.corner, i_fs_A=i_fs, i_unit_A=kind.i_unit, vcm_V=kind.vcm,
                   span_V=kind.span, grid_step_V=float(grid[1] - grid[0]), grid_points=int(len(grid) ** 2),
                   codes=int(len(codes)), slope_ls_per_V=k_ls, slope_per_V=k_mm,
                   max_dev_pct_fs=100 * dev_mm,
                   max_dev_inner_pct_fs=100 * dev_inner, inner_span_V=float(grid[inner[-1]] - kind.vcm),
                   max_dev_percode_fit_pct_fs=100 * float(max(devs_code)),
                   kcl_mismatch_pct_fs=100 * kcl,
                   cm_output_resistance_ohm=(1 / g_cm if g_cm > 0 else float("inf")),
                   ideal_law="i = code*I_unit*tanh(slope_per_V*(vs-vd))")
    amps = np.array(amps)
    codetab = CodeTable(kind.name, table.corner, {
        "amp": CodeParam(codes, amps),
        "gm": CodeParam(codes, amps * np.array(slopes)),
        "slope_fit": CodeParam(codes, np.array(slopes)),
        "offset": CodeParam(codes, np.array(offs)),
        "amp_nominal": CodeParam(codes, amp_nom),
    }, units={"amp": "A", "gm": "A/V", "slope_fit": "1/V", "offset": "V", "amp_nominal": "A"},
        meta=dict(bits=kind.bits, i_unit_A=kind.i_unit, vcm_V=kind.vcm, span_V=kind.span,
                  slope_cell_per_V=k_mm,
                  law="i(s->d) = amp[code] * tanh(slope_fit[code] * (vs - vd - offset[code]))",
                  programmable="amplitude (tail DAC); the tanh slope is fixed by the device (~kappa/2U_T)",
                  sign="+1/-1 by input swap at netlist time (negative code)",
                  theta1_max_over_Vu=k_mm))
    return summary, codetab


def reanalyze(kind_name: str, corner: str, out_dir: Optional[Path] = None, plots: bool = True) -> dict:
    """Recompute fits/figures and the code table from a saved <corner>.npz (keeps the simulated scalars)."""
    kind = KINDS[kind_name]
    out_dir = Path(out_dir) if out_dir is not None else REPO / "characterization" / kind.name
    table = CellTable.load(out_dir / f"{corner}.npz")
    old = dict(table.scalars)
    summary, codetab = analyze_tanh(table, kind)
    for k in ("leakage_disabled_A", "leakage_pct_of_i_unit", "leakage_pct_of_i_fs", "supply_current_A",
              "bandwidth_Hz", "wall_s_dc", "mc_n", "mc_codes", "sigma_amp_A", "sigma_offset_V", "wall_s_mc",
              "wall_s_total", "sigma_amp_pct_fs"):
        if k in old:
            summary[k] = old[k]
    sa, so = old.get("sigma_amp_A", {}), old.get("sigma_offset_V", {})
    codes = np.asarray(table.codes)
    codetab.params["amp"].sigma = np.array([sa.get(str(int(c)), sa.get(int(c), np.nan)) for c in codes], float)
    codetab.params["offset"].sigma = np.array([so.get(str(int(c)), so.get(int(c), np.nan)) for c in codes], float)
    if "sigma_amp_pct_fs" not in summary and sa:
        summary["sigma_amp_pct_fs"] = {c: 100 * v / kind.i_fs for c, v in sa.items()}
    return write_results(kind, corner, table, codetab, summary, out_dir, plots)


def _plot(kind: CellKind, table: CellTable, codetab: CodeTable, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    s = table.scalars
    if kind.family == "relu_lin":
        from .relu_lin_analysis import plot_relu_lin
        return plot_relu_lin(kind, table, path)
    if kind.family == "tanh_lin":
        from .tanh_lin_analysis import plot_tanh_lin
        return plot_tanh_lin(kind, table, path)
    grid = table.vs
    mid = len(table.vd) // 2
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    dv = grid - table.vd[mid]
    for j, c in enumerate(table.codes):
        if c % 3 != 0 and c != table.codes[-1]:
            continue
        lab = f"code {c}" if kind.family == "tanh" else "code %d,%d" % tuple(s["combos"][j])
        ax[0].plot(dv * 1e3, table.i_d[j, mid] * 1e9, lw=1, label=lab)
    ax[0].set_xlabel("vs - vd [mV] (vd = v_cm)"); ax[0].set_ylabel("I into d [nA]")
    ax[0].set_title(f"{table.cell} {table.corner}"); ax[0].legend(fontsize=6)
    VS, VD = np.meshgrid(table.vs, table.vd)
    if kind.family == "tanh":
        amp = table.codes * kind.i_unit
        ideal = amp[:, None, None] * np.tanh(s["slope_per_V"] * (VS - VD))[None]
    else:
        half = 2 ** (kind.obits - 1)
        cb = np.array(s["combos"])
        a = cb[:, 0] / (2 ** kind.bits - 1)
        b = (cb[:, 1] - half) * s["i_bias_unit_A"]
        ideal = a[:, None, None] * np.maximum(s["gain_G0_A_per_V"] * (VS - VD)[None] + b[:, None, None], 0)
    dev = np.max(np.abs(table.i_d - ideal), axis=0) / s.get("i_fs_A", kind.i_fs) * 100
    save_deviation_plot(fig, ax[1], dev, grid, table.vd, s["max_dev_pct_fs"], path)


def save_deviation_plot(fig, ax, dev, vs, vd, max_dev_pct: float, path) -> None:
    """Last panel of a cell's characterization plot (the map of max over codes |I - ideal| in % FS over
    vs x vd), then save and close the figure (shared by every cell kind's plot)."""
    import matplotlib.pyplot as plt
    im = ax.imshow(dev, origin="lower", extent=[vs[0], vs[-1], vd[0], vd[-1]], aspect="auto")
    fig.colorbar(im, ax=ax, label="max over codes |I - ideal| [% FS]")
    ax.set_xlabel("vs [V]"); ax.set_ylabel("vd [V]")
    ax.set_title(f"deviation, max {max_dev_pct:.2f} % FS")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
