"""Regression (paper Table I): Friedman #1 and Diabetes with one FC period of Eq. 10 (relu_diff).

Data (official definitions, ARCHITECTURE §5 and the official test bench):
* friedman: sklearn `make_friedman1(n_samples=4096, n_features=5, noise=0, random_state=42)`, 40 % test split
  (`train_test_split(..., random_state=42)`), inputs and target min-max scaled to [0, 1] on the training split.
* diabetes: sklearn's bundled `load_diabetes()` (442 x 10), 30 % test split with random_state=42 (the official
  test bench's split), same min-max scaling fitted on the training split.
The split/generation seed is the official 42 by default; training seeds (init, batch order) are separate.

Model layout ("one FC layer"): the circuit has n_in input nodes 1..n_in, one output node n_in + 1 read by the
projector `last1`, and ground 0; one period of length T = 1 with an FC topology over those n_in + 2 nodes
(ground included) -- `_fully_connect(num_node=n_in + 2, repeat=[r, r])`. `_fully_connect` visits every unordered
pair twice (i, j) and (j, i), adding r edges each way per visit, so it has 2 r N (N - 1) edges for N = n_in + 2
nodes incl. ground, and Eq. 10 stores 2 parameters per edge: params = 4 r N (N - 1). With r = 1:
    Friedman  n_in = 5  -> N = 7  -> 168 params  (paper Table I small: 168)
    Diabetes  n_in = 10 -> N = 12 -> 528 params  (paper: 528)
    Housing   n_in = 8  -> N = 10 -> 360 params  (paper: 360; California housing has 8 features)
so the paper's small model has no hidden node. The paper's medium/large sizes are not recorded in this
project's notes; kchip scales the repeat: medium r = 2 (2x params), large r = 4 (4x params).

Looked up for the paper's medium/large definitions (Table I of arXiv 2310.15872, Gao et al.) and not found:
the official repository zhengqigao/kirchhoffnet ships no regression config or result (src/configs holds only
config_twomoon.yaml; src/main_ffn.py trains the FFN baseline; src/utils/testbench.py holds the data definitions
used above); the stored copy of the paper's HTML (arxiv.org/html/2310.15872v3) is reachable by the project's
search tool only through its opening (abstract, introduction), not Table I. So medium/large stay kchip's own
scaling, with no paper figure to compare against.
"""
from __future__ import annotations

import time
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from kchip.model import KirchhoffNet, Period
from kchip.model.topology import _fully_connect

from .common import fit, summarize_times, write_json_atomic, xy_batches

DATASETS = ("friedman", "diabetes")
SIZES = {"small": 1, "medium": 2, "large": 4}          # repeat r of the FC layer
PAPER_TABLE1 = {  # (test MSE, params) of the paper's small size (ARCHITECTURE §5); medium/large not found
    ("friedman", "small"): (8.81e-4, 168),
    ("diabetes", "small"): (2.91e-2, 528),
    ("housing", "small"): (1.55e-2, 360),
}
TRAIN_SOLVER = {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5}


def _minmax(train: np.ndarray, *others: np.ndarray):
    lo, hi = train.min(axis=0), train.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return [(a - lo) / span for a in (train,) + others]


def load_data(name: str, seed: int = 42) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test) float32 tensors, y of shape (N, 1), min-max scaled on the training
    split. `seed` is the data seed (generation + split), 42 = the official data."""
    from sklearn.model_selection import train_test_split
    if name == "friedman":
        from sklearn.datasets import make_friedman1
        x, y = make_friedman1(n_samples=4096, n_features=5, noise=0.0, random_state=seed)
        test_size = 0.40
    elif name == "diabetes":
        from sklearn.datasets import load_diabetes
        d = load_diabetes()
        x, y = d["data"], d["target"]
        test_size = 0.30
    else:
        raise ValueError(f"regression data set {name!r} unknown; known: {', '.join(DATASETS)}")
    y = np.asarray(y, dtype=np.float64).reshape(-1, 1)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed)
    xtr, xte = _minmax(xtr, xte)
    ytr, yte = _minmax(ytr, yte)
    f = lambda a: torch.tensor(a, dtype=torch.float32)
    return f(xtr), f(ytr), f(xte), f(yte)


def regression_num_params(n_in: int, size: str = "small", law_rows: int = 2) -> int:
    n = n_in + 2
    return law_rows * 2 * SIZES[size] * n * (n - 1)


def build_regression_model(n_in: int, size: str = "small", law: str = "relu_diff", t_len: float = 1.0,
                           solver: Optional[Dict] = None) -> KirchhoffNet:
    """One FC period over n_in inputs + 1 output node (+ ground), output read by `last1`. Parameters are
    drawn from torch's global RNG (seed it first for reproducibility)."""
    if size not in SIZES:
        raise ValueError(f"size {size!r} unknown; known: {', '.join(SIZES)}")
    if n_in < 1:
        raise ValueError(f"n_in must be >= 1, got {n_in}")
    r = SIZES[size]
    num_node = n_in + 2                       # ground + inputs + output
    edges = _fully_connect(num_node, include_gnd=True, repeat=[r, r])[:, :2]
    per = Period(edges, law, t_len, num_nodes=n_in + 1)
    return KirchhoffNet([per], projector="last1", solver=solver,
                        meta={"task": "regression", "size": size, "n_in": n_in})


def evaluate(model: KirchhoffNet, x: torch.Tensor, y: torch.Tensor, batch: int = 4096, **solver) -> float:
    """Test MSE (mean over samples and outputs)."""
    model.eval()
    se, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            out = model(x[i:i + batch], **solver)
            se += float(((out - y[i:i + batch]) ** 2).sum())
            n += out.numel()
    return se / max(n, 1)


def train(model: KirchhoffNet, data, epochs: int = 400, batch: int = 64, lr: float = 5e-4, seed: int = 0,
          run_dir=None, resume: bool = False, progress: bool = True, solver: Optional[Dict] = None,
          weight_decay: float = 0.01, config: Optional[Dict] = None, eval_every: int = 0) -> Dict:
    """Train with L2 loss and AdamW (paper settings by default). `data` = load_data(...) tuple. Returns metrics
    {train_loss, test_mse, train_mse, params, epoch_s_mean, ...}; writes run_dir/metrics.json if run_dir."""
    xtr, ytr, xte, yte = data
    sol = dict(TRAIN_SOLVER, **(solver or {}))

    def batches(gen, epoch):
        return xy_batches(xtr, ytr, batch, gen)

    def loss_fn(m, b):
        x, y = b
        return torch.mean((m(x, **sol) - y) ** 2)

    cfg = dict(config or {}, epochs=epochs, batch=batch, lr=lr, seed=seed, solver=sol, weight_decay=weight_decay)
    hist = fit(model, loss_fn, batches, epochs, lr, seed, run_dir=run_dir, resume=resume, progress=progress,
               weight_decay=weight_decay, config=cfg, desc=cfg.get("name", "regression"),
               eval_fn=(lambda m: {"test_mse": evaluate(m, xte, yte)}) if eval_every else None,
               eval_every=eval_every)
    t0 = time.time()
    test_mse = evaluate(model, xte, yte)
    metrics = {**{k: v for k, v in cfg.items() if k != "solver"}, "task": "regression", "solver": sol,
               "params": model.num_params(), "test_mse": test_mse, "train_mse": evaluate(model, xtr, ytr),
               "final_train_loss": hist["loss"][-1] if hist["loss"] else None, "eval_s": time.time() - t0,
               "train_loss": hist["loss"], "evals": hist["eval"], **summarize_times(hist)}
    if run_dir:
        write_json_atomic(metrics, f"{run_dir}/metrics.json")
    return metrics
