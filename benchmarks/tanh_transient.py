"""One-node transient of the tanh_diff cell vs the software ODE (issue 5): both modes, codes 15 and 5.
Prints the errors (% of the swing) for every ODE capacitance choice and writes docs/cells_transient.png.

    python benchmarks/tanh_transient.py [--corner tt] [--codes 15,5] [--png docs/cells_transient.png]
    python benchmarks/tanh_transient.py --tanh-lin [--corner tt,ss,ff] [--png docs/cells_transient_tanh_lin.png]
        tanh_lin: codes (6,-6,8), (15,-15,8), (3,-3,5), node 40 and 80 pF, vs the L2-surrogate ODE
    python benchmarks/tanh_transient.py --relu-lin [--corner tt,ss,ff,sf,fs]
        relu_lin: codes (2,-2,8), (6,-6,8), (15,-15,8), (10,-10,10), node 10 and 20 pF (7.5 us per pF: the node
        settles at the knee), vs the L2-surrogate ODE (with its knee terms)
    python benchmarks/tanh_transient.py --relu-diff [--corner tt,ss,ff,sf,fs]
        relu_diff: codes (15,8), (6,8), (15,10), (3,8), node 10 and 20 pF, vs its L2 surrogate's ODE

ODE capacitance: cnode = MIM + cell from Im(Y)/omega at 100 kHz with the cell enabled (holds the phase lag
of the cell's transconductance, -gm/omega_p), cpass = the same with en = 0 (passive pin capacitance; the
output-steered cell keeps its pair and mirrors biased), cmim = the MIM value alone.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kchip.cells.transient import one_node_transient  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corner", default="tt")
    ap.add_argument("--codes", default="15,5")
    ap.add_argument("--png", default=str(Path(__file__).resolve().parents[1] / "docs" / "cells_transient.png"))
    ap.add_argument("--tanh-lin", action="store_true")
    ap.add_argument("--relu-lin", action="store_true")
    ap.add_argument("--relu-diff", action="store_true")
    ap.add_argument("--c-pf", type=float, default=2.0, help="tanh_diff node capacitor [pF] (t_end scales with it)")
    a = ap.parse_args(argv)
    if a.tanh_lin or a.relu_lin or a.relu_diff:
        cell = "tanh_lin" if a.tanh_lin else "relu_lin" if a.relu_lin else "relu_diff"
        return l2_cell_runs(a.corner.split(","), a.png if "--png" in (argv or sys.argv) else
                            str(Path(a.png).with_name(f"cells_transient_{cell}.png")), cell)
    runs = []
    for mode in ("release", "enable"):
        for code in (int(c) for c in a.codes.split(",")):
            o = one_node_transient("tanh_diff", code=code, corner=a.corner, mode=mode, c_farad=a.c_pf * 1e-12,
                                   t_end=3e-6 * a.c_pf / 2.0)
            runs.append(o)
            print(json.dumps({"mode": mode, "code": code, "swing_V": round(o["swing_V"], 4),
                              "c_node_fF": round(o["c_node_measured_F"] * 1e15, 1),
                              "c_pass_fF": round(o["c_node_passive_F"] * 1e15, 1),
                              **{k: round(v, 3) for k, v in o.items() if k.startswith("max_err")}}), flush=True)
    if a.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
        for o in runs:
            j = 0 if o["mode"] == "release" else 1
            ax[j].plot(o["t"] * 1e9, o["v_spice"], lw=1, label=f"ngspice code {o['code']}")
            ax[j].plot(o["t"] * 1e9, o["v_ode_table_cnode"], "--", lw=1, label=f"ODE code {o['code']}")
        for j, m in enumerate(("release", "enable")):
            ax[j].set_title(f"tanh_diff {a.corner}, {m} mode, {a.c_pf:g} pF node"); ax[j].set_xlabel("t [ns]")
            ax[j].set_ylabel("v(node) [V]"); ax[j].legend(fontsize=6)
        fig.tight_layout(); fig.savefig(a.png); plt.close(fig)
    return 0


LIN = {"tanh_lin": dict(codes=((6, -6, 8), (15, -15, 8), (3, -3, 5)), caps=(40e-12, 80e-12), t_per_f=None),
       # relu_lin settles at its knee and stays there: 7.5 us per pF (30 us at 4 pF, session 6) ~ 7.5 node time
       # constants at code 15, so the end state (knee position and the tail below it) counts
       "relu_lin": dict(codes=((2, -2, 8), (6, -6, 8), (15, -15, 8), (10, -10, 10)), caps=(10e-12, 20e-12),
                        t_per_f=7.5e-6 / 1e-12),
       # relu_diff: codes (code, ocode); its knee does not move with the code (the code scales the output)
       "relu_diff": dict(codes=((15, 8), (6, 8), (15, 10), (3, 8)), caps=(10e-12, 20e-12), t_per_f=7.5e-6 / 1e-12)}


def l2_cell_runs(corners, png, cell: str = "tanh_lin") -> int:
    """One-node transients of `cell` (LIN: codes, node capacitors, run length) vs its L2 ODE at `corners`."""
    from kchip.cells.lin_transient import lin_one_node_transient
    cfg = LIN[cell]
    runs = []
    for corner in corners:
        for codes in cfg["codes"]:
            for c in cfg["caps"]:
                t_end = None if cfg["t_per_f"] is None else cfg["t_per_f"] * c
                o = lin_one_node_transient(cell, codes=codes, corner=corner, c_farad=c, t_end=t_end)
                runs.append(o)
                print(json.dumps({"cell": cell, "corner": corner, "codes": codes, "c_pF": c * 1e12,
                                  "swing_V": round(o["swing_V"], 4),
                                  "max_err_pct_swing": round(o["max_err_pct_swing"], 2),
                                  "final_err_pct_swing": round(o["final_err_pct_swing"], 3)}), flush=True)
    if png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
        for o in runs:
            if o["corner"] != corners[0]:
                continue
            j = 0 if o["c_mim_F"] < 0.75 * cfg["caps"][1] else 1
            ax[j].plot(o["t"] * 1e6, o["v_spice"], lw=1, label=f"ngspice {tuple(o['codes'])}")
            ax[j].plot(o["t"] * 1e6, o["v_ode"], "--", lw=1, label=f"L2 ODE {tuple(o['codes'])}")
        for j, c in enumerate(cfg["caps"]):
            ax[j].set_title(f"{cell} {corners[0]}, enable at t = 0, {c * 1e12:g} pF node")
            ax[j].set_xlabel("t [us]"); ax[j].set_ylabel("v(node) [V]"); ax[j].legend(fontsize=6)
        fig.tight_layout(); fig.savefig(png); plt.close(fig)
    return 0

if __name__ == "__main__":
    sys.exit(main())
