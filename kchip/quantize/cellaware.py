"""Cell-aware fine-tuning: train a model so that its parameters are exactly what a transistor cell can realize.

The relu_diff cell (kchip.cells.relu) realizes, per code pair (c, o), relu(G[c] dv + (c/15) B[o]) with G, B
its measured code tables at one corner. In SW units at a fixed scaling (V_u, I_u):

    theta1 = sign * G[c] V_u / I_u,      theta0 = (c/15) B[o] / I_u

so the realizable set is a fixed grid of (theta0, theta1) pairs; it couples the two parameters (the knee
-theta0/theta1 is set by o alone). `CellProjector` maps every edge to the grid pair of least current error
over the input range (the same rule as `kchip.netlist.transistor.realize`), and `cell_aware_finetune` trains
the latent parameters with that projection in the forward pass (straight-through estimator), so the task
loss sees the chip's own parameters. The result's projected parameters are returned as the model to build.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from kchip.model import KirchhoffNet


class CellProjector(torch.nn.Module):
    """Parametrization of a (2, E) relu_diff param tensor (row 0 = theta0, row 1 = theta1): nearest realizable
    pair, gradients straight through."""

    def __init__(self, cell_model, v_u: float, i_u: float, dv_range_v: float, dtype=torch.float64):
        super().__init__()
        gm, ib = cell_model.grid()                                            # (C, O) each, hardware units
        self.register_buffer("g", torch.tensor((gm * v_u / i_u).ravel(), dtype=dtype))   # |theta1|
        self.register_buffer("b", torch.tensor((ib / i_u).ravel(), dtype=dtype))         # theta0
        self.dvr = dv_range_v / v_u                                           # input range in SW units

    def project(self, p: torch.Tensor) -> torch.Tensor:
        t0, t1 = p[0], p[1]
        cost = (self.g[None, :] - t1.abs()[:, None]).abs() * self.dvr + (self.b[None, :] - t0[:, None]).abs()
        k = torch.argmin(cost, dim=1)
        sign = torch.where(t1 >= 0, 1.0, -1.0).to(p.dtype)
        return torch.stack([self.b[k], sign * self.g[k]])

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return p + (self.project(p.detach()) - p).detach()


def cell_aware_finetune(model: KirchhoffNet, cell_model, v_u: float, i_u: float, task, epochs: int,
                        lr: float = 1e-3, seed: int = 0, dv_range_v: float = 0.6,
                        log: Optional[Callable[[str], None]] = None) -> KirchhoffNet:
    """A copy of `model` fine-tuned through the projection; returned with its parameters projected (every edge
    exactly on the cell's grid). Every period must use the relu_diff law."""
    from kchip.model import model_from_dict, model_to_dict
    for k, p in enumerate(model.periods):
        if p.law.name != "relu_diff":
            raise ValueError(f"periods[{k}].law: cell-aware fine-tuning supports relu_diff only, got {p.law.name!r}")
    m = model_from_dict(model_to_dict(model)).to(torch.float64)
    proj = CellProjector(cell_model, v_u, i_u, dv_range_v)
    # straight-through estimator without a parametrization (which would bypass the model's fused kernels):
    # the model's own parameter holds the projected values, its gradient updates the latent copy
    latent = [p.param.detach().clone().requires_grad_(True) for p in m.periods]
    opt = torch.optim.Adam(latent, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        tot, n = 0.0, 0
        for batch in task.batches(ep, gen):
            with torch.no_grad():
                for p, lat in zip(m.periods, latent):
                    p.param.copy_(proj.project(lat))
            m.zero_grad()
            loss = task.loss(m, batch)
            loss.backward()
            for p, lat in zip(m.periods, latent):
                lat.grad = p.param.grad.detach().clone()
            opt.step()
            tot, n = tot + float(loss.detach()), n + 1
        if log:
            log(f"cell-aware epoch {ep + 1}/{epochs}: loss {tot / max(n, 1):.5g}")
    with torch.no_grad():
        for p, lat in zip(m.periods, latent):
            p.param.copy_(proj.project(lat))
    return m
