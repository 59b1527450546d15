"""Two further studies (docs/results.md, Quantization): mismatch-aware fine-tuning (diabetes, 6 bits) and STE
fine-tuning under the sky130 cell limits (twomoon, 6 bits, clipped slopes).
Run: OMP_NUM_THREADS=1 python benchmarks/quant_extra.py [--draws 50]; writes build/quant/quant_extra.json."""
import argparse
import json
import time
from pathlib import Path

import torch

from kchip.hw import map_model
from kchip.hw.limits import load_limits
from kchip.quantize import quantize_model
from kchip.quantize.evaluate import finetune, get_task, monte_carlo, output_error

import sys
sys.path.insert(0, str(Path(__file__).parent))
from quant_sweep import load  # noqa: E402


def _quantized(name, lim):
    """Model, task, float reference outputs, scaling and the 6-bit quantization under the sky130 limits."""
    m = load(name)
    task = get_task("auto", m)
    sc = map_model(m, task.calib(), lim)
    return m, task, task.outputs(m), sc, quantize_model(m, sc, lim, num_inputs=task.num_inputs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=50)
    ap.add_argument("--parts", default="mismatch,limits")
    a = ap.parse_args()
    torch.set_num_threads(1)
    lim = load_limits()
    out = {}
    f = Path("build/quant/quant_extra.json")
    if f.exists():
        out = json.loads(f.read_text())
    if "mismatch" in a.parts:
        m, task, ref, sc, r6 = _quantized("diabetes", lim)
        res = {"L0": task.metric(m), "L1": task.metric(r6.model)}
        for tag, mm in (("plain", None), ("mismatch_aware", (0.02, 0.01))):
            t0 = time.time()
            ft = finetune(m, sc, r6.spec.tables, task, 30, lr=5e-4, mismatch=mm)
            rf = quantize_model(ft, sc, lim, tables=r6.spec.tables, num_inputs=task.num_inputs)
            mc = monte_carlo(rf.model, task, a.draws, 0.02, 0.01, seed=0, ref_outputs=ref)
            res[tag] = {"L1_metric": task.metric(rf.model), "mc_mean": mc["metric_mean"], "mc_std": mc["metric_std"],
                        "mc_rms_pct_fs": mc.get("rms_pct_fs_mean"), "seconds": time.time() - t0}
            print("diabetes 6 bit fine-tune", tag, res[tag], flush=True)
        out["diabetes_mismatch_aware_6bit"] = res
        f.write_text(json.dumps(out, indent=1))
    if "limits" in a.parts:
        m, task, ref, sc, r6 = _quantized("twomoon", lim)
        t0 = time.time()
        ft = finetune(m, sc, r6.spec.tables, task, 10, lr=1e-3, log=lambda s: print(s, flush=True))
        rf = quantize_model(ft, sc, lim, tables=r6.spec.tables, num_inputs=task.num_inputs)
        res = {"L0": task.metric(m), "L1_limits": task.metric(r6.model), "clipped_before": r6.report["clipped_total"],
               "L1_limits_finetuned": task.metric(rf.model), "clipped_after": rf.report["clipped_total"],
               "rms_pct_fs_vs_L0_after": output_error(ref, task.outputs(rf.model))["rms_pct_fs"],
               "epochs": 10, "seconds": time.time() - t0}
        # does the fine-tuned chip still fit the cell input range at the V_u chosen for the original model?
        from kchip.hw.mapping import calibration_ranges
        rng = calibration_ranges(rf.model, task.calib())
        v_abs = max(r["v_abs_max"] for r in rng.values())
        res.update({"v_u": sc.v_u, "v_abs_max_sw_after": v_abs, "node_swing_v_after": v_abs * sc.v_u,
                    "input_swing_v": lim.input_swing_v})
        rf.spec.save("build/quant/twomoon_limits_ft6.json")
        print("twomoon 6 bit sky130 limits + fine-tune", res, flush=True)
        out["twomoon_limits_finetune_6bit"] = res
        f.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
