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


class XYTask:
    """A regression task on fixed arrays (the flow's data split): L2 loss, mini-batches of `batch`."""

    def __init__(self, x, y, batch: int = 64, solver: Optional[dict] = None):
        self.x = torch.as_tensor(x, dtype=torch.float64)
        self.y = torch.as_tensor(y, dtype=torch.float64)
        self.batch, self.solver = batch, dict(solver or {})

    def batches(self, epoch: int, gen: torch.Generator):
        from kchip.tasks.common import xy_batches
        return xy_batches(self.x, self.y, self.batch, gen)

    def loss(self, model: KirchhoffNet, batch) -> torch.Tensor:
        return ((model(batch[0], **self.solver) - batch[1]) ** 2).mean()


def flow_cell_aware(model: KirchhoffNet, v_u: float, data, cfg: dict, log=None):
    """The flow's `quantize.cell_aware` step: fine-tune `model` onto the relu_diff cell grid of the measured
    tables at `cfg['corner']` (default tt). Returns (tuned model, report)."""
    import time
    from kchip.cells.tables import CodeTable
    from kchip.netlist.transistor import ReluCellModel, cell_table_path, full_gain_unit_current
    unknown = sorted(set(cfg) - {"corner", "epochs", "lr", "batch", "seed", "dv_range_v", "rk4_steps"})
    if unknown:
        raise ValueError(f"flow.yaml: quantize.cell_aware.{unknown[0]}: unknown setting")
    corner = cfg.get("corner", "tt")
    cell = ReluCellModel.from_table(CodeTable.from_json(cell_table_path("relu_diff", corner)))
    # the netlister's rule (`realize`), so that the tuned grid is the one the chip is built on
    i_u = full_gain_unit_current(cell, v_u, max(float(p.param.detach()[1].abs().max()) for p in model.periods))
    dvr = float(cfg.get("dv_range_v", 0.6))
    # training solver: fixed-step rk4, 10 steps per unit of SW time by default (several times faster per epoch
    # than the adaptive default under load); the reported test MSEs use the model's own adaptive solver
    step = 1.0 / int(cfg.get("rk4_steps", 10))
    task = XYTask(data["x_train"], data["y_train"], int(cfg.get("batch", 64)),
                  solver={"method": "rk4", "options": {"step_size": step}})
    test = XYTask(data["x_test"], data["y_test"])
    proj = CellProjector(cell, v_u, i_u, dvr)
    m0 = model.double()
    projected = cell_aware_finetune(m0, cell, v_u, i_u, task, epochs=0, dv_range_v=dvr)
    epochs = int(cfg.get("epochs", 150))
    t0 = time.perf_counter()
    tuned = cell_aware_finetune(m0, cell, v_u, i_u, task, epochs=epochs, lr=float(cfg.get("lr", 1e-3)),
                                seed=int(cfg.get("seed", 0)), dv_range_v=dvr, log=log)
    wall = time.perf_counter() - t0
    with torch.no_grad():
        mse = {k: float(test.loss(m, (test.x, test.y))) for k, m in
               (("float", m0), ("projected", projected), ("tuned", tuned))}
    on_grid = all(torch.equal(p.param.detach(), proj.project(p.param.detach())) for p in tuned.periods)
    return tuned, {"corner": corner, "epochs": epochs, "wall_s": wall, "i_u": i_u, "test_mse": mse,
                   "on_grid": bool(on_grid)}
