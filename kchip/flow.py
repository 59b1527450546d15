"""`kchip flow`: runs the stages named in a flow.yaml, caching each in build/<name>/<nn-stage>/.

Each stage is a function `stage(cfg_section, ctx) -> dict` (JSON-able summary, paths relative to the build
dir). A stage is re-run only when its config section or an upstream stage's result changed (a content hash
stored in its `stage.json`). Stages of later flow steps (quantize, netlist, ...) plug in through `STAGES`:
an entry is either a function here or a "module:function" path imported when the flow asks for it.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np
import yaml

from .errors import RunError, UsageError, one_line
from .fsio import save_npz, write_json


@dataclass
class FlowContext:
    name: str
    root: Path                       # build/<name>
    cfg_dir: Path                    # folder of flow.yaml (relative paths in it resolve from here)
    results: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)   # each stage's run time (the cached ones: their own)
    # where independent simulations run (not part of any cache key: the results are the same)
    workers: Optional[int] = None     # local worker processes (overrides simulate.jobs)
    scheduler: Optional[str] = None   # a dask.distributed scheduler address
    file: str = "flow.yaml"          # the flow file as errors name it

    def stage_dir(self, index: int, stage: str) -> Path:
        d = self.root / f"{index:02d}-{stage}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else (self.cfg_dir / p)


def _log(msg: str) -> None:
    print(f"[kchip flow] {msg}", flush=True)


# ---- built-in stages -----------------------------------------------------------------------------------------
def stage_model(cfg: Dict[str, Any], ctx: FlowContext, out: Path) -> Dict[str, Any]:
    """Build, import or load the software model; writes model.kchip."""
    import torch
    from .model import KirchhoffNet, Period, import_official, load_model, save_model, topology
    source = cfg["source"]
    result_extra = {}
    if source == "train":
        model, result_extra = _train_regression(cfg["train"], out)
    elif source == "official":
        model = import_official(ctx.path(cfg["checkpoint"]), ctx.path(cfg["config"]))
    elif source == "kchip":
        model = load_model(ctx.path(cfg["file"]))
        if cfg.get("dataset"):                 # the task's data (the fixed split) for the later stages' metric
            from .tasks.regression import load_data
            result_extra = _save_data(load_data(cfg["dataset"]), cfg["dataset"], out)
    elif source == "spec":
        torch.manual_seed(cfg["seed"])
        periods = []
        for i, p in enumerate(cfg["periods"]):
            w = f"{ctx.file}: model.periods[{i}]"
            edges = topology.generate(p["topology"], p.get("args"), w)
            per = Period(edges[:, :2], p["law"], p["t_len"], where=w)
            with torch.no_grad():
                per.param.mul_(p["init_scale"])
            periods.append(per)
        try:
            model = KirchhoffNet(periods, projector=cfg["projector"], solver=cfg.get("solver"))
        except ValueError as exc:                     # the projector against the last period's nodes
            msg = str(exc).split(": ", 1)[-1] if str(exc).startswith("projector:") else str(exc)
            raise UsageError(ctx.file, "model.projector", cfg["projector"], msg) from None
    save_model(model, out / "model.kchip")
    return {**result_extra, "model": str((out / "model.kchip").relative_to(ctx.root)), "periods": len(model.periods),
            "nodes": [p.num_nodes for p in model.periods], "edges": [p.num_edges for p in model.periods],
            "params": model.num_params(), "law": model.periods[0].law.name}


def _train_regression(cfg: Dict[str, Any], out: Path):
    """Train the paper's one-FC-layer Eq. 10 regression model (kchip.tasks.regression); keeps the test split
    in data.npz for the later stages' task metric."""
    import torch
    from .tasks.regression import build_regression_model, load_data, train
    torch.set_num_threads(cfg["threads"])        # small model: one thread is fastest
    dataset = cfg["dataset"]
    data = load_data(dataset)
    torch.manual_seed(cfg["seed"])
    model = build_regression_model(data[0].shape[1], cfg["size"])
    metrics = train(model, data, epochs=cfg["epochs"], batch=cfg["batch"], lr=cfg["lr"], seed=cfg["seed"],
                    run_dir=out / "run", progress=cfg["progress"])
    return model, {**_save_data(data, dataset, out), "test_mse": metrics["test_mse"], "epochs": metrics.get("epochs")}


def _save_data(data, dataset: str, out: Path) -> Dict[str, Any]:
    """Keep the task's split (x_train, y_train, x_test, y_test) in data.npz for the later stages' metric."""
    np.savez(out / "data.npz", x_train=data[0].numpy(), y_train=data[1].numpy(), x_test=data[2].numpy(),
             y_test=data[3].numpy())
    return {"task": f"regression:{dataset}", "data": str((out / "data.npz").relative_to(out.parent))}


def _data(ctx: FlowContext):
    rel = ctx.results["model"].get("data")
    return np.load(ctx.root / rel) if rel else None


def stage_quantize(cfg: Dict[str, Any], ctx: FlowContext, out: Path) -> Dict[str, Any]:
    """Map to hardware scaling (calibrated on training inputs) and quantize to cell codes -> chip.json."""
    import torch
    from .hw.mapping import map_model
    from .model import load_model
    from .quantize.core import quantize_model
    model = load_model(ctx.root / ctx.results["model"]["model"])
    data = _data(ctx)
    pool = data["x_train"] if data is not None else np.load(ctx.root / ctx.results["forward"]["inputs"])
    calib = torch.tensor(pool[: cfg["calib"]])
    if len(calib) < cfg["calib"]:
        _log(f"quantize: calib {cfg['calib']}: the {'training split' if data is not None else 'forward stage'} "
             f"has {len(calib)} rows; calibrating on all {len(calib)}")
    target = cfg["target"]
    lim = None
    if cfg.get("limits"):                      # overrides of the PDK limits, e.g. the cells' input range
        from dataclasses import replace
        from .hw.limits import load_limits
        lim = replace(load_limits(), **cfg["limits"])
    scaling = map_model(model, calib, pdk_limits=lim, target=target)
    float_model, cell_aware = model, None
    if cfg.get("cell_aware"):                  # fine-tune onto the transistor cell's code grid
        model, cell_aware = _cell_aware(model, scaling, data, ctx, dict(cfg["cell_aware"]))
        from .model import save_model
        save_model(model, out / "model_cellaware.pt")
        cell_aware["model"] = str((out / "model_cellaware.pt").relative_to(ctx.root))
    bits = {"gm": cfg["bits_gm"], "bias": cfg["bits_bias"]}
    q = quantize_model(model, scaling, bits=bits, strict=cfg["strict"], name=ctx.name)
    q.spec.save(out / "chip.json")
    res = {"chipspec": str((out / "chip.json").relative_to(ctx.root)), "bits": bits, "calib_rows": len(calib),
           "v_u": scaling.v_u, "i_u": scaling.i_u, "c_f": scaling.c_f, "tau_s": scaling.tau_s,
           "clipped": q.report.get("clipped_total"), "warnings": scaling.report.get("warnings", [])}
    if cell_aware:
        res["cell_aware"] = cell_aware
    if data is not None:
        x, y = torch.tensor(data["x_test"]).double(), torch.tensor(data["y_test"]).double()
        with torch.no_grad():
            res["test_mse_L0"] = float(((float_model.double()(x) - y) ** 2).mean())
            res["test_mse_L1"] = float(((q.model(x) - y) ** 2).mean())
    if cfg["sweep_bits"]:
        res["bits_sweep"] = _bits_sweep(model, float_model, scaling, cfg, data, ctx)
    return res


def _bits_sweep(model, float_model, scaling, cfg: Dict[str, Any], data, ctx: FlowContext) -> list:
    """quantize.sweep_bits: L1 against L0 at each bit width (gm and bias alike) on the test split (else the
    forward stage's inputs): RMS error in % of L0's output range, the clipped count and, with a data set, the
    task MSE."""
    import torch
    from .quantize.core import quantize_model
    xs = data["x_test"] if data is not None else np.load(ctx.root / ctx.results["forward"]["inputs"])
    x = torch.tensor(xs).double()
    with torch.no_grad():
        l0 = float_model.double()(x)
    fs = float((l0.max(0).values - l0.min(0).values).max()) or 1.0
    out = []
    for b in cfg["sweep_bits"]:
        q = quantize_model(model, scaling, bits={"gm": b, "bias": b}, strict=False, name=ctx.name)
        with torch.no_grad():
            l1 = q.model(x)
        row = {"bits": b, "rms_pct_fs_vs_L0": float(100 * ((l1 - l0) ** 2).mean().sqrt() / fs),
               "clipped": q.report.get("clipped_total")}
        if data is not None:
            row["test_mse_L1"] = float(((l1 - torch.tensor(data["y_test"]).double()) ** 2).mean())
        out.append(row)
        _log(f"quantize: sweep_bits {b}: L1 - L0 {row['rms_pct_fs_vs_L0']:.3f} % FS RMS")
    return out


def _cell_aware(model, scaling, data, ctx: FlowContext, cfg: Dict[str, Any]):
    """quantize.cell_aware: relu_diff models train on the task loss through the cell grid
    (`kchip.quantize.cellaware`), tanh_lin models distil the float model through the cell's L2 surrogate
    (`kchip.quantize.cellaware_lin`; no data set needed)."""
    log = lambda m: print(m, flush=True)
    from .quantize.cellaware_lin import LIN_TANH_LAWS, flow_lin_cell_aware
    if all(p.law.name in LIN_TANH_LAWS for p in model.periods):
        fwd = ctx.results.get("forward", {}).get("inputs")
        x_eval = np.load(ctx.root / fwd) if fwd else None
        return flow_lin_cell_aware(model, scaling, data, x_eval, cfg, log=log)
    from .quantize.cellaware import flow_cell_aware
    if data is None:
        raise ValueError("flow.yaml: quantize.cell_aware needs a model stage with a dataset (its data split)")
    return flow_cell_aware(model, scaling.v_u, data, cfg, log=log)


def stage_netlist(cfg: Dict[str, Any], ctx: FlowContext, out: Path) -> Dict[str, Any]:
    from .netlist import write_netlist
    level, corner = cfg["level"], cfg["corner"]
    rep: Dict[str, Any] = {}
    path = write_netlist(ctx.root / ctx.results["quantize"]["chipspec"], out / "chip.spice", level, corner, rep,
                         control=cfg["control"])
    res = {"netlist": str(path.relative_to(ctx.root)), "level": level}
    if level == "transistor":
        res.update(corner=corner, cells=str((path.parent / (path.name + ".cells.json")).relative_to(ctx.root)),
                   instantiated=rep["instantiated"], clipped=rep["clipped"], i_u=rep["i_u"], c_f=rep["c_f"],
                   max_code_err_pct_fs=rep["max_err_pct_fs"])
    return res


def stage_simulate(cfg: Dict[str, Any], ctx: FlowContext, out: Path) -> Dict[str, Any]:
    """ngspice on test inputs; error vs L1 and L0 in % of full scale, and the task metric on the chip."""
    import torch
    from .model import load_model
    from .quantize.chipspec import ChipSpec
    from .quantize.core import realized_model
    from .sim.simulate import compare, simulate
    spec = ChipSpec.load(ctx.root / ctx.results["quantize"]["chipspec"])
    n = cfg["num_inputs"]
    data = _data(ctx)
    if data is not None:
        x, y_true = data["x_test"][:n].astype(np.float64), data["y_test"][:n].astype(np.float64)
    else:
        x, y_true = np.load(ctx.root / ctx.results["forward"]["inputs"])[:n], None
    if len(x) < n:
        raise UsageError(ctx.file, "simulate.num_inputs", n, f"at most {len(x)} (the "
                         f"{'test split' if data is not None else 'forward stage'} has {len(x)} inputs)")
    from .sim.waves import kept_waves
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
    from .estimate.measure import transient_supply, waveform_latency
    from .netlist.schedule import build_schedule
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
    from .model import load_model
    from .hw.limits import load_limits
    from .netlist.transistor import SUPPORTED_LAWS, cell_level_spec
    from .quantize.core import realized_model
    from .sim.l2 import chip_code_surfaces, chip_load_switch, surrogate_model
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


def stage_forward(cfg: Dict[str, Any], ctx: FlowContext, out: Path) -> Dict[str, Any]:
    """Software forward (and reverse) pass on seeded inputs; the round trip reverse(forward(x)) must give x
    back (the circuit ODE is time-reversible), which checks the integrator settings."""
    import torch
    from .model import load_model
    model = load_model(ctx.root / ctx.results["model"]["model"]).double()
    n = cfg["num_inputs"]
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal((n, model.num_inputs)) * cfg["scale"]
    tol = dict(rtol=cfg["rtol"], atol=cfg["atol"])
    t0 = time.perf_counter()
    with torch.no_grad():
        y = model(torch.tensor(x), project=False, **tol)
        back = model(y, reverse=True, **tol)
    dt = time.perf_counter() - t0
    np.save(out / "inputs.npy", x)
    np.save(out / "outputs.npy", model.project(y).numpy())
    err = float((back[:, : x.shape[1]] - torch.tensor(x)).abs().max()) if model.projector is None else None
    return {"inputs": str((out / "inputs.npy").relative_to(ctx.root)),
            "outputs": str((out / "outputs.npy").relative_to(ctx.root)), "num_inputs": n, "seconds": round(dt, 3),
            "output_range": [float(y.min()), float(y.max())], "roundtrip_max_abs_error": err}


def stage_report(cfg: Dict[str, Any], ctx: FlowContext, out: Path) -> Dict[str, Any]:
    """report.json (every stage's results) and report.html (`kchip.report`)."""
    from .report import write_report
    return write_report(ctx.results, ctx.root, out, ctx.name, html_page=cfg["html"], seconds=ctx.seconds)


STAGES: Dict[str, Any] = {
    "model": stage_model,
    "forward": stage_forward,
    "quantize": stage_quantize,
    "netlist": stage_netlist,
    "simulate": stage_simulate,
    "sweep": "kchip.sim.sweep:stage_sweep",
    "layout": "kchip.layout.flowstage:stage_layout",
    "drc": "kchip.layout.flowstage:stage_drc",
    "lvs": "kchip.layout.flowstage:stage_lvs",
    "estimate": "kchip.estimate.flowstage:stage_estimate",
    "report": stage_report,
}


def _resolve(name: str) -> Callable:
    fn = STAGES[name]                          # the schema refused unknown stage names
    if isinstance(fn, str):
        mod, attr = fn.split(":")
        try:
            fn = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError):
            raise RunError(f"stage {name!r} is not available in this kchip ({fn})") from None
    return fn


def run_flow(flow_file: Path, build: Path = Path("build"), force: bool = False, start: Optional[str] = None,
             stop: Optional[str] = None, check_only: bool = False, workers: Optional[int] = None,
             scheduler: Optional[str] = None) -> Dict[str, Any]:
    """Run the stages of a flow file (validated first: `kchip.flowschema`). `start`: re-run from this stage on
    (the ones before it from the cache, if there); `stop`: the last stage to run; `check_only`: validate and
    return the completed configuration; `workers` / `scheduler`: where the simulate stage's independent runs go
    (local processes / a dask.distributed cluster, `kchip.sim.workers`). Every file a stage writes is complete or absent: stage.json is written
    last and atomically, and build/<name>/flow.json says whether the run completed or where it failed."""
    from .flowschema import load_flow
    flow_file = Path(flow_file)
    cfg = load_flow(flow_file)
    stages = list(cfg["stages"])
    for opt, name in (("--from", start), ("--to", stop)):
        if name is not None and name not in stages:
            raise UsageError(flow_file, "stages", stages, f"{opt} {name!r} is not one of the flow's stages")
    if stop is not None:
        stages = stages[: stages.index(stop) + 1]
    if check_only:
        return cfg
    ctx = FlowContext(cfg["name"], Path(build) / cfg["name"], flow_file.resolve().parent, file=str(flow_file),
                      workers=workers, scheduler=scheduler)
    fns = [_resolve(stage) for stage in stages]
    status = ctx.root / "flow.json"
    ctx.root.mkdir(parents=True, exist_ok=True)
    write_json(status, {"flow": str(flow_file), "status": "running", "stages": stages})
    upstream = ""
    rerun = force
    for i, (stage, fn) in enumerate(zip(stages, fns), start=1):
        rerun = rerun or stage == start
        section = cfg.get(stage, {})
        key = hashlib.sha256(json.dumps([stage, section, upstream], sort_keys=True, default=str).encode()).hexdigest()
        out = ctx.stage_dir(i, stage)
        meta_file = out / "stage.json"
        if not rerun and meta_file.exists():
            meta = json.loads(meta_file.read_text())
            if meta.get("key") == key and meta.get("ok"):
                _log(f"{i:02d} {stage}: cached ({out})")
                ctx.results[stage] = meta["result"]
                ctx.seconds[stage] = meta.get("seconds")
                upstream = key
                continue
        _log(f"{i:02d} {stage}: running ...")
        meta_file.unlink(missing_ok=True)
        t0 = time.perf_counter()
        try:
            result = fn(section, ctx, out)
        except BaseException as exc:
            _failed(ctx, i, stage, key, exc, time.perf_counter() - t0, flow_file)
            raise
        dt = time.perf_counter() - t0
        ctx.results[stage], ctx.seconds[stage] = result, round(dt, 3)
        write_json(meta_file, {"key": key, "ok": True, "seconds": round(dt, 3), "result": result})
        _log(f"{i:02d} {stage}: done in {dt:.1f} s: {json.dumps(result)[:300]}")
        upstream = key
    write_json(status, {"flow": str(flow_file), "status": "complete", "stages": stages})
    return ctx.results


def _failed(ctx: FlowContext, index: int, stage: str, key: str, exc: BaseException, dt: float,
            flow_file: Path) -> None:
    """A stage failed: its stage.json and build/<name>/flow.json say so, and any report.json under the build
    folder (an earlier run's, which would read as this run's) is removed."""
    msg = one_line(exc)
    write_json(ctx.stage_dir(index, stage) / "stage.json",
               {"key": key, "ok": False, "seconds": round(dt, 3), "error": msg})
    for old in ctx.root.glob("*-report/report.json"):
        old.unlink()
    write_json(ctx.root / "flow.json", {"flow": str(flow_file), "status": "failed", "failed_stage": stage,
                                        "error": msg})


def _add_flow(p):
    p.add_argument("flow_file", nargs="?", default="flow.yaml", help="flow description (default: flow.yaml)")
    p.add_argument("--build", default="build", help="build folder (default: build)")
    p.add_argument("--force", action="store_true", help="re-run every stage, ignoring the cache")
    p.add_argument("--from", dest="start", metavar="STAGE", help="re-run from this stage on (earlier ones cached)")
    p.add_argument("--to", dest="stop", metavar="STAGE", help="stop after this stage")
    p.add_argument("--check", action="store_true",
                   help="validate the flow file and print it with every default filled in; run nothing")
    from .cliargs import int_in
    p.add_argument("--workers", type=int_in(1, 1024), default=None, metavar="N",
                   help="local worker processes for the simulations (default: simulate.jobs, else one per core)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the simulations on this dask.distributed cluster (e.g. tcp://host:8786)")


def _run_flow(args) -> int:
    res = run_flow(Path(args.flow_file), Path(args.build), args.force, start=args.start, stop=args.stop,
                   check_only=args.check, workers=args.workers, scheduler=args.scheduler)
    if args.check:
        print(yaml.safe_dump(res, sort_keys=False), end="")
    return 0


COMMANDS = {"flow": ("run the kchip flow described by a flow.yaml (cached per stage)", _add_flow, _run_flow)}
