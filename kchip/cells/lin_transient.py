"""One-node transient of a cell with an L2 surrogate (tanh_lin, relu_lin, relu_diff) vs that surrogate's ODE: one
edge cell charging a node capacitor.

Circuit (ngspice): node s is held at v_in by a source; the cell (codes cs, cd, o; enable pulse at t = 0) takes
its current from s and puts it into node n, which carries the node capacitor (sky130 MIM, `node_cap`), starts at
v0 (`.ic`) and is also the cell's d input:
    C dv_n/dt = i(v_in, v_n; cs, cd, o)
With cd < 0 the node settles where cs x + cd y + offset ~ 0 (x, y = v_in, v_n - V_cm), i.e. the
difference-form edge of a KirchhoffNet period (relu_lin: the node stops at the knee, where the current ends).
relu_diff takes codes (code > 0, ocode): its knee is where G0 (vs - vd) + bias = 0.
The software ODE integrates the same law with the same codes: the cell's L2 surrogate (`kchip.sim.l2`:
`TanhLinStructSurrogate` / `ReluLinSurrogate` / `ReluDiffSurrogate`, from `characterization/<cell>/<corner>.json`), with C = the MIM
value plus the cell's passive capacitance at d (an .ac sweep at the node, en = 0: output steering keeps the
cell biased, so this is the capacitance the node carries while the cell runs).
Figure: max |v_spice - v_ode| over the run in % of the swing |v_spice(end) - v0|.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..pdk import Pdk, load_pdk
from ..sim.ngspice import run_deck
from . import library as L
from .characterize import KINDS, REPO

__all__ = ["lin_one_node_transient", "tanh_lin_one_node_transient"]


def _head_inst(kind):
    """(deck head, instance lines with s / d nets and the cell's codes) of a cell kind with an L2 surrogate."""
    from . import tanh_lin as T
    from .characterize import _header, _inst
    if kind.name == "tanh_lin":
        return T._head, T._inst
    if kind.name == "relu_diff":            # codes (code, ocode): i = (code/15) relu(G0 (vs - vd) + (ocode - 8) I_ub)
        return _header, _inst
    if kind.name != "relu_lin":
        raise ValueError(f"lin_one_node_transient: cell {kind.name!r}; only tanh_lin, relu_lin and relu_diff")
    from . import relu_lin as RL
    return _header, RL._inst_lin


def _pin_cap(pdk, kind, corner, sub, cap, codes, v_in, v_mid) -> float:
    """Capacitance at the node (MIM + the cell's d pin, cell disabled) from the imaginary admittance at 100 kHz."""
    head, inst = _head_inst(kind)
    lines = [ln.replace(f"Ven en 0 {pdk.vdd}", "Ven en 0 0") for ln in head(pdk, kind, corner, sub, "pin cap")]
    lines += [cap.text, f"Vcm vcm 0 {kind.vcm}", f"Vs s 0 dc {v_in}", f"Vn n 0 dc {v_mid} ac 1",
              "XC n 0 " + cap.name, *inst(kind, sub, "a", *codes, s="s", d="n"), ".ac lin 1 1e5 1e5", ".end"]
    ac = run_deck("\n".join(lines), cell=kind.name, point=f"node capacitance {codes}").plots[0]
    return float(np.imag(-ac["i(vn)"][0]) / (2 * np.pi * 1e5))


def tanh_lin_one_node_transient(codes: Tuple[int, int, int] = (6, -6, 8), **kw) -> dict:
    """`lin_one_node_transient` of the tanh_lin cell."""
    return lin_one_node_transient("tanh_lin", codes, **kw)


def lin_one_node_transient(cell: str = "tanh_lin", codes: Tuple[int, int, int] = (6, -6, 8), corner: str = "tt",
                           c_farad: float = 40e-12, v_in: Optional[float] = None,
                           v0: Optional[float] = None, t_end: Optional[float] = None,
                           pdk: Optional[Pdk] = None) -> dict:
    """ngspice transient of one three-parameter cell charging a node vs the surrogate ODE (module docstring)."""
    import torch
    from scipy.integrate import solve_ivp
    from ..sim.l2 import load_surrogate
    pdk = pdk or load_pdk()
    kind = KINDS[cell]
    head, inst = _head_inst(kind)
    v_in = kind.vcm + 0.1 if v_in is None else float(v_in)
    v0 = kind.vcm - 0.1 if v0 is None else float(v0)
    t_end = 20e-6 * c_farad / 40e-12 if t_end is None else float(t_end)   # ~1 uA slews 40 pF by 0.2 V in 8 us
    f = REPO / "characterization" / kind.name / f"{corner}.json"
    if not f.is_file():
        raise FileNotFoundError(f"{f} missing: run `kchip characterize --cell {cell} --corner {corner}`")
    sur = load_surrogate(cell, corner)
    codes = tuple(int(c) for c in codes)
    cap = L.node_cap(pdk, c_farad)
    sub = kind.subckt(pdk)
    if kind.name == "relu_diff" and (len(codes) != 2 or codes[0] <= 0):
        raise ValueError(f"lin_one_node_transient: relu_diff codes {codes}; (code > 0, ocode)")
    lines = [ln.replace(f"Ven en 0 {pdk.vdd}", f"Ven en 0 pulse(0 {pdk.vdd} 0 1n 1n 1 2)")
             for ln in head(pdk, kind, corner, sub, f"one-node transient {codes}")]
    lines += [cap.text, f"Vcm vcm 0 {kind.vcm}", f"Vs s 0 dc {v_in}", "XC n 0 " + cap.name, f".ic v(n)={v0}",
              *inst(kind, sub, "a", *codes, s="s", d="n"), f".tran {t_end / 1000:.3e} {t_end:.3e}", ".end"]
    tr = run_deck("\n".join(lines), cell=kind.name, point=f"one-node transient {codes} at {corner}").plots[0]
    t, v = np.real(tr["time"]), np.real(tr["v(n)"])
    c_node = _pin_cap(pdk, kind, corner, sub, cap, codes, v_in, 0.5 * (v0 + v_in))
    cst = [torch.tensor(c) for c in codes]
    vs = torch.tensor(v_in, dtype=torch.float64)

    def rhs(_t, y):
        with torch.no_grad():
            i = sur.current_hw(*cst, vs, torch.tensor(y[0], dtype=torch.float64))
        return [float(i) / c_node]
    sol = solve_ivp(rhs, (0.0, float(t[-1])), [v0], t_eval=t, rtol=1e-9, atol=1e-12, method="LSODA")
    v_ode = sol.y[0]
    swing = abs(float(v[-1]) - v0)
    return dict(cell=kind.name, codes=list(codes), corner=corner, v_in=v_in, v0=v0, c_mim_F=cap.params["c"],
                c_node_F=c_node, swing_V=swing, t=t, v_spice=v, v_ode=v_ode,
                max_err_pct_swing=float(100 * np.max(np.abs(v_ode - v)) / swing),
                final_err_pct_swing=float(100 * abs(v_ode[-1] - v[-1]) / swing))
