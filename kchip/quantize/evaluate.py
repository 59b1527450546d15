"""Task metrics, output error, quantization-aware fine-tuning (STE) and Monte Carlo mismatch evaluation.

Tasks (`get_task`):
* twomoon  (CNF, official fixture): metric = test NLL [nats], log p(x) = log N(z; 0, I) - dlogp where z and dlogp
  come from integrating the data backwards to the base, `model(x, reverse=True, logp=0)` (sign checked against a
  closed form in tests/test_quantize_metrics.py). Output error = samples, forward direction (base -> data), on
  fixed base draws. Calibration: base draws (forward) and data (reverse).
* regression:<dataset> (kchip.tasks.regression): metric = test MSE; output error on the test inputs.
Output error: RMS and max |L1 - L0| in SW units and in % of full scale, full scale = the largest peak-to-peak
range of an output of the float model over the evaluation inputs.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Iterator, Optional

import numpy as np
import torch

from kchip.hw.kinds import cell_for_law
from kchip.model import KirchhoffNet, Period
from kchip.tasks.common import xy_batches


def output_error(ref: torch.Tensor, out: torch.Tensor, full_scale: Optional[float] = None) -> Dict[str, float]:
    ref, out = ref.detach().double(), out.detach().double()
    if full_scale is None:
        full_scale = float((ref.max(0).values - ref.min(0).values).max())
    d = (out - ref)
    rms, mx = float(d.pow(2).mean().sqrt()), float(d.abs().max())
    return {"rms": rms, "max": mx, "full_scale": full_scale, "rms_pct_fs": 100 * rms / full_scale,
            "max_pct_fs": 100 * mx / full_scale}


class Task:
    name = "task"
    metric_name = "metric"
    solver: Dict = {}

    def metric(self, model: KirchhoffNet) -> float:
        raise NotImplementedError

    def outputs(self, model: KirchhoffNet) -> torch.Tensor:
        raise NotImplementedError

    def calib(self) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def batches(self, epoch: int, gen: torch.Generator) -> Iterator:
        raise NotImplementedError

    def loss(self, model: KirchhoffNet, batch) -> torch.Tensor:
        raise NotImplementedError

    @property
    def num_inputs(self) -> int:
        return int(self.calib()["forward"].shape[1])


def _log_normal(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z ** 2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def cnf_nll(model: KirchhoffNet, x: torch.Tensor, **solver) -> torch.Tensor:
    """Per-sample negative log-likelihood of data x under a CNF whose forward direction maps base -> data."""
    z, dlogp = model(x, reverse=True, logp=torch.zeros(x.shape[0], dtype=x.dtype), **solver)
    return -(_log_normal(z) - dlogp)


class Twomoon(Task):
    name = "twomoon"
    metric_name = "test NLL [nats]"

    def __init__(self, n_test: int = 1000, n_out: int = 1000, n_train: int = 2048, batch: int = 256,
                 seed: int = 0, solver: Optional[Dict] = None):
        from sklearn.datasets import make_moons
        self.solver = dict(solver or {})
        self.x_test = torch.tensor(make_moons(n_test, noise=0.1, random_state=1000 + seed)[0])
        self.x_train = torch.tensor(make_moons(n_train, noise=0.1, random_state=2000 + seed)[0])
        g = torch.Generator().manual_seed(3000 + seed)
        self.z = torch.randn(n_out, 2, generator=g, dtype=torch.float64)
        self.batch = batch

    def metric(self, model):
        with torch.no_grad():
            return float(cnf_nll(model, self.x_test.to(_dtype(model)), **self.solver).mean())

    def outputs(self, model):
        with torch.no_grad():
            return model(self.z.to(_dtype(model)), **self.solver)

    def calib(self):
        return {"forward": self.z, "reverse": self.x_test}

    def batches(self, epoch, gen):
        perm = torch.randperm(self.x_train.shape[0], generator=gen)
        for i in range(0, len(perm) - self.batch + 1, self.batch):
            yield self.x_train[perm[i:i + self.batch]]

    def loss(self, model, batch):
        return cnf_nll(model, batch.to(_dtype(model)), **self.solver).mean()


class Regression(Task):
    metric_name = "test MSE"

    def __init__(self, dataset: str, batch: int = 64, solver: Optional[Dict] = None):
        from kchip.tasks.regression import load_data
        self.name = f"regression:{dataset}"
        self.solver = dict(solver or {})
        self.xtr, self.ytr, self.xte, self.yte = [t.double() for t in load_data(dataset, 42)]
        self.batch = batch

    def metric(self, model):
        with torch.no_grad():
            return float(((model(self.xte.to(_dtype(model)), **self.solver) - self.yte) ** 2).mean())

    def outputs(self, model):
        with torch.no_grad():
            return model(self.xte.to(_dtype(model)), **self.solver)

    def calib(self):
        return {"forward": self.xtr}

    def batches(self, epoch, gen):
        return xy_batches(self.xtr, self.ytr, self.batch, gen)

    def loss(self, model, batch):
        x, y = batch
        return ((model(x.to(_dtype(model)), **self.solver) - y) ** 2).mean()


def _dtype(model):
    return next(model.parameters()).dtype


def get_task(name: str, model: Optional[KirchhoffNet] = None, **kw) -> Task:
    """'twomoon', 'regression:<dataset>', or 'auto' (from the model's meta: official test_bench or regression
    dataset)."""
    if name == "auto":
        meta = dict(getattr(model, "meta", {}) or {})
        if meta.get("test_bench") == "twomoon":
            name = "twomoon"
        elif meta.get("task") == "regression" and meta.get("dataset"):
            name = f"regression:{meta['dataset']}"
        else:
            raise ValueError("--task: cannot tell the task from the model's metadata; pass --task twomoon or "
                             "--task regression:<dataset>")
    if name == "twomoon":
        return Twomoon(**kw)
    if name.startswith("regression:"):
        return Regression(name.split(":", 1)[1], **kw)
    raise ValueError(f"--task: unknown task {name!r} (twomoon, regression:<dataset>, auto)")


# ---- STE fine-tuning -------------------------------------------------------------------------------------------
class _GmNoise(torch.nn.Module):
    """Parametrization: gm/slope rows x (1 + sigma * eps), eps redrawn by the fine-tuning loop each step."""

    def __init__(self, rows, shape, sigma, dtype):
        super().__init__()
        mask = torch.zeros(shape, dtype=dtype)
        mask[list(rows)] = 1.0
        self.register_buffer("mask", mask)
        self.register_buffer("eps", torch.zeros(shape, dtype=dtype))
        self.sigma = sigma

    def forward(self, p):
        return p * (1 + self.sigma * self.eps * self.mask)


def finetune(model: KirchhoffNet, scaling, tables, task: Task, epochs: int, lr: float = 1e-3, seed: int = 0,
             log: Optional[Callable[[str], None]] = None, mismatch: Optional[tuple] = None) -> KirchhoffNet:
    """Quantization-aware fine-tuning: a copy of `model` is trained with its parameters quantized to `tables` in
    the forward pass (straight-through estimator). Returns the fine-tuned float (latent) model; quantize it with
    the same tables. `mismatch=(sigma_gm, sigma_offset)`: mismatch-aware training, every step sees a fresh Monte
    Carlo draw (gm/slope x (1 + sigma_gm N), edge offsets sigma_offset N in units of I_u) on top of the codes."""
    from .core import attach_ste, detach_ste
    from kchip.model import model_from_dict, model_to_dict
    import torch.nn.utils.parametrize as parametrize
    m = model_from_dict(model_to_dict(model)).to(_dtype(model))     # a fresh copy (deepcopy trips on caches)
    noise = []
    if mismatch:
        sg, so = float(mismatch[0]), float(mismatch[1])
        periods = [OffsetPeriod(p.edges, p.law.name, p.t_len, param=p.param.detach(), num_nodes=p.num_nodes,
                                offset=torch.zeros(p.num_edges, dtype=p.param.dtype)) for p in m.periods]
        m = KirchhoffNet(periods, projector=m.projector, solver=m.solver, meta=m.meta)
    attach_ste(m, scaling, tables)
    if mismatch:
        for p in m.periods:
            rows = [r for r, _, kind in cell_for_law(p.law.name).params if kind in ("gm", "slope")]
            nz = _GmNoise(rows, tuple(p.param.shape), sg, p.param.dtype)
            parametrize.register_parametrization(p, "param", nz)
            noise.append((p, nz))
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    mgen = torch.Generator().manual_seed(seed + 1)
    for ep in range(epochs):
        tot, n = 0.0, 0
        for batch in task.batches(ep, gen):
            for p, nz in noise:
                nz.eps.copy_(torch.randn(nz.eps.shape, generator=mgen, dtype=nz.eps.dtype))
                p.offset.copy_(so * torch.randn(p.offset.shape, generator=mgen, dtype=p.offset.dtype))
            opt.zero_grad()
            loss = task.loss(m, batch)
            loss.backward()
            opt.step()
            tot, n = tot + float(loss.detach()), n + 1
        if log:
            log(f"finetune epoch {ep + 1}/{epochs}: loss {tot / max(n, 1):.5g}")
    detach_ste(m)
    if mismatch:
        m = model_from_dict(model_to_dict(m)).to(_dtype(model))      # plain Periods again
    return m


# ---- Monte Carlo mismatch --------------------------------------------------------------------------------------
class OffsetPeriod(Period):
    """A Period whose edge currents carry an additive per-cell offset current (SW units of I_u)."""

    def __init__(self, *a, offset: torch.Tensor, **kw):
        super().__init__(*a, **kw)
        self.register_buffer("offset", offset.to(self.param.dtype).reshape(-1, 1))

    def currents(self, vs, vd):
        return super().currents(vs, vd) + self.offset

    def forward(self, t, y):
        # always through `currents` (Period's no-grad fast path would skip the offset); KCL by index_add
        self.nfe += 1
        ya = torch.nn.functional.pad(y, (0, 0, 1, 0))
        i = self.currents(ya.index_select(0, self.src), ya.index_select(0, self.dst))
        out = i.new_zeros((self.num_nodes + 1,) + tuple(y.shape[1:]))
        out.index_add_(0, self.dst, i)
        out.index_add_(0, self.src, i, alpha=-1)
        return out[1:]


def mismatch_model(model: KirchhoffNet, sigma_gm: float, sigma_offset: float, gen: torch.Generator) -> KirchhoffNet:
    """One Monte Carlo draw: every gm/slope parameter x (1 + sigma_gm N(0,1)) (per cell and parameter), every
    edge current + sigma_offset N(0,1) (fraction of I_u)."""
    periods = []
    for k, p in enumerate(model.periods):
        par = p.param.detach().clone()
        for row, _, kind in cell_for_law(p.law.name).params:
            if kind in ("gm", "slope"):
                par[row] = par[row] * (1 + sigma_gm * torch.randn(p.num_edges, generator=gen, dtype=par.dtype))
        off = sigma_offset * torch.randn(p.num_edges, generator=gen, dtype=par.dtype)
        periods.append(OffsetPeriod(p.edges, p.law.name, p.t_len, param=par, num_nodes=p.num_nodes,
                                    offset=off, where=f"periods[{k}]"))
    return KirchhoffNet(periods, projector=model.projector, solver=model.solver, meta=dict(model.meta))


def monte_carlo(model: KirchhoffNet, task: Task, draws: int = 50, sigma_gm: float = 0.02,
                sigma_offset: float = 0.01, seed: int = 0, ref_outputs: Optional[torch.Tensor] = None) -> Dict:
    """Task metric (and output error against `ref_outputs`) over `draws` mismatch draws of `model`."""
    gen = torch.Generator().manual_seed(seed)
    vals, rms = [], []
    for _ in range(draws):
        mm = mismatch_model(model, sigma_gm, sigma_offset, gen)
        vals.append(task.metric(mm))
        if ref_outputs is not None:
            rms.append(output_error(ref_outputs, task.outputs(mm))["rms_pct_fs"])
    a = np.asarray(vals)
    out = {"draws": draws, "sigma_gm": sigma_gm, "sigma_offset": sigma_offset, "seed": seed,
           "metric_mean": float(a.mean()), "metric_std": float(a.std(ddof=1)) if draws > 1 else 0.0,
           "metric_min": float(a.min()), "metric_max": float(a.max()), "values": [float(v) for v in a]}
    if rms:
        out["rms_pct_fs_mean"] = float(np.mean(rms))
        out["rms_pct_fs_std"] = float(np.std(rms, ddof=1)) if draws > 1 else 0.0
    return out
