"""Front-end linearity probe of the tanh_lin cell: where its deviation from the ideal law comes from.

The cell is built with its I -> V resistor replaced by an ideal 1 kOhm (`r_ideal`, `r_conv`), REF held at 0.9 V by
a source (`ref_v`) and no X clamp, so I_x = (V_x - V_REF) / 1 kOhm is the programmable transconductors' output
alone. Each input is swept over V_cm +- 0.3 V at full code, both signs (the other input at V_cm); a straight line
is fitted and its residual split into odd and even parts, all input-referred (divided by the fitted G).
--cascode-tail adds an nfet cascode (gate vcn) on every split-tail unit, the variant tried in session 7.

    python benchmarks/tanh_lin_front_end.py [--corner tt] [--cascode-tail]
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def _cascode_tails(text: str) -> str:
    out = []
    for ln in text.splitlines():
        tok = ln.split()
        if ln.startswith("XMT") and " vbn " in ln:
            q = tok[1] + "q"
            out.append(ln.replace(f"{tok[0]} {tok[1]} ", f"{tok[0]} {q} ", 1))
            out.append(f"{tok[0]}C {tok[1]} vcn {q} vss sky130_fd_pr__nfet_01v8 w=2 l=1 m=15 mult=15")
        else:
            out.append(ln)
    return "\n".join(out)


def probe(corner: str = "tt", cascode_tail: bool = False) -> dict:
    from kchip.cells import tanh_lin as T
    from kchip.cells.characterize import KINDS, cell_bias
    from kchip.pdk import load_pdk
    from kchip.sim.ngspice import run_deck
    pdk, kind = load_pdk(), KINDS["tanh_lin"]
    sub = T.tanh_lin_subckt(pdk, name="kc_tl_fe", r_ideal=True, r_conv=1e3, ref_v=kind.vcm, no_clamp=True)
    text = _cascode_tails(sub.text) if cascode_tail else sub.text
    cells, _ = pdk.share_models("\n".join([cell_bias(pdk, kind.name, kind.design).text, text]))
    lines = [f"* tanh_lin front-end probe {corner}", pdk.model_include(corner), f".temp {pdk.temperature_c}",
             ".options gmin=1e-15 reltol=1e-3 abstol=1e-14 rshunt=1e12", cells, f"Vdd vdd 0 {pdk.vdd}",
             f"Iref vdd iref {kind.i_unit:.6e}", "XB iref vbn vcp vcn vk vdd 0 kc_bias", f"Ven en 0 {pdk.vdd}",
             f"Vcm vcm 0 {kind.vcm}", f"Vs s 0 dc {kind.vcm}", f"Vh h 0 {kind.vcm}"]
    full, half = 2 ** kind.bits - 1, 2 ** (kind.obits - 1)
    runs = {"s+": ("sp", full, 0), "s-": ("sm", -full, 0), "d+": ("dp", 0, full), "d-": ("dm", 0, -full)}
    for t, cs, cd in runs.values():
        sn, dn = ("s", "h") if cs else ("h", "s")
        lines += T._inst(kind, sub, t, cs, cd, half, s=sn, d=dn)
    lo, hi = kind.vcm - kind.span, kind.vcm + kind.span
    lines += [f".dc Vs {lo:.4f} {hi:.4f} 0.0125", ".end"]
    r = run_deck("\n".join(lines), cell="tanh_lin", point=f"front-end probe {corner}").plots[0]
    v = np.real(r["v(s)"]) - kind.vcm
    out = {}
    for tag, (t, _, _) in runs.items():
        ix = (np.real(r[f"v(x{t}.x)"]) - np.real(r[f"v(x{t}.ref)"])) / 1e3
        g, b = np.polyfit(v, ix, 1)
        e = (ix - (g * v + b)) / g
        odd, even = (e - e[::-1]) / 2, (e + e[::-1]) / 2
        out[tag] = {"G_uA_per_V": g * 1e6, "offset_mV": b / g * 1e3, "odd_mV": float(np.abs(odd).max() * 1e3),
                    "even_mV": float(np.abs(even).max() * 1e3),
                    "resid_at_-0.3_0_+0.3_mV": [float(e[0] * 1e3), float(e[len(e) // 2] * 1e3), float(e[-1] * 1e3)]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corner", default="tt")
    ap.add_argument("--cascode-tail", action="store_true")
    a = ap.parse_args(argv)
    for tag, row in probe(a.corner, a.cascode_tail).items():
        print(tag, json.dumps({k: (np.round(v, 4).tolist() if isinstance(v, list) else round(v, 4))
                               for k, v in row.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
