"""Knee-crossing transient of the relu_diff cell (rectifier turn-on / turn-off latency).

One cell at full code (15) and zero-bias offset code (8), d held at V_cm by a source, s driven by a slow
ramp so that the pre-activation G0 (vs - vd) goes from -30 % of full scale to +100 % of full scale in
t_ramp (rising instance), and the same ramp reversed (falling instance), both in one deck. The same deck
also sweeps vs at DC (fine step), so the reference is the cell's own DC curve at the same Δv. Full scale
FS = the DC output at Δv = +span (vd = V_cm); the knee Δv_k = -b/g of the relu fit of the DC curve.

Figures (all in % FS, measured at the d ammeter, i.e. what the cell delivers into d):
  dev_after_knee_pct     max |i_tran - i_dc(Δv(t))| for t >= t_knee (rising) - includes the turn-on
  dev_after_100ns_pct    the same for t >= t_knee + 100 ns  (acceptance target: <= 2 %)
  delay_2pct_s           time after the knee from which |i_tran - i_dc| stays <= 2 % FS
  t_on_2pct_s            (rising) time after the knee at which the output first reaches 2 % FS
                         (t_on_2pct_ref_s: the same for the DC curve)
  lag_late_pct           (rising) max deviation over the last quarter of the ramp (the cell's steady lag)
  on_dev_pct             (falling ramp) max deviation while the DC curve conducts (turn-off lag before the knee)
  off_residual_pct       (falling ramp) max |i_tran| for t >= t_knee + 100 ns (the output must go to 0)
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..pdk import Pdk, load_pdk
from ..sim.ngspice import run_deck
from .characterize import KINDS, _header, _inst

__all__ = ["knee_transient"]


def _fit_knee(dv, i):
    on = i > 0.05 * np.max(i)
    g, b = np.polyfit(dv[on & (i < 0.9 * np.max(i))], i[on & (i < 0.9 * np.max(i))], 1)
    return float(g), float(b), float(-b / g)


def knee_transient(corner: str = "tt", pdk: Optional[Pdk] = None, t_ramp: float = 2e-6, t_pre: float = 1.5e-6,
                   t_post: float = 1e-6, code: int = 15, ocode: int = 8, lo_frac: float = -0.3,
                   hi_frac: float = 1.0, design: Optional[dict] = None, keep=None) -> dict:
    """Rising and falling knee-crossing ramps of one relu_diff cell vs its own DC curve (module docstring).
    design: overrides of the cell design (kchip.cells.relu.DEFAULTS) for experiments."""
    pdk = pdk or load_pdk()
    kind = KINDS["relu_diff"]
    if design:
        from dataclasses import replace
        kind = replace(kind, design={**(kind.design or {}), **design})
    sub = kind.subckt(pdk)
    vcm, span = kind.vcm, kind.span
    # 1. DC curve (fine) to place the ramp: knee and full scale
    step = 0.0025
    lo, hi = vcm - span, vcm + span
    head = _header(pdk, kind, corner, sub, "knee transient DC") + [f"Vs s 0 dc {vcm}", f"Vd d 0 dc {vcm}"]
    deck = "\n".join(head + _inst(kind, sub, "a", code, ocode) + [f".dc Vs {lo:.4f} {hi:.4f} {step}", ".end"])
    dc = run_deck(deck, cell=kind.name, point=f"knee DC sweep {corner}").plots[0]
    vs_dc = lo + step * np.arange(len(dc["i(vmda)"]))
    i_dc = np.real(dc["i(vmda)"])
    dv_dc = vs_dc - vcm
    g, b, dv_k = _fit_knee(dv_dc, i_dc)
    fs = float(np.interp(span, dv_dc, i_dc))
    dv_lo, dv_hi = dv_k + lo_frac * fs / g, dv_k + hi_frac * fs / g
    v0, v1 = vcm + dv_lo, vcm + dv_hi
    if v0 < lo - 1e-9 or v1 > hi + 1e-9:
        v0, v1 = max(v0, lo), min(v1, hi)
    t0, t1, t_end = t_pre, t_pre + t_ramp, t_pre + t_ramp + t_post
    # 2. transient: rising instance r (s = sr), falling instance f (s = sf); both d at V_cm
    head = _header(pdk, kind, corner, sub, "knee transient") + [
        f"Vd d 0 dc {vcm}",
        f"Vsr sr 0 pwl(0 {v0:.5f} {t0:.4e} {v0:.5f} {t1:.4e} {v1:.5f} {t_end:.4e} {v1:.5f})",
        f"Vsf sf 0 pwl(0 {v1:.5f} {t0:.4e} {v1:.5f} {t1:.4e} {v0:.5f} {t_end:.4e} {v0:.5f})"]
    lines = head + _inst(kind, sub, "up", code, ocode, s="sr") + _inst(kind, sub, "dn", code, ocode, s="sf")
    lines += [f".tran 2n {t_end:.4e} 0 5n", ".end"]
    res = run_deck("\n".join(lines), cell=kind.name, point=f"knee transient {corner}", keep=keep)
    tr = res.plots[0]
    t = np.real(tr["time"])
    out = dict(cell=kind.name, corner=corner, code=code, ocode=ocode, i_fs_A=fs, g_A_per_V=g, dv_knee_V=dv_k,
               ramp_V=[v0, v1], t_ramp_s=t_ramp, wall_s=res.wall_s, design=design or {})
    ramp_dv = lambda tt, a, c: np.where(tt < t0, a, np.where(tt > t1, c, a + (c - a) * (tt - t0) / t_ramp)) - vcm
    for tag, a, c in (("rise", v0, v1), ("fall", v1, v0)):
        i_tr = np.real(tr["i(vmdup)" if tag == "rise" else "i(vmddn)"])
        dvt = ramp_dv(t, a, c)
        ref = np.interp(dvt, dv_dc, i_dc)
        err = (i_tr - ref) / fs
        t_k = t0 + (vcm + dv_k - a) / (c - a) * t_ramp
        after = t >= t_k
        late = t >= t_k + 100e-9
        bad = np.flatnonzero(np.abs(err) > 0.02)
        bad_after = bad[t[bad] >= t_k]
        delay = float(t[bad_after[-1]] - t_k) if len(bad_after) else 0.0
        d = {"t_knee_s": float(t_k), "dev_after_knee_pct": float(100 * np.max(np.abs(err[after]))),
             "dev_after_100ns_pct": float(100 * np.max(np.abs(err[late]))), "delay_2pct_s": delay,
             "dev_before_knee_pct": float(100 * np.max(np.abs(err[(t >= t0) & ~after]))) if np.any((t >= t0) & ~after) else 0.0,
             "pre_level_pct": float(100 * np.max(np.abs(i_tr[t < t0])) / fs)}
        if tag == "rise":      # turn-on: first time after the knee the output reaches 2 % FS (and the DC curve)
            on = np.flatnonzero(after & (i_tr >= 0.02 * fs))
            on_ref = np.flatnonzero(after & (ref >= 0.02 * fs))
            d["t_on_2pct_s"] = float(t[on[0]] - t_k) if len(on) else float("nan")
            d["t_on_2pct_ref_s"] = float(t[on_ref[0]] - t_k) if len(on_ref) else float("nan")
            late_on = t >= t1 - 0.25 * t_ramp       # last quarter of the ramp: steady lag of the cell
            d["lag_late_pct"] = float(100 * np.max(np.abs(err[late_on & (t <= t1)])))
        if tag == "fall":
            d["on_dev_pct"] = d["dev_before_knee_pct"]
            d["off_residual_pct"] = float(100 * np.max(np.abs(i_tr[late])) / fs)
        out[tag] = d
        out[f"t_{tag}"] = t
        out[f"i_{tag}"] = i_tr
        out[f"ref_{tag}"] = ref
    # node X of each instance, if saved
    for tag in ("up", "dn"):
        k = f"v(x{tag}.x)"
        if k in tr:
            out[f"vx_{tag}"] = np.real(tr[k])
    return out


def summary(o: dict) -> dict:
    r, f = o["rise"], o["fall"]
    return dict(corner=o["corner"], i_fs_nA=round(o["i_fs_A"] * 1e9, 1), knee_mV=round(o["dv_knee_V"] * 1e3, 1),
                rise_dev_after_knee=round(r["dev_after_knee_pct"], 2), rise_dev_after_100ns=round(r["dev_after_100ns_pct"], 2),
                rise_delay_ns=round(r["delay_2pct_s"] * 1e9, 1), rise_pre=round(r["pre_level_pct"], 3),
                rise_t_on_ns=round(r["t_on_2pct_s"] * 1e9, 1), rise_t_on_ref_ns=round(r["t_on_2pct_ref_s"] * 1e9, 1),
                rise_lag_late=round(r["lag_late_pct"], 2),
                fall_on_dev=round(f["on_dev_pct"], 2), fall_dev_after_100ns=round(f["dev_after_100ns_pct"], 2),
                fall_delay_ns=round(f["delay_2pct_s"] * 1e9, 1), wall_s=round(o["wall_s"], 1))


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(summary(knee_transient(sys.argv[1] if len(sys.argv) > 1 else "tt"))))


def pin_caps(corner: str = "tt", pdk: Optional[Pdk] = None, f: float = 1e3, enabled: bool = False) -> dict:
    """Passive pin capacitance [F] of s and d of a relu_diff cell (full code, zero-bias offset code) at V_cm:
    imaginary admittance of an .ac at frequency f, cell disabled (en = 0) unless enabled=True. Two instances
    in one deck: one with the ac source on s, one with it on d (the other pin held at V_cm)."""
    pdk = pdk or load_pdk()
    kind = KINDS["relu_diff"]
    sub = kind.subckt(pdk)
    vcm = kind.vcm
    head = _header(pdk, kind, corner, sub, "pin capacitance")
    if not enabled:
        head = [ln.replace(f"Ven en 0 {pdk.vdd}", "Ven en 0 0") for ln in head]
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    lines = head + [f"Vsa sa 0 dc {vcm} ac 1", f"Vda da 0 dc {vcm}", f"Vsb sb 0 dc {vcm}", f"Vdb db 0 dc {vcm} ac 1"]
    lines += _inst(kind, sub, "cs", full, half, s="sa", d="da") + _inst(kind, sub, "cd", full, half, s="sb", d="db")
    lines += [f".ac lin 1 {f:g} {f:g}", ".end"]
    ac = run_deck("\n".join(lines), cell=kind.name, point=f"pin capacitance {corner}").plots[0]
    w = 2 * np.pi * f
    return {"s": float(-np.imag(ac["i(vsa)"][0]) / w), "d": float(-np.imag(ac["i(vdb)"][0]) / w)}
