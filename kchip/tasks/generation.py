"""2-D generation as a continuous normalizing flow (paper §V-C): D FC periods of Eq. 13 (tanh_lin) over the
2 data nodes + ground, T = 0.5 each.

Direction convention (the official code's): *generation* is the circuit's forward direction, base z ~ N(0, I)
at t = 0 -> sample x at t = D*T. Training integrates data backwards (reverse=True) to z with the augmented
log-density state starting at 0 at t = D*T; then
    log p(x) = log N(z; 0, I) - logp_end,   logp_end = integral over [0, DT] of trace(J) dt,
the instantaneous change of variables. NLL = -mean log p(x), in nats per sample (2-D).
"""
from __future__ import annotations

import math
import time
from typing import Dict, Optional

import numpy as np
import torch

from kchip.model import KirchhoffNet, Period
from kchip.model.topology import _fully_connect

from .common import fit, summarize_times, write_json_atomic
from .toy2d import TOY, sample_toy

TRAIN_SOLVER = {"method": "dopri5", "rtol": 1e-4, "atol": 1e-4}
EVAL_SOLVER = {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5}
TEST_SEED = 20240      # the fixed seed of the 10,000-point test sets
N_TEST = 10_000


def build_flow_model(dim: int = 2, periods: int = 4, t_len: float = 0.5, repeat: int = 25, law: str = "tanh_lin",
                     solver: Optional[Dict] = None, meta: Optional[Dict] = None) -> KirchhoffNet:
    """`periods` FC periods over `dim` nodes + ground (`_fully_connect(dim + 1, repeat=[r, r])`, as the official
    configs), no projector (all nodes are data dimensions)."""
    pers = [Period(_fully_connect(dim + 1, include_gnd=True, repeat=[repeat, repeat])[:, :2], law, t_len,
                   num_nodes=dim, where=f"period{k}") for k in range(periods)]
    return KirchhoffNet(pers, projector=None, solver=solver, meta=dict(meta or {}, task="flow"))


def std_normal_logprob(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z ** 2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def log_prob(model: KirchhoffNet, x: torch.Tensor, **solver) -> torch.Tensor:
    """Exact log-density of data x under the flow (per sample)."""
    z, dlogp = model(x, reverse=True, logp=torch.zeros(x.shape[0], dtype=x.dtype), **solver)
    return std_normal_logprob(z) - dlogp


def nll(model: KirchhoffNet, x: torch.Tensor, batch: int = 2000, **solver) -> float:
    sol = dict(EVAL_SOLVER, **solver)
    tot = 0.0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            tot += float(-log_prob(model, x[i:i + batch], **sol).sum())
    return tot / x.shape[0]


def sample(model: KirchhoffNet, n: int, seed: int = 0, with_logp: bool = False, **solver):
    """Draw n samples: z ~ N(0, I) (seeded) run forward through the circuit. With `with_logp`, also return the
    model's log-density of each sample."""
    g = torch.Generator().manual_seed(int(seed))
    dim = model.periods[0].num_nodes
    z = torch.randn(n, dim, generator=g)
    sol = dict(EVAL_SOLVER, **solver)
    with torch.no_grad():
        if with_logp:
            x, dl = model(z, logp=torch.zeros(n), **sol)
            return x, std_normal_logprob(z) + dl
        return model(z, **sol)


def test_set(name: str, n: int = N_TEST) -> torch.Tensor:
    return sample_toy(name, n, TEST_SEED)


def train(model: KirchhoffNet, name: str, iters_per_epoch: int = 8, epochs: int = 100, batch: int = 512,
          lr: float = 1e-3, seed: int = 0, run_dir=None, resume: bool = False, progress: bool = True,
          solver: Optional[Dict] = None, scheduler: Optional[str] = "cosine", n_test: int = N_TEST,
          eval_every: int = 0, config: Optional[Dict] = None) -> Dict:
    """Maximum likelihood on fresh samples of toy set `name` (each batch drawn with a seed taken from the
    loop's generator, so runs are reproducible). Reports test NLL on the fixed 10,000-point test set."""
    if name not in TOY:
        raise ValueError(f"toy data set {name!r} unknown; known: {', '.join(TOY)}")
    sol = dict(TRAIN_SOLVER, **(solver or {}))
    xte = test_set(name, n_test)

    def batches(gen, epoch):
        for _ in range(iters_per_epoch):
            s = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=gen))
            yield sample_toy(name, batch, s)

    def loss_fn(m, x):
        return -log_prob(m, x, **sol).mean()

    cfg = dict(config or {}, data=name, epochs=epochs, iters_per_epoch=iters_per_epoch, batch=batch, lr=lr,
               seed=seed, scheduler=scheduler, solver=sol)
    ev = (lambda m: {"test_nll": nll(m, xte[:2000])}) if eval_every else None
    hist = fit(model, loss_fn, batches, epochs, lr, seed, run_dir=run_dir, resume=resume, progress=progress,
               config=cfg, scheduler=scheduler, desc=cfg.get("name", f"flow-{name}"), eval_fn=ev,
               eval_every=eval_every)
    t0 = time.time()
    test_nll = nll(model, xte)
    metrics = {**cfg, "task": "generation", "params": model.num_params(),
               "test_nll": test_nll, "n_test": int(xte.shape[0]), "test_seed": TEST_SEED,
               "eval_s": time.time() - t0, "train_loss": hist["loss"], "evals": hist["eval"],
               **summarize_times(hist)}
    if run_dir:
        write_json_atomic(metrics, f"{run_dir}/metrics.json")
    return metrics


def plot_samples(model: KirchhoffNet, path, n: int = 20000, seed: int = 0, data_name: Optional[str] = None,
                 lim: Optional[float] = None, title: str = "") -> None:
    """Side-by-side 2-D histograms: data (if named) and model samples."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs = sample(model, n, seed).numpy()
    panels = []
    if data_name:
        panels.append(("data: " + data_name, sample_toy(data_name, n, seed + 1).numpy()))
    panels.append(("samples" + (f" ({title})" if title else ""), xs))
    if lim is None:
        ref = panels[0][1]
        lim = float(np.percentile(np.abs(ref), 99.5)) * 1.15
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), dpi=80)
    axes = np.atleast_1d(axes)
    for ax, (t, pts) in zip(axes, panels):
        ax.hist2d(pts[:, 0], pts[:, 1], bins=120, range=[[-lim, lim], [-lim, lim]], cmap="viridis")
        ax.set_title(t, fontsize=9)
        ax.set_xticks([]); ax.set_yticks([]); ax.set_aspect("equal")
    fig.tight_layout()
    from pathlib import Path
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
