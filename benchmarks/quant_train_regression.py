"""Train the small regression model that the quantization study (docs/quantize.md) uses.

Uses kchip.tasks.regression (issue 3's API): diabetes, small (528 params, Eq. 10), AdamW, batch 64.
Writes build/quant/<dataset>/model.pt (kchip model file) and metrics.json.
Run: OMP_NUM_THREADS=1 python benchmarks/quant_train_regression.py [--dataset diabetes] [--epochs 400]
"""
import argparse
import json
import time
from pathlib import Path

import torch

from kchip.model import save_model
from kchip.tasks.regression import build_regression_model, load_data, train


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="diabetes")
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="build/quant")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    data = load_data(a.dataset, 42)
    model = build_regression_model(data[0].shape[1], "small")
    t0 = time.time()
    m = train(model, data, epochs=a.epochs, seed=a.seed, progress=False)
    out = Path(a.out) / a.dataset
    out.mkdir(parents=True, exist_ok=True)
    model.meta.update({"dataset": a.dataset, "test_mse": m["test_mse"], "epochs": a.epochs})
    save_model(model, out / "model.pt")
    (out / "metrics.json").write_text(json.dumps({k: m[k] for k in ("test_mse", "train_mse", "params")}
                                                 | {"train_s": time.time() - t0}, indent=1))
    print(a.dataset, "test_mse", m["test_mse"], "params", m["params"], "time", time.time() - t0)


if __name__ == "__main__":
    main()
