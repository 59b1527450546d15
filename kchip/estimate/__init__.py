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
from typing import Dict, List, Optional

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
    from kchip.netlist.sequencer import default_t_clk
    from kchip.pdk import load_pdk
    out = Path(out)
    pdk = load_pdk()
    rep: Dict = {}
    spec_path = out / "chip.json"
    spec.save(spec_path)
    deck = write_netlist(spec_path, out / "chip_transistor.spice", "transistor", corner, rep, control="ideal")
    kind, vdd = rep["cell"], pdk.vdd
    t_clk = default_t_clk(spec) if sequencer else None
    win = A.enable_windows(spec, "forward", t_clk)
    seq_counts, seq = None, None
    if sequencer:
        e = pdk.data["estimate"]
        seq_counts = A.sequencer_cells(spec, t_clk)
        seq = {"t_clk_s": t_clk, "gate_area_um2": A.seq_gate_area(seq_counts, LAYOUTS),
               "gate_cap_f_per_um2": float(e["gate_cap_f_per_um2"]), "activity": float(e["sequencer_activity"])}
    bias = A.bias_units(kind, corner, pdk)
    ana = A.analytic_power(spec, rep, kind, corner, vdd, bias, seq)
    res: Dict = {"cell": kind, "corner": corner, "cells": ana["cells"], "vdd_V": vdd,
                 "control": "sequencer (counted)" if sequencer else "testbench (not counted)",
                 "latency_analytic": A.latency(win), "windows": win,
                 "analytic": {"supply_A": ana["states"],
                              **A.energy({k: v["total_A"] for k, v in ana["states"].items()}, win, vdd),
                              "cell_fit": ana["cell_fit"], "bias_units": bias,
                              "disabled_cells": ana["disabled_figure"]},
                 "area_cells": A.analytic_area(spec, rep, kind, LAYOUTS, pdk, seq_counts)}
    if measure:
        _simulated(res, spec, rep, x, deck, win, ana["states"], t_clk, corner, points, jobs, timeout, out, log)
    return res


def _simulated(res: Dict, spec: ChipSpec, rep: Dict, x: np.ndarray, deck: Path, win: Dict, ana: Dict,
               t_clk: Optional[float], corner: str, points: int, jobs: int, timeout: float, out: Path, log) -> None:
    """res["simulated"] (the pinned-state measurement, the sequencer simulated alone where `t_clk`), its gaps to
    the analytic states `ana`, and the sequencer's measured latency."""
    states = trajectory_states(spec, x, points)
    log(f"estimate: {len(states)} pinned states of the {res['cells']}-cell transistor chip (ngspice) ...")
    m = pinned_supply(deck, spec, states, jobs=jobs, timeout=timeout, keep=out / "ops", log=log)
    rows: Dict[str, List[int]] = {}                  # state label -> the measured states' indices
    for n, (k, _) in enumerate(states):
        rows.setdefault("idle" if k is None else f"period_{k}", []).append(n)
    mean = lambda v, idx: float(np.mean([v[n] for n in idx]))
    seq_sim = sequencer_power(spec, t_clk, corner) if t_clk is not None else None
    sim_i = {k: mean(m["i_vdd"], idx) + (seq_sim["i_avg_A"] if seq_sim else 0.0) for k, idx in rows.items()}
    gap = res.setdefault("gap", {})
    if seq_sim and seq_sim.get("latency_s"):      # the sequencer's own timing, transistor level
        res["latency_sequencer"] = {"latency_s": seq_sim["latency_s"]}
        gap["latency_sequencer"] = _gap(seq_sim["latency_s"], win["t_end"])
    s = res["simulated"] = {
        "supply_A": sim_i, **A.energy(sim_i, win, res["vdd_V"]),
        "spread_A": {k: [float(min(m["i_vdd"][n] for n in idx)), float(max(m["i_vdd"][n] for n in idx))]
                     for k, idx in rows.items()},
        "skeleton_A": float(np.mean(m["skeleton_vdd"])), "vcm_A": float(np.max(np.abs(m["i_vcm"]))),
        "sequencer": seq_sim, "ops": m["ops"], "states": len(states), "seconds": m["seconds"],
        # what the DC states leave out: the node capacitors' charging current, C |dV/dt| over a period
        "charging_A_bound": rep["c_f"] * spec.scaling.v_u / spec.scaling.tau_s * spec.num_nodes}
    a = res["analytic"]
    gap.update({k: _gap(s[f], a[f]) for k, f in (("power", "power_W"), ("energy", "energy_J"),
                                                  ("forward_power", "forward_power_W"),
                                                  ("idle_power", "idle_power_W"))})
    gap["cells"] = {k: _gap(mean(m["cells_vdd"], idx), ana[k]["cells_A"]) for k, idx in rows.items()}
    gap["bias_and_switches"] = _gap(s["skeleton_A"], ana["idle"]["bias_A"])


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
