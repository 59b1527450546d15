"""Image classification with NE/Proj layers only (paper §V-B), on scikit-learn's bundled 8x8 digits.

Data: `load_digits()` (1,797 images, 8x8, values 0..16) scaled to [0, 1] by /16, flattened row-major onto the
grid nodes 1..64; stratified 80/20 split with random_state=42 (1,437 train / 360 test).

Model (the official MNIST layout scaled to 8x8): `layers` periods, each a Proj layer
`_mix_connect(1, 8, 8, k, extra, repeat=[1, 1])` -- the k x k neighbour pairs of the pixel grid, every grid node
joined to ground both ways, and `extra` additional nodes each joined both ways to every grid node and ground --
read out by the projector `last10` (logits = the last 10 extra nodes' voltages at t = D T). With layers=1 the
first period may instead be a plain NE layer (`--first ne`). No conventional layer anywhere: the logits are node
voltages; the loss is cross-entropy on them.
"""
from __future__ import annotations

import time
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from kchip.model import KirchhoffNet, Period
from kchip.model.topology import _mix_connect

from .common import fit, summarize_times, write_json_atomic, xy_batches

TRAIN_SOLVER = {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3}
EVAL_SOLVER = {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5}


def load_digits_data(seed: int = 42) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = d["data"].astype(np.float64) / 16.0
    y = d["target"].astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    f = lambda a: torch.tensor(a, dtype=torch.float32)
    return f(xtr), torch.tensor(ytr), f(xte), torch.tensor(yte)


def build_classifier(layers: int = 2, kernel: int = 3, extra: int = 20, law: str = "relu_diff",
                     t_len: float = 1.0, first: str = "proj", solver: Optional[Dict] = None) -> KirchhoffNet:
    if extra < 10:
        raise ValueError(f"extra must be >= 10 (the last 10 extra nodes are the logits), got {extra}")
    pers = []
    for k in range(layers):
        n_extra = 0 if (k == 0 and first == "ne" and layers > 1) else extra
        tab = _mix_connect(1, 8, 8, kernel, n_extra, repeat=[1, 1])
        pers.append(Period(tab[:, :2], law, t_len, num_nodes=64 + n_extra, where=f"period{k}"))
    return KirchhoffNet(pers, projector="last10", solver=solver,
                        meta={"task": "digits", "layers": layers, "kernel": kernel, "extra": extra})


def accuracy(model: KirchhoffNet, x: torch.Tensor, y: torch.Tensor, batch: int = 512, **solver) -> float:
    sol = dict(EVAL_SOLVER, **solver)
    ok = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            ok += int((model(x[i:i + batch], **sol).argmax(1) == y[i:i + batch]).sum())
    return ok / x.shape[0]


def train(model: KirchhoffNet, data, epochs: int = 60, batch: int = 64, lr: float = 5e-3, seed: int = 0,
          run_dir=None, resume: bool = False, progress: bool = True, solver: Optional[Dict] = None,
          scheduler: Optional[str] = "cosine", eval_every: int = 0, config: Optional[Dict] = None) -> Dict:
    xtr, ytr, xte, yte = data
    sol = dict(TRAIN_SOLVER, **(solver or {}))

    def batches(gen, epoch):
        return xy_batches(xtr, ytr, batch, gen)

    def loss_fn(m, b):
        return F.cross_entropy(m(b[0], **sol), b[1])

    cfg = dict(config or {}, data="digits", epochs=epochs, batch=batch, lr=lr, seed=seed, scheduler=scheduler,
               solver=sol)
    ev = (lambda m: {"test_acc": accuracy(m, xte, yte, **TRAIN_SOLVER)}) if eval_every else None
    hist = fit(model, loss_fn, batches, epochs, lr, seed, run_dir=run_dir, resume=resume, progress=progress,
               config=cfg, scheduler=scheduler, desc=cfg.get("name", "digits"), eval_fn=ev, eval_every=eval_every)
    t0 = time.time()
    metrics = {**cfg, "task": "classification", "params": model.num_params(),
               "test_top1": accuracy(model, xte, yte), "train_top1": accuracy(model, xtr, ytr),
               "eval_s": time.time() - t0, "train_loss": hist["loss"], "evals": hist["eval"],
               **summarize_times(hist)}
    if run_dir:
        write_json_atomic(metrics, f"{run_dir}/metrics.json")
    return metrics
