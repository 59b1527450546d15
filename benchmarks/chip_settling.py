"""How fast a transistor-level chip's cells settle after their enable rises, with every node held.

    python benchmarks/chip_settling.py chip.spice chip.json inputs.npy [--row 0] [--t-end 2.1e-6]

Builds a testbench around `kchip_core` of a `kchip netlist --level transistor` deck: the load switches hold
every node at the input row's voltages (non-input nodes at V_cm), en_0 steps 0 -> 1.8 V at t = 0.1 us, and the
current each node's driver delivers (= the net cell current out of the node) is printed at several instants
after the step. Used in docs/cells.md / docs/netlist.md to compare the bias-gated
relu_diff cell (~1.5 us to settle) with the output-steered one (~0.2 us).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from kchip.netlist import read_header
from kchip.quantize.chipspec import ChipSpec
from kchip.sim.ngspice import run_deck

T_STEP = 0.1e-6
PROBES = (0.05e-6, 0.1e-6, 0.2e-6, 0.4e-6, 0.7e-6, 1.1e-6, 1.9e-6)    # after the step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("deck", "spec", "inputs"):
        ap.add_argument(name)
    ap.add_argument("--row", type=int, default=0)
    ap.add_argument("--t-end", type=float, default=2.1e-6)
    a = ap.parse_args()
    deck, spec = Path(a.deck), ChipSpec.load(a.spec)
    head = read_header(deck.read_text(), str(deck))
    x = np.load(a.inputs)[a.row]
    n, s = spec.num_nodes, spec.scaling
    v = np.zeros(n + 1)
    v[1:1 + len(x)] = x
    ports = (["vdd", "iref", "vcm", "dirp", "ld", "smp"] + [f"en_{p.index}" for p in spec.periods]
             + [f"rst_{j}" for j in range(1, n + 1)] + [f"in_{j}" for j in range(1, n + 1)]
             + [f"out_{j}" for j in range(1, n + 1)])
    lines = ["* kchip chip settling after enable", f".include {deck.resolve()}", head["options"],
             f"Vvcm vcm 0 {s.v_cm}", f"Vvdd vdd 0 {head['supplies']['vdd']}",
             f"Iref vdd iref {head['supplies']['iref']:.6e}", "Vdirp dirp 0 0", "Vld ld 0 1.8", "Vsmp smp 0 1.8",
             f"Ven en_0 0 PWL(0 0 {T_STEP:.3e} 0 {T_STEP + 2e-9:.3e} 1.8)"]
    lines += [f"Ven{p.index} en_{p.index} 0 0" for p in spec.periods[1:]]
    lines += [f"Vrst{j} rst_{j} 0 0" for j in range(1, n + 1)]
    lines += [f"Vin{j} in_{j} 0 {s.v_cm + s.v_u * v[j]:.6f}" for j in range(1, n + 1)]
    lines += [f"Xcore {' '.join(ports)} kchip_core", f".tran 2n {a.t_end:.3e} 0 10n",
              ".save " + " ".join(f"i(vin{j})" for j in range(1, n + 1)), ".end"]
    r = run_deck("\n".join(lines), cell="chip", point="settling after enable", timeout=7200).plots[0]
    t = r["time"]
    print("node  current [nA] at " + "  ".join(f"{p * 1e6:.2f}" for p in PROBES) + " us after the step")
    for j in range(1, n + 1):
        i = r[f"i(vin{j})"]
        row = " ".join(f"{np.interp(T_STEP + p, t, i) * 1e9:8.1f}" for p in PROBES)
        print(f"{j:4d}  {row}")


if __name__ == "__main__":
    main()
