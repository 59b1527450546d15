"""Flow stage `simulate` (plugged into kchip.flow.STAGES): ngspice on test inputs (`kchip.sim.simulate`); the chip
against L1 and L0 in % of full scale, at the transistor level against L2 too (the cells' surrogates in the ODE),
and the task metric; keeps levels.npz (every level's outputs) and waves.npz (the first chunk's strobes, outputs
and supply current) with the latency measured on them."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

from ..errors import UsageError
from ..flow import FlowContext, _data, eval_inputs
from ..fsio import save_npz


def stage_simulate(cfg: Dict[str, Any], ctx: FlowContext, out: Path) -> Dict[str, Any]:
    """ngspice on test inputs; error vs L1 and L0 in % of full scale, and the task metric on the chip."""
    import torch
    from ..model import load_model
    from ..quantize.chipspec import ChipSpec
    from ..quantize.core import realized_model
    from .simulate import compare, simulate
    spec = ChipSpec.load(ctx.root / ctx.results["quantize"]["chipspec"])
    n = cfg["num_inputs"]
    data = _data(ctx)
    x, y_true, source = eval_inputs(ctx, data)
    x, y_true = x[:n].astype(np.float64), None if y_true is None else y_true[:n].astype(np.float64)
    if len(x) < n:
        raise UsageError(ctx.file, "simulate.num_inputs", n, f"at most {len(x)} (the {source} has {len(x)} inputs)")
    from .waves import kept_waves
    waves = kept_waves(spec, ctx.results["netlist"]["level"], x.shape[1])
    y, info = simulate(ctx.root / ctx.results["netlist"]["netlist"], spec, x, "forward",
                       jobs=ctx.workers or cfg["jobs"], chunk=cfg["chunk"], out_dir=out,
                       timeout_per_input=cfg["timeout_per_input_s"], merge=cfg["merge"], op_init=cfg["op_init"],
                       waves=waves, scheduler=ctx.scheduler)
    np.save(out / "outputs.npy", y)
    tight = dict(rtol=1e-9, atol=1e-11)
    float_model = load_model(ctx.root / ctx.results["model"]["model"]).double()
    with torch.no_grad():
        l1 = realized_model(spec)(torch.tensor(x), **tight).numpy()
        l0 = float_model(torch.tensor(x), **tight).numpy()
        # full scale: the float model's output range over the whole test set (a handful of simulated inputs
        # spans only part of it); without a data set, over the forward stage's inputs; else the simulated ones
        fs = None
        if data is not None:
            y_all = float_model(torch.tensor(data["x_test"]).double()).numpy()
            fs = float(np.max(y_all.max(0) - y_all.min(0)))
        elif ctx.results.get("forward", {}).get("outputs"):
            y_all = np.load(ctx.root / ctx.results["forward"]["outputs"])
            fs = float(np.max(y_all.max(0) - y_all.min(0)))
    cmp = lambda a, b: {k: v for k, v in compare(a, b, fs).items() if k != "per_output"}
    res = {"inputs": n, "ngspice_s": sum(info["wall_s"]), "ngspice_wall_s": info.get("wall_total_s"),
           "full_scale": fs, "vs_L1": cmp(y, l1), "vs_L0": cmp(y, l0)}
    res.update(_keep_waves(spec, info, out, ctx, fs if fs else float(np.max(l1.max(0) - l1.min(0))) or 1.0))
    if info.get("merge"):
        res["merge"] = {k: v for k, v in info["merge"].items() if k != "deck"}
    if any(info.get("op_init") or ()):
        res["op_init"] = info["op_init"]           # per chunk: the operating point's initial state (kchip.sim.opinit)
    if any(info.get("op_search") or ()):
        res["op_search"] = info["op_search"]       # per chunk: failed search steps that a later step recovered
    levels = {"x": x, "chip": y, "L0": l0, "L1": l1}
    if y_true is not None:
        levels["y_true"] = y_true
    if ctx.results["netlist"].get("cells"):          # transistor level: L2 = the cells' surrogates in the ODE
        l2_res, levels["L2"] = _l2_transistor(ctx, spec, x, y, y_true, l0, info, cmp, tight, cfg)
        res.update(l2_res)
    save_npz(out / "levels.npz", **levels)           # every level's outputs on the simulated inputs (report)
    res["levels"] = str((out / "levels.npz").relative_to(ctx.root))
    if y_true is not None:
        res["mse_chip"] = float(np.mean((y - y_true) ** 2))
        res["mse_L1"] = float(np.mean((l1 - y_true) ** 2))
        res["mse_L0"] = float(np.mean((l0 - y_true) ** 2))
    return res


def _keep_waves(spec, info, out: Path, ctx: FlowContext, fs: float) -> Dict[str, Any]:
    """waves.npz (time, read instants, the kept waveforms of the first chunk) and the latency measured on them
    (`kchip.estimate.measure.waveform_latency`: outputs within 0.1 % of full scale of the value read)."""
    from ..estimate.measure import transient_supply, waveform_latency
    from ..netlist.schedule import build_schedule
    if info.get("time") is None:
        return {}
    t, w, reads = info["time"], info["waves"], info["read_times"]
    save_npz(out / "waves.npz", time=t, read_times=reads, names=np.array(list(w)), **{f"w{i}": v for i, v in
                                                                                        enumerate(w.values())})
    outs = build_schedule(spec, "forward", len(spec.input_nodes())).outputs
    lat = waveform_latency(t, w, reads, outs, 1e-3 * fs * spec.scaling.v_u)
    res = {"waves": str((out / "waves.npz").relative_to(ctx.root)), "latency_measured": lat}
    if "i(vvdd)" in w:
        res["supply_transient"] = transient_supply(t, w["i(vvdd)"], reads)
    return res


def _l2_transistor(ctx: FlowContext, spec, x, y, y_true, l0, info, cmp, tight, cfg) -> Dict[str, Any]:
    """Chip vs L2 = the characterized cell surrogates inside the ODE (`kchip.sim.l2.surrogate_model`; dynamic for
    the PDK's l2_dynamic kinds; for its l2_code_surfaces kinds refined by the measured surfaces of the chip's own
    code triples, and starting from the loaded state shifted by the load gates' R_on times the first period's
    currents - `simulate.l2_code_surfaces` / `l2_load_switch: false` turn these off), vs L2 with the cells' s-side
    current and lag for every kind ("L2_dynamic"), vs the plain surrogates ("L2_plain"), vs the default L2 without
    the two chip refinements ("L2_structural") and vs the older per-code-law L2 (`realized_model(cell_level_spec)`,
    "L2_codelaw"); the speed figure times L2."""
    import torch
    from ..model import load_model
    from ..hw.limits import load_limits
    from ..netlist.transistor import SUPPORTED_LAWS, cell_level_spec
    from ..quantize.core import realized_model
    from .l2 import chip_code_surfaces, chip_load_switch, surrogate_model
    rep = json.loads((ctx.root / ctx.results["netlist"]["cells"]).read_text())
    # the measured surfaces of the chip's own code triples for the PDK's l2_code_surfaces kinds (tanh_lin)
    surf = chip_code_surfaces(spec, rep, log=lambda m: print(f"[kchip flow] {m}", flush=True)) \
        if cfg["l2_code_surfaces"] else {}
    # the first period's cells are on during the load phase: the nodes start R_on(v) I off their inputs
    load = chip_load_switch(spec, rep) if cfg["l2_load_switch"] else None
    refine = dict(code_surfaces=surf, load_switch=load)
    l2_model = surrogate_model(spec, rep, **refine)
    code_model = realized_model(cell_level_spec(spec, rep))
    n = len(x)
    with torch.no_grad():
        l2c = code_model(torch.tensor(x), **tight).numpy()
        l2d = surrogate_model(spec, rep, s_side=True, lag=True, **refine)(torch.tensor(x), **tight).numpy()
        l2p = surrogate_model(spec, rep, s_side=False, lag=False, **refine)(torch.tensor(x), **tight).numpy()
        l2s = surrogate_model(spec, rep)(torch.tensor(x), **tight).numpy() if (surf or load) else None
        # the default L2 is the dynamic one when every cell kind of the chip is an l2_dynamic kind, the plain one
        # when none is; it is solved on its own only for a chip that mixes them
        kinds, dyn = {SUPPORTED_LAWS.get(p.law, p.law) for p in spec.periods}, set(load_limits().l2_dynamic)
        l2 = l2d if kinds <= dyn else l2p if not kinds & dyn else l2_model(torch.tensor(x), **tight).numpy()
        t0 = time.perf_counter()         # L2 speed at the model's own solver settings (what a user runs)
        l2_fast = l2_model(torch.tensor(x)).numpy()
        t_l2 = time.perf_counter() - t0
    res = {"vs_L2": cmp(y, l2), "vs_L2_dynamic": cmp(y, l2d), "vs_L2_plain": cmp(y, l2p),
           "vs_L2_codelaw": cmp(y, l2c),
           "L2_corner": l2_model.meta.get("corner")}
    if l2s is not None:                          # what the refinements bought: the default L2 without them
        res["vs_L2_structural"] = cmp(y, l2s)
    if surf:
        res["L2_code_surfaces"] = {k: v.info for k, v in surf.items()}
    if load is not None:
        res["L2_load_switch"] = {"v": [float(a) for a in load[0]], "r_on_ohm": [float(a) for a in load[1]]}
    ca = ctx.results["quantize"].get("cell_aware")
    if ca:                                       # the cell-aware model: the float model the chip was built from
        with torch.no_grad():
            l0c = load_model(ctx.root / ca["model"]).double()(torch.tensor(x), **tight).numpy()
        res["vs_L0_cellaware"] = cmp(y, l0c)
    res["L2_vs_L0"], res["L2_codelaw_vs_L0"] = cmp(l2, l0), cmp(l2c, l0)
    wall, cpu = sum(info["wall_s"]), sum(info.get("cpu_s", []))
    res["speed"] = {"L2_s": t_l2, "L2_default_vs_tight_max_abs": float(np.max(np.abs(l2_fast - l2))),
                    "ngspice_wall_sum_s": wall, "ratio_ngspice_wall_over_L2": wall / max(t_l2, 1e-9),
                    "ngspice_s_per_input": wall / n,
                    "ngspice_s_per_input_per_edge": wall / n / max(rep["instantiated"], 1),
                    "ngspice_cpu_s_measured": cpu, "ratio_ngspice_cpu_measured_over_L2": cpu / max(t_l2, 1e-9)}
    if y_true is not None:
        res["mse_L2"] = float(np.mean((l2 - y_true) ** 2))
        res["mse_L2_codelaw"] = float(np.mean((l2c - y_true) ** 2))
    return res, l2
