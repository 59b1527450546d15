"""Front-end linearity probe of the tanh_lin cell: where its deviation from the ideal law comes from.

The characterization's front-end deck (`kchip.cells.tanh_lin.frontend_deck`: X held by an ideal 1 kOhm into REF
at V_cm, no clamp, so I_x = (V_x - V_REF) / 1 kOhm is the programmable transconductors' output alone), one input at
full code and each sign, swept over V_cm +- 0.3 V. Per run: the fitted G, the offset and the residual after a
straight line, split into odd and even parts, input-referred (divided by G), and the split tails' currents of the
s pair at +15 (residual after a line, nA): the low-input side's tail leaves saturation.

Variants (text edits of the cell, for the probe only):
  --design '{"w_in": 64}'   JSON overrides of tanh_lin.DEFAULTS (wider input devices: lower V_GS, more headroom);
  --ideal-deg               the degeneration resistors ideal (no xhigh-poly voltage coefficient);
  --tail-local W,L          each tail unit W/L from a local diode fed by an ideal I_T / 15 (weak inversion: a
                            smaller V_DS,sat) instead of the shared vbn line;
  --cascode-tail            an nfet cascode (4/1, gate vcn) on every tail unit.

    python benchmarks/tanh_lin_front_end.py [--corner tt] [--vcm 0.9] [--design JSON] [--ideal-deg]
                                            [--tail-local 16,8] [--cascode-tail]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np

TAILS = ("XMTA", "XMTB")


def _sense_tails(text: str) -> str:
    """A 0 V ammeter in series with the s pair's two tails (i(v.x<inst>.vmta1), ...)."""
    out = []
    for ln in text.splitlines():
        t = ln.split()
        if t and t[0] in ("XMTA1", "XMTB1"):
            out += [f"V{t[0][1:]} {t[1]} {t[1]}q 0", " ".join([t[0], t[1] + "q"] + t[2:])]
        else:
            out.append(ln)
    return "\n".join(out)


def _variant(text: str, r_deg_ideal, tail_local, cascode: bool, i_tail: float) -> str:
    """r_deg_ideal: ohms of the ideal resistors that replace the degeneration poly (None: keep the poly)."""
    out = []
    for ln in text.splitlines():
        t = ln.split()
        if r_deg_ideal and t and t[0] in ("XR1", "XR2"):
            ln = f"R{t[0][1:]} {t[1]} {t[2]} {r_deg_ideal}"
        if t and t[0].startswith(TAILS) and len(t[0]) == 5:
            if tail_local:
                ln = ln.replace(" vbn ", " vbl ").replace("w=2 l=8", f"w={tail_local[0]:g} l={tail_local[1]:g}")
            if cascode:
                t = ln.split()
                out += [" ".join([t[0], t[1] + "c"] + t[2:]),
                        f"{t[0]}C {t[1]} vcn {t[1]}c vss sky130_fd_pr__nfet_01v8 w=4 l=1 m=15 mult=15"]
                continue
        out.append(ln)
    if tail_local:
        w, l_ = tail_local
        out[-1:-1] = [f"ILD vdd vbl {i_tail / 15:.6e}", f"XLD vbl vbl vss vss sky130_fd_pr__nfet_01v8 w={w:g} l={l_:g}"]
    return "\n".join(out)


def probe(corner: str = "tt", vcm=None, design=None, ideal_deg: bool = False, tail_local=None,
          cascode_tail: bool = False) -> dict:
    from kchip.cells import tanh_lin as T
    from kchip.cells.characterize import KINDS
    from kchip.pdk import load_pdk
    from kchip.sim.ngspice import run_deck
    pdk, kind = load_pdk(), KINDS["tanh_lin"]
    kind = dataclasses.replace(kind, design=dict(kind.design or {}, **(design or {})))
    p = dict(T.DEFAULTS, **kind.design)
    r_deg = p["r_deg"] if ideal_deg else None
    post = lambda text: _sense_tails(_variant(text, r_deg, tail_local, cascode_tail, 1.466e-6))
    vcm = kind.vcm if vcm is None else vcm
    r = run_deck(T.frontend_deck(pdk, kind, corner, 0.0125, vcm, post), cell="tanh_lin",
                 point=f"front-end probe {corner}").plots[0]
    v = np.real(r["v(vx)"]) - vcm
    inner = np.abs(v) <= kind.span + 1e-9
    v = v[inner]
    out = {}
    line = lambda y: y - np.polyval(np.polyfit(v, y, 1), v)
    for tag, _, _ in T._fe_runs(2 ** kind.bits - 1):
        ix = ((np.real(r[f"v(x{tag}.x)"]) - np.real(r[f"v(x{tag}.ref)"])) / 1e3)[inner]
        g, b = np.polyfit(v, ix, 1)
        e = line(ix) / g
        odd, even = (e - e[::-1]) / 2, (e + e[::-1]) / 2
        out[tag] = {"G_uA_per_V": g * 1e6, "offset_mV": b / g * 1e3, "odd_mV": float(np.abs(odd).max() * 1e3),
                    "even_mV": float(np.abs(even).max() * 1e3),
                    "resid_at_-0.3_0_+0.3_mV": [float(e[0] * 1e3), float(e[len(e) // 2] * 1e3), float(e[-1] * 1e3)]}
    for side in ("a", "b"):
        y = line(np.real(r[f"i(v.xsp.vmt{side}1)"])[inner]) * 1e9
        out["sp"][f"tail_{side}_resid_at_-0.3_0_+0.3_nA"] = [float(y[0]), float(y[len(y) // 2]), float(y[-1])]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corner", default="tt")
    ap.add_argument("--vcm", type=float, default=None)
    ap.add_argument("--design", default=None, help="JSON overrides of tanh_lin.DEFAULTS")
    ap.add_argument("--ideal-deg", action="store_true")
    ap.add_argument("--tail-local", default=None, help="W,L of the tail units on a local diode")
    ap.add_argument("--cascode-tail", action="store_true")
    a = ap.parse_args(argv)
    tl = tuple(float(x) for x in a.tail_local.split(",")) if a.tail_local else None
    res = probe(a.corner, a.vcm, json.loads(a.design) if a.design else None, a.ideal_deg, tl, a.cascode_tail)
    for tag, row in res.items():
        print(tag, json.dumps({k: (np.round(v, 3).tolist() if isinstance(v, list) else round(v, 4))
                               for k, v in row.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
