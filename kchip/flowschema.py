"""The flow.yaml schema: every key `kchip flow` reads, with its type, range, allowed values and default
(`kchip.schema`). `load_flow(path)` returns the validated configuration with the defaults filled in; the stages
read only that. An unknown key, a wrong type, a value out of range, a missing file, a stage listed twice or out
of order are refused before any stage runs, as ``flow.yaml: quantize.bits_gm: 40: an integer in [1, 16]``.

docs/flow.md lists the keys (generated from this schema by `describe()`, checked by a test)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List

from .errors import NO_VALUE
from .schema import (FILL, OMIT, REQUIRED, AnyValue, Bool, Choice, Field, File, Float, Int, List as ListOf,
                     Map, Nullable, Str, Switch, Where, load_yaml)

# the stages each stage needs earlier in the list (the stages, in flow order, are the keys of `_sections()`)
NEEDS = {"forward": ["model"], "quantize": ["model"], "netlist": ["quantize"], "simulate": ["netlist"],
         "layout": ["netlist"], "drc": ["layout"], "lvs": ["layout"],
         "estimate": ["quantize"], "sweep": ["quantize"]}
CORNERS = ["tt", "ss", "ff", "sf", "fs"]           # the corners of characterization/ (every cell kind)
DATASETS = ["friedman", "diabetes"]                # kchip.tasks.regression.DATASETS
SIZES = ["small", "medium", "large"]               # kchip.tasks.regression.SIZES
SEED = Int(0, 2 ** 32 - 1, default=0)
MAX_BITS = 16                                      # a code table holds 2^bits entries per parameter


def _laws() -> List[str]:
    from .model.laws import LAWS
    return list(LAWS)


def _topologies() -> List[str]:
    from .model.topology import GENERATORS
    return list(GENERATORS)


def _limit_fields() -> Dict[str, Field]:
    """quantize.limits: overrides of the PDK's scalar device limits (kchip.hw.limits.DeviceLimits)."""
    from dataclasses import fields
    from .hw.limits import DeviceLimits
    return {f.name: Float(doc="overrides pdk/sky130 limits.yaml") for f in fields(DeviceLimits)
            if f.type in ("float", float)}


def _solver() -> Map:
    from .model.net import solver_methods
    return Map({"method": Choice(solver_methods(), default=OMIT, doc="torchdiffeq method"),
                "rtol": Float(1e-12, 1.0, hi_open=True, default=OMIT),
                "atol": Float(1e-14, 1.0, default=OMIT),
                "options": Map({"step_size": Float(0.0, 10.0, lo_open=True, default=OMIT,
                                                   doc="fixed-step methods: the step")}, default=OMIT)},
               default=OMIT)


def _model() -> Switch:
    period = Map({
        "topology": Choice(_topologies(), default=REQUIRED, doc="edge-table generator (fc, ne, proj, ...)"),
        "args": Nullable(Map({}, extra=AnyValue("a generator argument (checked by the generator)")), default=OMIT,
                         doc="the generator's arguments, e.g. {num_node: 4}"),
        "law": Choice(_laws(), default=REQUIRED, doc="i-v law of the period's edges"),
        "t_len": Float(0.0, 100.0, lo_open=True, default=REQUIRED, doc="period length T (SW time)"),
        "init_scale": Float(-100.0, 100.0, default=1.0, doc="factor on the initial parameters"),
    }, nullable=False)
    train = Map({"dataset": Choice(DATASETS, default="diabetes"), "size": Choice(SIZES, default="small"),
                 "epochs": Int(1, 100000, default=60), "batch": Int(1, 1 << 20, default=64),
                 "lr": Float(0.0, 10.0, lo_open=True, default=5e-4), "seed": SEED,
                 "threads": Int(1, 1024, default=1), "progress": Bool(default=True)}, default=FILL)
    return Switch("source", {
        "train": Map({"train": train}),
        "official": Map({"checkpoint": File(default=REQUIRED, doc="official state dict (model.pth)"),
                         "config": File(default=REQUIRED, doc="official config.yaml")}),
        "kchip": Map({"file": File(default=REQUIRED, doc="kchip model file"),
                      "dataset": Choice(DATASETS, default=OMIT, doc="the task's data split for the metrics")}),
        "spec": Map({"seed": SEED, "periods": ListOf(period, min_len=1, default=REQUIRED),
                     "projector": Nullable(Str(r"(first|last)[1-9][0-9]*|none", "lastN, firstN or none"),
                                           default=None),
                     "solver": _solver()}),
    }, key_default="spec", default=FILL)


def _cell_aware() -> Map:
    """quantize.cell_aware: types here; each fine-tuner checks which of them its cell kind takes and holds the
    defaults (kchip.quantize.cellaware for relu_diff models, cellaware_lin for tanh_lin models)."""
    pos_int = lambda hi: Int(1, hi, default=OMIT)
    return Map({"corner": Choice(CORNERS, default=OMIT), "epochs": Int(0, 100000, default=OMIT),
                "steps": Int(0, 1000000, default=OMIT), "lr": Float(0.0, 10.0, lo_open=True, default=OMIT),
                "batch": pos_int(1 << 20), "seed": Int(0, 2 ** 32 - 1, default=OMIT), "rk4_steps": pos_int(10000),
                "dv_range_v": Float(0.0, 1.8, lo_open=True, default=OMIT),
                "input_scale": Float(0.0, 1e6, lo_open=True, default=OMIT), "dynamic": Bool(default=OMIT),
                "dynamic_steps": Int(0, 1000000, default=OMIT),
                "dynamic_lr": Float(0.0, 10.0, lo_open=True, default=OMIT)}, nullable=False, default=OMIT)


@lru_cache(maxsize=None)
def _sections() -> Dict[str, Field]:
    """One section per stage `kchip flow` knows (kchip.flow.STAGES), in flow order."""
    return {
        "model": _model(),
        "forward": Map({"num_inputs": Int(1, 1000000, default=64), "seed": SEED,
                        "scale": Float(0.0, 1e6, lo_open=True, default=1.0, doc="input std deviation"),
                        "rtol": Float(1e-12, 1.0, hi_open=True, default=1e-7),
                        "atol": Float(1e-14, 1.0, default=1e-9)}, default=FILL),
        "quantize": Map({
            "bits_gm": Int(1, MAX_BITS, default=6), "bits_bias": Int(1, MAX_BITS, default=6),
            "calib": Int(1, 10000000, default=256, doc="training rows the mapping calibrates on"),
            "target": Map({"kind": Choice(["latency", "power", "area"], default="latency"),
                           "value": Float(0.0, lo_open=True, default=1e-6, doc="s | W | um^2 per node"),
                           "node_speed": Choice(["enforce", "warn"], default="enforce")}, default=FILL),
            "limits": Map(_limit_fields(), default=OMIT),
            "cell_aware": _cell_aware(),
            "strict": Bool(default=False),
            "sweep_bits": ListOf(Int(1, MAX_BITS), default=[2, 3, 4, 5, 6, 8], unique=True,
                                 doc="bit widths at which L1 is compared with L0 (report); [] for none")},
            default=FILL),
        "netlist": Map({"level": Choice(["ideal", "transistor"], default="ideal"),
                        "corner": Choice(CORNERS, default="tt"),
                        "control": Nullable(Choice(["ideal", "sequencer"]), default=None,
                                            doc="transistor level: sequencer (default) or ideal (testbench)")},
                       default=FILL),
        "simulate": Map({"num_inputs": Int(1, 1000000, default=16), "jobs": Nullable(Int(1, 1024), default=None),
                         "chunk": Int(1, 100000, default=8),
                         "timeout_per_input_s": Nullable(Float(0.0, lo_open=True), default=None),
                         "merge": Bool(default=True), "op_init": Bool(default=True),
                         "l2_code_surfaces": Bool(default=True), "l2_load_switch": Bool(default=True)},
                        default=FILL),
        "sweep": Map({
            "corners": ListOf(Choice(CORNERS), default=list(CORNERS), unique=True, doc="process corners at L2"),
            "mc_draws": Int(0, 100000, default=20, doc="Monte Carlo mismatch draws at L2 (tt)"),
            "seed": SEED, "inputs": Int(1, 1000000, default=16, doc="test inputs per point"),
            "transistor_max_cells": Int(0, 1000000, default=40, doc="chips of at most this many cells: every "
                                        "point in ngspice at the transistor level too"),
            "workers": Nullable(Int(1, 1024), default=None, doc="local worker processes (kchip flow --workers "
                                                                  "overrides; --scheduler sends them to dask)")},
                     default=FILL),
        "layout": Map({"aspect": Float(0.05, 20.0, default=1.0, doc="floorplan width / height")}, default=FILL),
        "drc": Map({}, default=FILL),
        "lvs": Map({}, default=FILL),
        "estimate": Map({
            "measure": Bool(default=True, doc="ngspice: the transistor chip's supply current at pinned states"),
            "inputs": Int(1, 1000, default=2, doc="inputs whose L1 trajectories give the pinned states"),
            "points": Int(2, 100, default=3, doc="instants per period"),
            "corner": Nullable(Choice(CORNERS), default=None, doc="default: netlist.corner"),
            "sequencer": Bool(default=True, doc="count the standard-cell sequencer (simulated alone)"),
            "jobs": Nullable(Int(1, 1024), default=None, doc="ngspice processes (default: one per core)"),
            "timeout_s": Float(0.0, lo_open=True, default=3600.0)}, default=FILL),
        "report": Map({"html": Bool(default=True, doc="also write report.html")}, default=FILL),
    }


def _top() -> Map:
    return Map({"name": Str(r"[A-Za-z0-9][A-Za-z0-9_.-]*", "a name of letters, digits, '_', '.', '-' (it names "
                            "the build folder)", default=REQUIRED),
                "description": Str(default=OMIT),
                "stages": ListOf(Choice(list(_sections())), min_len=1, unique=True, default=REQUIRED),
                **_sections()}, nullable=False)


def validate_flow(cfg: Any, where: Where) -> Dict[str, Any]:
    """The flow configuration checked and completed with defaults; sections of stages not in `stages` are
    checked too (a typo there would otherwise wait for the day the stage is switched on)."""
    if cfg is None:
        raise where.error("", NO_VALUE, "empty file: a flow file needs at least the keys name and stages")
    if not isinstance(cfg, dict):
        raise where.error("", NO_VALUE, f"a flow file is a mapping with keys name, stages, ... (got a "
                          f"{type(cfg).__name__})")
    out = _top().check(cfg, "", where)
    _cross_checks(out, where)
    return out


def _cross_checks(cfg: Dict[str, Any], where: Where) -> None:
    stages = cfg["stages"]
    if "report" in stages and stages[-1] != "report":
        i = stages.index("report")
        raise where.error(f"stages[{i}]", "report", "must be the last stage (it collects every stage's results)")
    for i, s in enumerate(stages):
        for need in NEEDS.get(s, ()):
            if need not in stages[:i]:
                raise where.error(f"stages[{i}]", s, f"needs stage {need!r} earlier in the list")
    model = cfg["model"]
    has_data = model["source"] == "train" or (model["source"] == "kchip" and "dataset" in model)
    for i, s in enumerate(stages):
        if s in ("quantize", "simulate", "estimate", "sweep") and not has_data and "forward" not in stages[:i]:
            raise where.error(f"stages[{i}]", s, f"needs stage 'forward' earlier in the list (model.source "
                              f"{model['source']!r} has no data set: the forward stage's inputs calibrate and test "
                              f"the chip)")
    net = cfg["netlist"]
    if net["level"] == "ideal":
        if net["corner"] != "tt":
            raise where.error("netlist.corner", net["corner"], "a corner applies at level 'transistor' only (the "
                              "ideal level has no devices)")
        if net["control"] not in (None, "ideal"):
            raise where.error("netlist.control", net["control"], "the ideal level has testbench control only "
                              "('ideal'); 'sequencer' needs level 'transistor'")
    needs_cells = [s for s in stages if s in ("sweep", "estimate", "layout")] + (
        ["netlist"] if "netlist" in stages and net["level"] == "transistor" else [])
    if needs_cells and model["source"] == "spec":
        from .netlist.transistor import SUPPORTED_LAWS
        for i, per in enumerate(model["periods"]):
            if per["law"] not in SUPPORTED_LAWS:
                raise where.error(f"model.periods[{i}].law", per["law"], f"a law with a sky130 transistor cell "
                                  f"({', '.join(SUPPORTED_LAWS)}): stage {needs_cells[0]!r} builds the transistor chip")
    if "layout" in stages and net["level"] != "transistor":
        raise where.error("netlist.level", net["level"], "the layout stage needs 'transistor' (the ideal level has "
                          "no devices to lay out)")


def load_flow(path: Path) -> Dict[str, Any]:
    """Read and validate a flow file (see module doc)."""
    path = Path(path)
    where = Where(str(path), path.resolve().parent)
    return validate_flow(load_yaml(path), where)


def describe() -> str:
    """The schema as a Markdown table (docs/flow.md)."""
    rows = ["| key | allowed | default |", "|---|---|---|"]

    def walk(f: Field, path: str, cond: str = ""):
        if isinstance(f, Switch):
            options = " \\| ".join(f.variants)
            rows.append(f"| `{path}.{f.key}` | {options} | `{f.key_default!r}` |")
            for name, m in f.variants.items():
                for k, sub in m.fields.items():
                    walk(sub, f"{path}.{k}", f" ({f.key} {name})")
            return
        if isinstance(f, Nullable) and isinstance(f.inner, Map):
            f = f.inner
        if isinstance(f, Map) and f.fields:
            for k, sub in f.fields.items():
                walk(sub, f"{path}.{k}" if path else k, cond)
            return
        if isinstance(f, ListOf) and isinstance(f.item, Map):
            rows.append(f"| `{path}`{cond} | a list of at least {f.min_len} mappings | required |")
            for k, sub in f.item.fields.items():
                walk(sub, f"{path}[i].{k}", cond)
            return
        d = f.default
        dflt = "required" if d is REQUIRED else "" if d is OMIT or d is FILL else f"`{d!r}`"
        text = f.allowed().replace("|", "\\|")
        if f.doc:
            text += f"; {f.doc}"
        rows.append(f"| `{path}`{cond} | {text} | {dflt} |")

    walk(_top(), "")
    return "\n".join(rows) + "\n"


def section(stage: str, cfg: Any = None, file: str = "flow.yaml") -> Dict[str, Any]:
    """One stage's section checked and completed with defaults, as `load_flow` gives it to the stage (for
    callers that run a stage function on its own)."""
    return _sections()[stage].check(cfg, stage, Where(file))
