"""Flow stage `quantize` (plugged into kchip.flow.STAGES): map the model to hardware scaling (calibrated on
training inputs), optionally fine-tune it onto the transistor cells' code grid (`quantize.cell_aware`), quantize
it to cell codes -> chip.json, and compare L1 with L0 at other bit widths (`quantize.sweep_bits`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np

from ..flow import FlowContext, _data, _log, eval_inputs


def stage_quantize(cfg: Dict[str, Any], ctx: FlowContext, out: Path) -> Dict[str, Any]:
    """Map to hardware scaling (calibrated on training inputs) and quantize to cell codes -> chip.json."""
    import torch
    from ..hw.mapping import map_model
    from ..model import load_model
    from .core import quantize_model
    model = load_model(ctx.root / ctx.results["model"]["model"])
    data = _data(ctx)
    pool, _, source = eval_inputs(ctx, data, "train")
    calib = torch.tensor(pool[: cfg["calib"]])
    if len(calib) < cfg["calib"]:
        _log(f"quantize: calib {cfg['calib']}: the {source} has {len(calib)} rows; calibrating on all {len(calib)}")
    target = cfg["target"]
    lim = None
    if cfg.get("limits"):                      # overrides of the PDK limits, e.g. the cells' input range
        from dataclasses import replace
        from ..hw.limits import load_limits
        lim = replace(load_limits(), **cfg["limits"])
    scaling = map_model(model, calib, pdk_limits=lim, target=target)
    float_model, cell_aware = model, None
    if cfg.get("cell_aware"):                  # fine-tune onto the transistor cell's code grid
        model, cell_aware = _cell_aware(model, scaling, data, ctx, dict(cfg["cell_aware"]))
        from ..model import save_model
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
    from .core import quantize_model
    x = torch.tensor(eval_inputs(ctx, data)[0]).double()
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
    from .cellaware_lin import LIN_TANH_LAWS, flow_lin_cell_aware
    if all(p.law.name in LIN_TANH_LAWS for p in model.periods):
        fwd = ctx.results.get("forward", {}).get("inputs")
        x_eval = np.load(ctx.root / fwd) if fwd else None
        return flow_lin_cell_aware(model, scaling, data, x_eval, cfg, log=log)
    from .cellaware import flow_cell_aware
    if data is None:
        raise ValueError("flow.yaml: quantize.cell_aware needs a model stage with a dataset (its data split)")
    return flow_cell_aware(model, scaling.v_u, data, cfg, log=log)
