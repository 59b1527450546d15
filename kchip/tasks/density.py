"""Density matching on the Rezende & Mohamed (2015) potentials U1, U2 (paper §V-C): the flow pushes N(0, I)
forward (D = 8 FC periods of T = 0.2) and is trained to minimize the reverse KL
    KL(q || p) = E_{z ~ N}[ log q(x) + U(x) ] + log Z,   x = flow(z),
    log q(x) = log N(z) + logp_end,   logp_end = -integral of trace(J) dt  (forward direction).
log Z is integrated numerically on [-6, 6]^2 (both targets have negligible mass outside it). U2 as published is
not normalizable (periodic in z1); kchip's "u2" confines it to |z1| <= 4 with a steep wall (see toy2d.u2).
Law: tanh_diff (Eq. 11; the official potential configs use ShiftTanh1, which is Eq. 11).
"""
from __future__ import annotations

import time
from typing import Dict, Optional

import torch

from kchip.model import KirchhoffNet

from .common import fit, summarize_times, write_json_atomic
from .generation import build_flow_model, std_normal_logprob
from .toy2d import POTENTIALS, log_partition

TRAIN_SOLVER = {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3}
EVAL_SOLVER = {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5}
BOX = 4.0          # plotted window
LOGZ_LIM = 6.0     # half-width of the log Z integration square


def build_density_model(periods: int = 8, t_len: float = 0.2, repeat: int = 10, law: str = "tanh_diff"):
    return build_flow_model(2, periods, t_len, repeat, law)


def _forward(model, z, **sol):
    x, dl = model(z, logp=torch.zeros(z.shape[0], dtype=z.dtype), **sol)
    return x, std_normal_logprob(z) + dl


def kl_estimate(model: KirchhoffNet, name: str, n: int = 20000, seed: int = 123, **solver) -> Dict:
    u = POTENTIALS[name]
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g)
    with torch.no_grad():
        x, lq = _forward(model, z, **dict(EVAL_SOLVER, **solver))
    logz = log_partition(u, lim=LOGZ_LIM)
    kl = float((lq + u(x)).mean()) + logz
    inside = float(((x.abs() <= BOX).all(1)).float().mean())
    return {"kl": kl, "log_z_box": logz, "mass_in_box": inside, "n": n}


def train(model: KirchhoffNet, name: str, epochs: int = 50, iters_per_epoch: int = 20, batch: int = 512,
          lr: float = 3e-3, seed: int = 0, run_dir=None, resume: bool = False, progress: bool = True,
          solver: Optional[Dict] = None, scheduler: Optional[str] = "cosine", config: Optional[Dict] = None,
          anneal: int = 0) -> Dict:
    """Reverse-KL training. `anneal` > 0: the potential is scaled by beta = min(1, 0.1 + 0.9 epoch / anneal)
    during the first `anneal` epochs (a flatter target first, which helps the flow split onto both modes of
    U1 instead of collapsing onto one); the reported KL is always for beta = 1."""
    if name not in POTENTIALS:
        raise ValueError(f"potential {name!r} unknown; known: {', '.join(POTENTIALS)}")
    u = POTENTIALS[name]
    sol = dict(TRAIN_SOLVER, **(solver or {}))

    def batches(gen, epoch):
        beta = min(1.0, 0.1 + 0.9 * epoch / anneal) if anneal else 1.0
        for _ in range(iters_per_epoch):
            yield torch.randn(batch, 2, generator=gen), beta

    def loss_fn(m, b):
        z, beta = b
        x, lq = _forward(m, z, **sol)
        return (lq + beta * u(x)).mean()

    cfg = dict(config or {}, data=name, epochs=epochs, iters_per_epoch=iters_per_epoch, batch=batch, lr=lr,
               seed=seed, scheduler=scheduler, solver=sol, anneal=anneal)
    hist = fit(model, loss_fn, batches, epochs, lr, seed, run_dir=run_dir, resume=resume, progress=progress,
               config=cfg, scheduler=scheduler, desc=cfg.get("name", f"density-{name}"))
    t0 = time.time()
    kl = kl_estimate(model, name)
    metrics = {**cfg, "task": "density", "params": model.num_params(), **kl, "eval_s": time.time() - t0,
               "train_loss": hist["loss"], **summarize_times(hist)}
    if run_dir:
        write_json_atomic(metrics, f"{run_dir}/metrics.json")
    return metrics


def plot_density(model: KirchhoffNet, name: str, path, n_grid: int = 120, **solver) -> None:
    """Target exp(-U) next to the learned density q evaluated exactly on a grid (reverse integration)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .generation import log_prob
    u = POTENTIALS[name]
    g = torch.linspace(-BOX, BOX, n_grid)
    zz = torch.stack(torch.meshgrid(g, g, indexing="xy"), dim=-1).reshape(-1, 2)
    target = torch.exp(-u(zz.double())).float().reshape(n_grid, n_grid)
    with torch.no_grad():
        lq = torch.cat([log_prob(model, zz[i:i + 4000], **dict(EVAL_SOLVER, **solver))
                        for i in range(0, zz.shape[0], 4000)])
    q = torch.exp(lq).reshape(n_grid, n_grid)
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2), dpi=80)
    for ax, img, t in zip(axes, (target, q), (f"target exp(-{name.upper()})", "learned q")):
        ax.imshow(img.numpy(), origin="lower", extent=[-BOX, BOX, -BOX, BOX], cmap="viridis")
        ax.set_title(t, fontsize=9); ax.set_xticks([]); ax.set_yticks([])
    fig.tight_layout()
    from pathlib import Path
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
