"""Chip-level corner and Monte Carlo sweeps at L2 (flow stage `sweep`), each point an independent task on local
worker processes or a dask.distributed cluster (`kchip.sim.workers`).

A point is the L2 model of the transistor chip (`kchip.sim.l2.surrogate_model`: the cells' characterized
surrogates inside the ODE, with the codes the netlister chose at the netlist corner) evaluated

* at a process corner: the cells' surrogates of that corner (tt, ss, ff, sf, fs), same codes;
* at a Monte Carlo draw (tt): every cell gets its own gain factor 1 + sigma_g z and input offsets sigma_o z
  (independent standard normals, seeded per draw), sigma_g and sigma_o its kind's median over the mismatch
  Monte Carlo of its characterization (`characterization/<kind>/tt.json`: sigma_gain_rel / sigma_slope_rel and
  sigma_offset_V; `mismatch_sigmas`). A relu_diff cell has one offset (on v_s - v_d), a three-parameter cell one per
  input.

For small chips (`sweep.transistor_max_cells`) every point runs at the transistor level too: the chip with tt's
codes simulated in ngspice with that corner's models, or with tt's mismatch models (`tt_mm`, ngspice's own
per-device draws). Every point's outputs are compared with L0 (RMS in % of full scale), the transistor corners
with L2 at the same corner, and with a data set they give the task MSE.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from kchip.quantize.chipspec import ChipSpec


def mismatch_sigmas(kind: str) -> Dict[str, float]:
    """{"gain": relative sigma, "offset_V": input offset sigma} of a cell kind: medians over its characterized
    Monte Carlo combinations (tt)."""
    from kchip.netlist.transistor import cell_table_path
    m = json.loads(cell_table_path(kind, "tt").read_text())["meta"]["summary"]
    med = lambda d: float(np.median(list(d.values())))
    gain = m.get("sigma_gain_rel") or m.get("sigma_slope_rel")
    if not gain or not m.get("sigma_offset_V"):
        raise ValueError(f"{kind}: its characterization has no mismatch Monte Carlo (sigma_* figures)")
    return {"gain": med(gain), "offset_V": med(m["sigma_offset_V"])}


def mismatch_draw(spec: ChipSpec, rep: Dict, kind: str, seed: int) -> Dict[int, tuple]:
    """{period: (gain, offset_s, offset_d)} (per edge, SW units) of one Monte Carlo draw."""
    sig = mismatch_sigmas(kind)
    rng = np.random.default_rng(seed)
    v_u = float(rep["v_u"])
    out = {}
    for per in spec.periods:
        n = len(per.edges)
        g = 1.0 + sig["gain"] * rng.standard_normal(n)
        a = sig["offset_V"] / v_u * rng.standard_normal(n)
        b = np.zeros(n) if kind == "relu_diff" else sig["offset_V"] / v_u * rng.standard_normal(n)
        out[per.index] = (g, a, b)
    return out


def _point(spec_json: str, rep: Dict, x: np.ndarray, corner: str, draw: Optional[int]) -> np.ndarray:
    """One sweep point (module level: it runs in a worker process): the L2 outputs at `corner`, with Monte Carlo
    draw `draw` (a seed) or none."""
    import torch
    from kchip.netlist.transistor import chip_cell_kind
    from kchip.sim.l2 import surrogate_model
    torch.set_num_threads(1)
    spec = ChipSpec.from_json(spec_json)
    mm = None if draw is None else mismatch_draw(spec, rep, chip_cell_kind(spec), draw)
    with torch.no_grad():
        return surrogate_model(spec, rep, corner=corner, mismatch=mm)(torch.tensor(x)).numpy()


def _transistor_point(spec_json: str, x: np.ndarray, corner: str, draw: Optional[int], folder: str) -> np.ndarray:
    """One transistor-level sweep point (a worker process): the chip with the tt tables' codes, simulated in
    ngspice with the models of `corner`, or for a Monte Carlo draw with tt's mismatch models (`tt_mm`: every
    device draws its own mismatch; ngspice's seed draw + 1)."""
    from kchip.netlist import build_netlist
    from kchip.pdk import load_pdk
    from .simulate import _run_chunk, simulation_deck
    spec = ChipSpec.from_json(spec_json)
    wd = Path(folder)
    wd.mkdir(parents=True, exist_ok=True)
    models = corner if draw is None else corner + load_pdk().mismatch_suffix
    deck = wd / "chip.spice"
    deck.write_text(build_netlist(spec, "transistor", models, control="ideal", codes_corner="tt"))
    sim, _, _ = simulation_deck(deck, wd, merge=draw is None)     # mismatch: every copy differs, no merging
    r = _run_chunk((str(sim), spec_json, np.asarray(x), "forward", (), None, None, 1, True,
                    1 if draw is None else draw + 1))
    return r["y"]


def run_sweep(spec: ChipSpec, rep: Dict, x: np.ndarray, corners: List[str], draws: int, seed: int = 0,
              workers: int = 1, scheduler: Optional[str] = None, log=None, transistor: Optional[Path] = None
              ) -> List[Dict[str, Any]]:
    """[{"level", "corner", "draw", "y"}] for each corner and each of `draws` Monte Carlo draws (seeds seed ..
    seed + draws - 1, at tt), at L2 and, with `transistor` (a folder for the decks), at the transistor level too,
    computed on the worker pool."""
    from concurrent.futures import as_completed
    from .workers import pool
    base = [(c, None) for c in corners] + [("tt", seed + k) for k in range(draws)]
    points = [("L2", c, d) for c, d in base]
    if transistor is not None:
        points += [("transistor", c, d) for c, d in base]
    sj = spec.to_json()
    out: List[Optional[Dict]] = [None] * len(points)
    t0 = time.perf_counter()
    with pool(workers, scheduler) as ex:
        futs = {}
        for i, (lvl, c, d) in enumerate(points):
            if lvl == "L2":
                futs[ex.submit(_point, sj, rep, x, c, d)] = i
            else:
                folder = str(Path(transistor).resolve() / (c if d is None else f"mc{d}"))
                futs[ex.submit(_transistor_point, sj, x, c, d, folder)] = i
        for n, f in enumerate(as_completed(futs), start=1):
            i = futs[f]
            out[i] = {"level": points[i][0], "corner": points[i][1], "draw": points[i][2], "y": f.result()}
            if log:
                log(f"sweep: {n}/{len(points)} points done ({time.perf_counter() - t0:.0f} s)")
    return out


def stage_sweep(cfg: Dict[str, Any], ctx, out: Path) -> Dict[str, Any]:
    """Flow stage: the sweep on `sweep.inputs` test inputs (else the forward stage's) -> sweep.npz, and per point
    the RMS error against L0 (% FS) and the task MSE."""
    import torch
    from kchip.flow import _data, _log, eval_inputs
    from kchip.fsio import save_npz
    from kchip.model import load_model
    from kchip.netlist.transistor import transistor_netlist
    from .simulate import compare
    spec = ChipSpec.load(ctx.root / ctx.results["quantize"]["chipspec"])
    pool_x, pool_y, _ = eval_inputs(ctx, _data(ctx))
    x = pool_x[: cfg["inputs"]].astype(np.float64)
    corner = ctx.results.get("netlist", {}).get("corner") or "tt"
    _, rep = transistor_netlist(spec, corner=corner)          # the codes the transistor chip has
    t0 = time.perf_counter()
    small = rep["instantiated"] <= cfg["transistor_max_cells"]
    pts = run_sweep(spec, rep, x, cfg["corners"], cfg["mc_draws"], cfg["seed"], ctx.workers or cfg["workers"] or 1,
                    ctx.scheduler, log=_log, transistor=out / "transistor" if small else None)
    wall = time.perf_counter() - t0
    with torch.no_grad():
        l0 = load_model(ctx.root / ctx.results["model"]["model"]).double()(torch.tensor(x)).numpy()
    fs = float(np.max(l0.max(0) - l0.min(0))) or 1.0          # L0's range, for the L2 comparison too
    rms = lambda y, ref: compare(y, ref, fs)["rms_pct_fs"]
    y_true = None if pool_y is None else pool_y[: len(x)]
    rows = []
    l2_at = {(p["corner"], p["draw"]): p["y"] for p in pts if p["level"] == "L2"}
    for p in pts:
        r = {"level": p["level"], "corner": p["corner"], "draw": p["draw"],
             "rms_pct_fs_vs_L0": rms(p["y"], l0)}
        if p["level"] == "transistor" and p["draw"] is None:     # the same chip at L2, same corner
            r["rms_pct_fs_vs_L2"] = rms(p["y"], l2_at[(p["corner"], None)])
        if y_true is not None:
            r["mse"] = float(np.mean((p["y"] - y_true) ** 2))
        rows.append(r)
    save_npz(out / "sweep.npz", x=x, L0=l0, y=np.stack([p["y"] for p in pts]),
             labels=np.array([f"{p['level']}/{p['corner']}" + ("" if p["draw"] is None else f"/mc{p['draw']}")
                              for p in pts]))
    key = "mse" if y_true is not None else "rms_pct_fs_vs_L0"
    res = {"sweep": str((out / "sweep.npz").relative_to(ctx.root)), "inputs": len(x), "points": rows,
           "corners": {r["corner"]: r[key] for r in rows if r["draw"] is None and r["level"] == "L2"}, "metric": key,
           "sigmas": mismatch_sigmas(rep["cell"]), "seconds": round(wall, 2),
           "transistor": (f"run ({rep['instantiated']} cells <= sweep.transistor_max_cells)" if small else
                          f"not run ({rep['instantiated']} cells > sweep.transistor_max_cells "
                          f"{cfg['transistor_max_cells']})")}
    for lvl, name in (("L2", "monte_carlo"), ("transistor", "monte_carlo_transistor")):
        v = np.array([r[key] for r in rows if r["draw"] is not None and r["level"] == lvl])
        if len(v):
            res[name] = {"draws": len(v), "mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1
                         else 0.0, "min": float(v.min()), "max": float(v.max())}
    if small:
        res["corners_transistor"] = {r["corner"]: r[key] for r in rows if r["draw"] is None
                                     and r["level"] == "transistor"}
    return res
