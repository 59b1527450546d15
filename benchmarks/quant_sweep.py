"""Bit-width sweep 3..8, 4-bit STE fine-tuning recovery and Monte Carlo mismatch (issue 4 acceptance figures).

For each model (twomoon official fixture, the diabetes regression model of benchmarks/quant_train_regression.py):
  L0 metric; for bits 3..8 (gm and bias widths equal): output error (RMS/max, % FS) and task metric of the L1 model
  with ideal cells (full scale = the model's own range) -- and at 6 bits also with the sky130 cell limits
  (clipping); 4-bit fine-tuning (STE); MC mismatch (sigma_gm 2 %, sigma_offset 1 % of I_u) at 6 bits.
Writes <out>/quant_sweep.json, docs/quant_sweep_<model>.png.
Run: OMP_NUM_THREADS=1 python benchmarks/quant_sweep.py [--models twomoon,diabetes] [--draws 50] [--ft-epochs N]
"""
import argparse
import json
import time
from pathlib import Path

import torch

from kchip.hw import map_model
from kchip.hw.limits import load_limits
from kchip.model import import_official, load_model
from kchip.quantize import quantize_model
from kchip.quantize.evaluate import finetune, get_task, monte_carlo, output_error

FIX = Path("/work/shared/fixtures/official-kirchhoffnet/twomoon")


def load(name):
    if name == "twomoon":
        return import_official(FIX / "model.pth", FIX / "config.yaml").double()
    return load_model(f"build/quant/{name}/model.pt").double()


def run_mc(name, a, log):
    """Only the Monte Carlo part (merged into an existing result file)."""
    lim = load_limits()
    m = load(name)
    task = get_task("auto", m)
    ref = task.outputs(m)
    sc = map_model(m, task.calib(), lim)
    r6i = quantize_model(m, sc, lim, respect_limits=False, num_inputs=task.num_inputs)
    t1 = time.time()
    mc = monte_carlo(r6i.model, task, a.draws, 0.02, 0.01, seed=0, ref_outputs=ref)
    mc["seconds"] = time.time() - t1
    mc["L1_metric"] = task.metric(r6i.model)
    log(f"{name} MC ({a.draws} draws): {mc['metric_mean']:.5g} +- {mc['metric_std']:.5g}")
    return mc


def run_sweep(name, a, log):
    """Only the bit-width sweep, with an optional solver tolerance."""
    lim = load_limits()
    m = load(name)
    solver = {"rtol": a.tol, "atol": a.tol} if a.tol else None
    task = get_task("auto", m, solver=solver)
    ref = task.outputs(m)
    res = {"solver": solver, "L0_metric": task.metric(m), "rows": []}
    sc = map_model(m, task.calib(), lim)
    for bits in list(range(3, 9)) + [16]:
        r = quantize_model(m, sc, lim, bits={"gm": bits, "bias": bits}, respect_limits=False,
                           num_inputs=task.num_inputs)
        e = output_error(ref, task.outputs(r.model))
        res["rows"].append({"bits": bits, **e, "metric": task.metric(r.model)})
        log(f"{name} tol {a.tol} bits {bits}: rms {e['rms_pct_fs']:.3f} %FS max {e['max_pct_fs']:.3f} %FS "
            f"metric {res['rows'][-1]['metric']:.5g}")
    return res


def run(name, a, log):
    lim = load_limits()
    m = load(name)
    task = get_task("auto", m)
    t0 = time.time()
    ref = task.outputs(m)
    res = {"model": name, "task": task.name, "metric_name": task.metric_name, "params": m.num_params(),
           "L0_metric": task.metric(m)}
    sc = map_model(m, task.calib(), lim)
    res["scaling"] = {k: getattr(sc, k) for k in ("v_cm", "v_u", "i_u", "c_f", "tau_s")}
    res["mapping_warnings"] = sc.report["warnings"]
    rows = []
    for bits in range(3, 9):
        r = quantize_model(m, sc, lim, bits={"gm": bits, "bias": bits}, respect_limits=False,
                           num_inputs=task.num_inputs)
        e = output_error(ref, task.outputs(r.model))
        rows.append({"bits": bits, **e, "metric": task.metric(r.model)})
        log(f"{name} bits {bits}: rms {e['rms_pct_fs']:.3f} %FS max {e['max_pct_fs']:.3f} %FS "
            f"metric {rows[-1]['metric']:.5g}")
    res["sweep"] = rows
    r6 = quantize_model(m, sc, lim, respect_limits=True, num_inputs=task.num_inputs)
    e = output_error(ref, task.outputs(r6.model))
    res["bits6_sky130_limits"] = {**e, "metric": task.metric(r6.model), "clipped": r6.report["clipped_total"],
                                  "tables": r6.report["tables"]}
    log(f"{name} 6 bits with sky130 limits: clipped {r6.report['clipped_total']}, rms {e['rms_pct_fs']:.3f} %FS, "
        f"metric {res['bits6_sky130_limits']['metric']:.5g}")
    # 4-bit STE fine-tuning
    r4 = quantize_model(m, sc, lim, bits={"gm": 4, "bias": 4}, respect_limits=False, num_inputs=task.num_inputs)
    t1 = time.time()
    ft = finetune(m, sc, r4.spec.tables, task, a.ft_epochs[name], lr=a.ft_lr[name], seed=0, log=log)
    r4f = quantize_model(ft, sc, lim, bits={"gm": 4, "bias": 4}, tables=r4.spec.tables, num_inputs=task.num_inputs)
    m4, m4f = task.metric(r4.model), task.metric(r4f.model)
    loss0 = m4 - res["L0_metric"]
    res["finetune4"] = {"epochs": a.ft_epochs[name], "lr": a.ft_lr[name], "metric_before": m4, "metric_after": m4f,
                        "recovered_fraction": (m4 - m4f) / loss0 if loss0 > 0 else None,
                        "rms_pct_fs_after": output_error(ref, task.outputs(r4f.model))["rms_pct_fs"],
                        "seconds": time.time() - t1}
    log(f"{name} 4-bit fine-tune: {m4:.5g} -> {m4f:.5g} (L0 {res['L0_metric']:.5g}), recovered "
        f"{res['finetune4']['recovered_fraction']}")
    # Monte Carlo mismatch at 6 bits
    r6i = quantize_model(m, sc, lim, respect_limits=False, num_inputs=task.num_inputs)
    t1 = time.time()
    mc = monte_carlo(r6i.model, task, a.draws, 0.02, 0.01, seed=0, ref_outputs=ref)
    mc["seconds"] = time.time() - t1
    mc["L1_metric"] = task.metric(r6i.model)
    res["mc6"] = mc
    log(f"{name} MC ({a.draws} draws): {mc['metric_mean']:.5g} +- {mc['metric_std']:.5g}")
    res["seconds"] = time.time() - t0
    return res


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    b = [r["bits"] for r in res["sweep"]]
    fig, ax = plt.subplots(1, 2, figsize=(8, 3.2))
    ax[0].semilogy(b, [r["rms_pct_fs"] for r in res["sweep"]], "o-", label="RMS")
    ax[0].semilogy(b, [r["max_pct_fs"] for r in res["sweep"]], "s--", label="max")
    ax[0].axhline(1.0, color="gray", lw=0.8, ls=":")
    ax[0].set_xlabel("bits (+ sign)"); ax[0].set_ylabel("output error [% FS]"); ax[0].legend()
    ax[1].plot(b, [r["metric"] for r in res["sweep"]], "o-", label="L1 (quantized)")
    ax[1].axhline(res["L0_metric"], color="k", lw=0.8, ls="--", label="L0 float")
    ax[1].plot([4], [res["finetune4"]["metric_after"]], "r*", ms=10, label="4 bit + STE fine-tune")
    ax[1].set_yscale("log"); ax[1].set_xlabel("bits (+ sign)"); ax[1].set_ylabel(res["metric_name"])
    ax[1].legend(fontsize=7)
    fig.suptitle(f"{res['model']}: quantization vs bit width", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="twomoon,diabetes")
    ap.add_argument("--draws", type=int, default=50)
    ap.add_argument("--ft-epochs", dest="ft_epochs_cli", type=int, default=None,
                    help="override fine-tuning epochs of every model")
    ap.add_argument("--ft-lr", dest="ft_lr_cli", type=float, default=None)
    ap.add_argument("--only-mc", action="store_true", help="rerun only the Monte Carlo part")
    ap.add_argument("--only-sweep", action="store_true",
                    help="only the bit-width sweep, stored as sweep_tol<tol> in the result file")
    ap.add_argument("--tol", type=float, default=None, help="solver rtol = atol for the sweep (default: model's)")
    ap.add_argument("--out", default="build/quant")
    a = ap.parse_args()
    torch.set_num_threads(1)
    a.ft_epochs = {"twomoon": 10, "diabetes": 30}
    a.ft_lr = {"twomoon": 1e-3, "diabetes": 5e-4}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    allres = {}
    for name in a.models.split(","):
        if a.ft_lr_cli:
            a.ft_lr[name] = a.ft_lr_cli
        if a.ft_epochs_cli:
            a.ft_epochs[name] = a.ft_epochs_cli
        if a.only_sweep:
            allres[name] = json.loads((out / f"quant_sweep_{name}.json").read_text())
            allres[name][f"sweep_tol{a.tol}"] = run_sweep(name, a, lambda s: print(s, flush=True))
        elif a.only_mc:
            allres[name] = json.loads((out / f"quant_sweep_{name}.json").read_text())
            allres[name]["mc6"] = run_mc(name, a, lambda s: print(s, flush=True))
        else:
            allres[name] = run(name, a, lambda s: print(s, flush=True))
        (out / f"quant_sweep_{name}.json").write_text(json.dumps(allres[name], indent=1))
        (out / "quant_sweep.json").write_text(json.dumps(allres, indent=1))
        plot(allres[name], f"docs/quant_sweep_{name}.png")
    print(json.dumps({k: {"sweep": [(r["bits"], round(r["rms_pct_fs"], 4), round(r["metric"], 6)) for r in v["sweep"]],
                          "ft": v["finetune4"], "mc": {x: v["mc6"][x] for x in ("metric_mean", "metric_std")}}
                      for k, v in allres.items()}, indent=1))


if __name__ == "__main__":
    main()
