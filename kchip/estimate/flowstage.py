"""Flow stage `estimate` (plugged into kchip.flow.STAGES): kchip.estimate on the quantize stage's ChipSpec ->
estimate.json. Inputs for the pinned states: the test split (trained models) or the forward stage's inputs. Where
the simulate stage ran, its measured latency (and, at the transistor level, its transient supply current) is set
beside the analytic figure; where the layout stage ran, the GDS area beside the cells' table."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import numpy as np

from ..fsio import write_json


def stage_estimate(cfg: Dict[str, Any], ctx, out: Path) -> Dict[str, Any]:
    from ..flow import _data, _log, eval_inputs
    from ..model import load_model
    from ..quantize.chipspec import ChipSpec
    from . import _gap, estimate_chip, software_time
    spec = ChipSpec.load(ctx.root / ctx.results["quantize"]["chipspec"])
    pool = eval_inputs(ctx, _data(ctx))[0]
    net = ctx.results.get("netlist", {})
    corner = cfg["corner"] or net.get("corner") or "tt"
    x = pool[: cfg["inputs"]].astype(np.float64)
    res = estimate_chip(spec, x, out, corner=corner, measure=cfg["measure"], sequencer=cfg["sequencer"],
                        points=cfg["points"], jobs=cfg["jobs"] or os.cpu_count() or 1, timeout=cfg["timeout_s"],
                        log=_log)
    sim = ctx.results.get("simulate", {})
    lat = sim.get("latency_measured")
    if lat and lat.get("latency_s"):
        res["latency_simulated"] = {"latency_s": lat["latency_s"], "level": net.get("level"),
                                    "control": net.get("control") or "ideal"}
        res.setdefault("gap", {})["latency"] = _gap(lat["latency_s"], res["latency_analytic"]["latency_s"])
    if sim.get("supply_transient"):
        res["supply_transient_A"] = sim["supply_transient"]["i_avg_A"]
    lay = ctx.results.get("layout")
    if lay:
        res["area_gds_mm2"] = lay["area_mm2"]
    model = load_model(ctx.root / ctx.results["model"]["model"])
    res["software"] = software_time(model, pool[:64].astype(np.float64))
    write_json(out / "estimate.json", res, indent=1)
    a = res["analytic"]
    summary = {"estimate": str((out / "estimate.json").relative_to(ctx.root)),
               "area_mm2": res.get("area_gds_mm2", res["area_cells"]["total_mm2"]),
               "area_source": "gds" if lay else "cells table",
               "latency_s": res.get("latency_simulated", res.get("latency_sequencer",
                                                                  res["latency_analytic"]))["latency_s"],
               "power_W_analytic": a["power_W"], "energy_J_analytic": a["energy_J"],
               "sw_s_per_sample": res["software"]["per_sample_batched_s"]}
    if "simulated" in res:
        summary.update(power_W=res["simulated"]["power_W"], energy_J=res["simulated"]["energy_J"])
    summary["gap"] = res.get("gap", {})
    return summary
