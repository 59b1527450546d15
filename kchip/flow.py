"""`kchip flow`: runs the stages named in a flow.yaml, caching each in build/<name>/<nn-stage>/.

Each stage is a function `stage(cfg_section, ctx, out) -> dict` (JSON-able summary, paths relative to the build
dir). A stage is re-run only when its config section or an upstream stage's result changed (a content hash
stored in its `stage.json`). The stages plug in through `STAGES`: an entry is a function here (model, forward,
netlist, report) or a "module:function" path imported when the flow asks for it (each stage module's
`flowstage`: kchip.quantize, kchip.sim (simulate, sweep), kchip.layout (layout, drc, lvs), kchip.estimate).
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
from .fsio import write_json


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


def eval_inputs(ctx: FlowContext, data, split: str = "test"):
    """(x, y or None, source): the task's `split` (x_<split>, y_<split> of `data`, the model stage's data set
    from `_data`) where there is one, else the forward stage's inputs and no targets; `source` names it for
    messages ("test split", "training split", "forward stage")."""
    if data is not None:
        return data[f"x_{split}"], data[f"y_{split}"], ("training" if split == "train" else split) + " split"
    return np.load(ctx.root / ctx.results["forward"]["inputs"]), None, "forward stage"


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
    "quantize": "kchip.quantize.flowstage:stage_quantize",
    "netlist": stage_netlist,
    "simulate": "kchip.sim.flowstage:stage_simulate",
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
