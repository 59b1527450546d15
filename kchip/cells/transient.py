"""One-node transient check: one edge cell charging a node capacitor (ngspice) vs the software ODE.

Circuit: node s is held at v_in by a source; the edge cell (code, enable pulse at t = 0) sinks from s and
sources into node n, which carries the node capacitor (sky130 MIM, `node_cap`) and starts at v0:
    C dv_n/dt = I_cell(v_in, v_n)
The software ODE integrates the same law with the code's realized values from the code table
(amp[code] tanh(slope[code] (v_in - v_n - offset[code]))), and, for reference, with the ideal nominal law.
The capacitance used by the ODE is the MIM value plus the cell's own node capacitance measured by an .ac
sweep at the node (both reported).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..pdk import Pdk, load_pdk
from ..sim.ngspice import run_deck
from . import library as L
from .characterize import KINDS, REPO, _header, _inst
from .tables import CodeTable

__all__ = ["one_node_transient"]


def _node_cap_measured(pdk: Pdk, kind, code: int, corner: str, c_mim: L.Subckt, v_in: float, v_n: float,
                       enabled: bool = True) -> float:
    """Total capacitance at the node (MIM + cell), from the imaginary admittance at 100 kHz of an .ac sweep
    at the cell's operating point. enabled=True: the cell conducts, so the figure also holds the phase lag
    of its transconductance (-gm/omega_p, not a capacitance); enabled=False (en = 0): the passive pin
    capacitance only - for a cell with output steering (enable="output") the pair and mirrors stay biased,
    so this is the capacitance the node carries while the cell runs."""
    sub = kind.subckt(pdk)
    lines = _header(pdk, kind, corner, sub, "node capacitance")
    if not enabled:
        lines = [ln.replace(f"Ven en 0 {pdk.vdd}", "Ven en 0 0") for ln in lines]
    lines += [c_mim.text, f"Vs s 0 dc {v_in}", f"Vn n 0 dc {v_n} ac 1", "XC n 0 " + c_mim.name]
    lines += _inst(kind, sub, "a", code, 0, s="s", d="n")
    lines += [".ac lin 1 1e5 1e5", ".end"]
    ac = run_deck("\n".join(lines), cell=kind.name, point=f"node capacitance code {code}").plots[0]
    y = -ac["i(vn)"][0]          # current into the network from the source
    return float(np.imag(y) / (2 * np.pi * 1e5))


def one_node_transient(kind_name: str = "tanh_diff", code: int = 15, corner: str = "tt",
                       pdk: Optional[Pdk] = None, c_farad: float = 2e-12, v_in: Optional[float] = None,
                       v0: Optional[float] = None, t_end: float = 3e-6, table: Optional[CodeTable] = None,
                       mode: str = "enable") -> dict:
    """mode "enable": cell enabled at t = 0 (node starts at v0, ARCHITECTURE §3 period start);
    mode "release": cell enabled long before, node held at v0 by the reset switch (kc_switch to a v0
    source) and released at t = 0 - separates the cell's dynamic accuracy from its enable latency."""
    from scipy.integrate import solve_ivp
    pdk = pdk or load_pdk()
    kind = KINDS[kind_name]
    v_in = kind.vcm + 0.2 if v_in is None else v_in
    v0 = kind.vcm - 0.1 if v0 is None else v0
    if table is None:
        f = REPO / "characterization" / kind.name / f"{corner}.json"
        if not f.is_file():
            raise FileNotFoundError(f"{f} missing: run `kchip characterize --cell {kind.name} --corner {corner}`")
        table = CodeTable.from_json(f)
    cap = L.node_cap(pdk, c_farad)
    sub = kind.subckt(pdk)
    lines = _header(pdk, kind, corner, sub, f"one-node transient code {code}")
    if mode == "enable":
        lines = [ln.replace(f"Ven en 0 {pdk.vdd}", f"Ven en 0 pulse(0 {pdk.vdd} 0 1n 1n 1 2)") for ln in lines]
        lines += [cap.text, f"Vs s 0 dc {v_in}", "XC n 0 " + cap.name, f".ic v(n)={v0}"]
    elif mode == "release":
        sw = L.switch(pdk, w=4.0)
        lines += [cap.text, sw.text, f"Vs s 0 dc {v_in}", "XC n 0 " + cap.name, f"Vr r 0 dc {v0}",
                  f"Vg g 0 pulse({pdk.vdd} 0 0 1n 1n 1 2)", f"XSW n r g 0 {sw.name}"]
    else:
        raise ValueError(f"mode must be 'enable' or 'release', got {mode!r}")
    lines += _inst(kind, sub, "a", code, 0, s="s", d="n")
    lines += [f".tran {t_end / 500:.3e} {t_end:.3e}", ".end"]
    tr = run_deck("\n".join(lines), cell=kind.name, point=f"one-node transient code {code}").plots[0]
    t, v = np.real(tr["time"]), np.real(tr["v(n)"])
    c_node = _node_cap_measured(pdk, kind, code, corner, cap, v_in, 0.5 * (v0 + v_in))
    c_pass = _node_cap_measured(pdk, kind, code, corner, cap, v_in, 0.5 * (v0 + v_in), enabled=False)
    amp = float(table.params["amp"].value(code))
    k = float(table.params["slope_fit" if "slope_fit" in table.params else "slope"].value(code))
    off = float(table.params["offset"].value(code))
    amp_nom = float(table.params["amp_nominal"].value(code)); k_cell = float(table.meta["slope_cell_per_V"])

    def ode(law_amp, law_k, law_off, c):
        sol = solve_ivp(lambda _t, y: [law_amp * np.tanh(law_k * (v_in - y[0] - law_off)) / c],
                        (0.0, t[-1]), [v0], t_eval=t, rtol=1e-9, atol=1e-12)
        return sol.y[0]
    swing = abs(v[-1] - v0)
    out = dict(cell=kind.name, code=code, corner=corner, mode=mode, v_in=v_in, v0=v0, c_mim_F=cap.params["c"],
               c_node_measured_F=c_node, c_node_passive_F=c_pass, swing_V=float(swing), t=t, v_spice=v)
    for tag, (a_, k_, o_) in {"table": (amp, k, off), "nominal": (amp_nom, k_cell, 0.0)}.items():
        for ctag, c in {"cnode": c_node, "cpass": c_pass, "cmim": cap.params["c"]}.items():
            vo = ode(a_, k_, o_, c)
            out[f"v_ode_{tag}_{ctag}"] = vo
            out[f"max_err_pct_swing_{tag}_{ctag}"] = float(100 * np.max(np.abs(vo - v)) / swing)
    return out
