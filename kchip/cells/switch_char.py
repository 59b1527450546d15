"""On-resistance of the chip's load / reset transmission gate, measured with ngspice (what L2 needs to know of the
load phase).

During the load phase a chip's first period is already enabled (its cells settle before the nodes are released,
docs/netlist.md) while the load and reset gates hold every node of that period. The cells' net current into a
node, I, then flows through the gate: the node is released at v_in + R_on I, not at v_in. In SW units that is
y0 = x + (R_on(v) C / tau) f(x) (`kchip.sim.l2.surrogate_model(load_switch=)`, `SurrogatePeriod.start`).
On the twomoon chips (C = 5.05 nF, 50 um gates, R_on = 131 Ohm at V_cm) R_on C is 0.66 us, 0.9 % of tau.

    r = tgate_r_on("tt", w_um=50.0)         # Ohm, small-signal, both pins at V_cm
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np

__all__ = ["tgate_r_on", "tgate_r_on_curve"]


@lru_cache(maxsize=32)
def _r_on(pdk_name: str, corner: str, w_um: float, l_um: float, v: float, dv: float) -> float:
    from ..pdk import load_pdk
    from ..sim.ngspice import run_deck
    from .library import tgate
    pdk = load_pdk(pdk_name)
    pdk.check_corner(corner)
    sw = tgate(pdk, w=w_um, l=l_um)
    deck = "\n".join([pdk.model_include(corner), f".temp {pdk.temperature_c}", sw.text,
                      f"Vg g 0 {pdk.vdd}", "Vgb gb 0 0", f"Vdd vdd 0 {pdk.vdd}", f"Va a 0 {v}", f"Vb b 0 {v}",
                      f"X1 a b g gb vdd 0 {sw.name}", f".dc Va {v - dv:.6f} {v + dv:.6f} {dv:.6f}", ".end"])
    res = run_deck(deck, cell="tgate", point=f"on-resistance at {v} V, corner {corner}", expect_points=[3])
    p = res.plots[0]
    i = np.real(np.asarray(p["i(vb)"]))
    r = 2 * dv / abs(i[2] - i[0])
    if not (np.isfinite(r) and r > 0):
        raise ValueError(f"tgate w={w_um} um at {corner}: on-resistance {r!r} Ohm is not a positive number")
    return float(r)


def tgate_r_on(corner: str, w_um: float, l_um: float = 0.15, v: Optional[float] = None, pdk=None,
               dv: float = 0.005) -> float:
    """Small-signal on-resistance (Ohm) of `kchip.cells.library.tgate` (nfet w_um, pfet 2 w_um, length l_um, gates
    at the rails) with both pins at v (default the PDK's V_cm), from a +-dv DC step; cached per process."""
    from ..pdk import load_pdk
    pdk = pdk or load_pdk()
    return _r_on(pdk.name, corner, float(w_um), float(l_um), float(pdk.vcm if v is None else v), float(dv))


def tgate_r_on_curve(corner: str, w_um: float, l_um: float = 0.15, span: float = 0.4, n: int = 17, pdk=None):
    """(node voltages, R_on Ohm) at n points over V_cm +- span: the gate's on-resistance rises steeply above V_cm
    (tt, 50 um: 64 / 131 / 211 Ohm at V_cm - 0.1 / V_cm / V_cm + 0.1 V; the pfet is only 2x the nfet)."""
    from ..pdk import load_pdk
    pdk = pdk or load_pdk()
    v = pdk.vcm + np.linspace(-span, span, int(n))
    return v, np.array([tgate_r_on(corner, w_um, l_um, v=float(x), pdk=pdk) for x in v])
