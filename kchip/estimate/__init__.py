"""`kchip.estimate`: area, power, latency and energy per inference of a chip, simulated and analytic, and the gap.

    est = estimate_chip(spec, x_states, out_dir, corner="tt")     # -> dict (estimate.json)

* simulated: the transistor-level chip's supply current at pinned states of a forward pass (`measure`:
  ngspice operating points, split exactly into the chip without its cells plus each cell alone), the
  standard-cell sequencer simulated alone; the latency and, at the transistor level, the transient supply
  current measured on the simulate stage's waveforms where that stage ran (`measure.waveform_latency`);
* analytic: every block's characterized figure x its count (`analytic`);
* area: from the GDS where the layout stage ran, and from the laid-out cells' table (`analytic.analytic_area`).

The flow stage is `kchip.estimate.flowstage.stage_estimate`; docs/estimate.md has the method and the figures.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from kchip.quantize.chipspec import ChipSpec

from . import analytic as A
from .measure import pinned_supply, sequencer_power, trajectory_states

LAYOUTS = Path(__file__).resolve().parents[2] / "layouts" / "cells.json"


def _gap(sim: Optional[float], ana: Optional[float]) -> Optional[float]:
    """(analytic - simulated) / simulated."""
    return None if not sim or ana is None else (ana - sim) / sim


def estimate_chip(spec: ChipSpec, x: np.ndarray, out: Path, corner: str = "tt", measure: bool = True,
                  sequencer: bool = True, points: int = 3, jobs: int = 1, timeout: float = 3600.0,
                  log=print) -> Dict:
    """The estimate of the transistor-level realization of `spec` at `corner`; x: input rows whose L1
    trajectories give the pinned states. Writes the transistor deck (testbench control) to `out`."""
    from kchip.netlist import write_netlist
    from kchip.netlist.schedule import build_schedule
    from kchip.pdk import load_pdk
    out = Path(out)
    pdk = load_pdk()
    rep: Dict = {}
    spec_path = out / "chip.json"
    spec.save(spec_path)
    deck = write_netlist(spec_path, out / "chip_transistor.spice", "transistor", corner, rep, control="ideal")
    kind, vdd = rep["cell"], pdk.vdd
    t_clk = build_schedule(spec, "forward", len(spec.input_nodes())).t_load if sequencer else None
    win = A.enable_windows(spec, "forward", t_clk)
    seq_counts = A.sequencer_cells(spec, t_clk) if sequencer else None
    seq = None
    if sequencer:
        e = pdk.data["estimate"]
        seq = {"t_clk_s": t_clk, "gate_area_um2": A.seq_gate_area(seq_counts, LAYOUTS),
               "gate_cap_f_per_um2": float(e["gate_cap_f_per_um2"]), "activity": float(e["sequencer_activity"])}
    bias = A.bias_units(kind, corner, pdk)
    ana = A.analytic_power(spec, rep, kind, corner, vdd, bias, seq)
    ana_i = {k: v["total_A"] for k, v in ana["states"].items()}
    res: Dict = {"cell": kind, "corner": corner, "cells": ana["cells"], "vdd_V": vdd,
                 "control": "sequencer (counted)" if sequencer else "testbench (not counted)",
                 "latency_analytic": A.latency(win), "windows": win,
                 "analytic": {"supply_A": ana["states"], **A.energy(ana_i, win, vdd), "cell_fit": ana["cell_fit"],
                              "bias_units": bias, "disabled_cells": ana["disabled_figure"]},
                 "area_cells": A.analytic_area(spec, rep, kind, LAYOUTS, pdk, seq_counts)}
    if measure:
        states = trajectory_states(spec, x, points)
        log(f"estimate: {len(states)} pinned states of the {ana['cells']}-cell transistor chip (ngspice) ...")
        m = pinned_supply(deck, spec, states, jobs=jobs, timeout=timeout, keep=out / "ops", log=log)
        by: Dict[str, list] = {}
        by_cells: Dict[str, list] = {}
        for (k, _), i, c in zip(states, m["i_vdd"], m["cells_vdd"]):
            by.setdefault("idle" if k is None else f"period_{k}", []).append(i)
            by_cells.setdefault("idle" if k is None else f"period_{k}", []).append(c)
        sim_i = {k: float(np.mean(v)) for k, v in by.items()}
        seq_sim = None
        if sequencer:
            seq_sim = sequencer_power(spec, t_clk, corner)
            sim_i = {k: v + seq_sim["i_avg_A"] for k, v in sim_i.items()}
        # what the DC states leave out: the node capacitors' charging current, C |dV/dt| over a period
        c_dv = rep["c_f"] * spec.scaling.v_u / spec.scaling.tau_s * spec.num_nodes
        if seq_sim and seq_sim.get("latency_s"):      # the sequencer's own timing, transistor level
            res["latency_sequencer"] = {"latency_s": seq_sim["latency_s"]}
            res.setdefault("gap", {})["latency_sequencer"] = _gap(seq_sim["latency_s"], win["t_end"])
        res["simulated"] = {"supply_A": sim_i, **A.energy(sim_i, win, vdd),
                            "spread_A": {k: [float(min(v)), float(max(v))] for k, v in by.items()},
                            "skeleton_A": float(np.mean(m["skeleton_vdd"])), "vcm_A": float(np.max(np.abs(m["i_vcm"]))),
                            "sequencer": seq_sim, "ops": m["ops"], "states": len(states), "seconds": m["seconds"],
                            "charging_A_bound": c_dv}
        s, a = res["simulated"], res["analytic"]
        res["gap"] = {**res.get("gap", {}), "power": _gap(s["power_W"], a["power_W"]), "energy": _gap(s["energy_J"], a["energy_J"]),
                      "forward_power": _gap(s["forward_power_W"], a["forward_power_W"]),
                      "idle_power": _gap(s["idle_power_W"], a["idle_power_W"])}
        res["gap"]["cells"] = {k: _gap(float(np.mean(v)), ana["states"][k]["cells_A"]) for k, v in by_cells.items()}
        res["gap"]["bias_and_switches"] = _gap(s["skeleton_A"], ana["states"]["idle"]["bias_A"])
    return res


def software_time(model, x: np.ndarray, repeats: int = 5) -> Dict:
    """The float model's forward time on this CPU: per sample in a batch of len(x), and for one sample (median
    of `repeats`)."""
    import torch
    xt = torch.tensor(np.asarray(x, dtype=np.float64))
    model = model.double()

    def med(inp):
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.no_grad():
                model(inp)
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts))
    batch = med(xt)
    return {"batch": len(x), "per_sample_batched_s": batch / len(x), "single_sample_s": med(xt[:1]),
            "threads": torch.get_num_threads()}
