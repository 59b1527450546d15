"""Cell-aware fine-tuning for the three-parameter tanh cell (tanh_lin, paper Eq. 13 / the official ShiftTanh2):
distillation through the cell's own L2 surrogate.

The tanh_lin cell realizes, per code triple (cs, cd, o), I_T tanh(slope_s[cs] x + slope_d[cd] y + offset[o]) only
approximately (its front end, docs/cells.md), and its grid is coarse: 31 slopes per input and 16 offsets, the offset
step ~0.3 where a trained model's theta3 mostly lies within +-0.3. Rounding each edge to its nearest codes put the
twomoon chip's L2 14.7 % FS RMS away from the float model (docs/results.md). Here every edge keeps a latent
(theta1, theta2, theta3); the forward pass uses the codes nearest the latent values (`LinGridProjector`, the rule
of `kchip.netlist.lincell.realize_lin`) and the cell's *surrogate* current at those codes, so the loss sees what the
chip computes; the gradient reaches the latent values straight through (the ideal law's partials at the realized
theta). The loss is the float model's own output on the same inputs (distillation): the function the chip must
keep, with no data set needed (a CNF such as twomoon has none), the inputs drawn like the forward stage's.

    tuned, rep = lin_cell_aware_finetune(model, v_u, v_cm, sample, steps=400)

`tuned` is the model with every edge's parameters on the cell grid (SW units; an edge whose codes are all zero -
the netlister instantiates no cell for it - gets theta = 0), ready for `quantize_model`; its realized codes are
the ones `realize_lin` will choose.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from kchip.model import KirchhoffNet
from kchip.sim.l2 import SurrogatePeriod

__all__ = ["LinGridProjector", "lin_cell_aware_finetune", "LIN_TANH_LAWS"]

LIN_TANH_LAWS = ("tanh_lin", "ShiftTanh2")


class LinGridProjector:
    """The tanh_lin code grid in SW units at V_u: theta1 = slope_s[cs] V_u, theta2 = slope_d[cd] V_u,
    theta3 = offset[o] (the tanh argument needs no current unit: I_u = I_T)."""

    def __init__(self, cell, v_u: float, dtype=torch.float64):
        if cell.family != "tanh":
            raise ValueError(f"{cell.cell}: lin cell-aware fine-tuning supports the tanh_lin cell only")
        self.cell, self.full, self.o_zero = cell, cell.full, cell.o_zero
        self.tabs = [torch.as_tensor(np.asarray(t, np.float64) * s, dtype=dtype)
                     for t, s in ((cell.g_s, v_u), (cell.g_d, v_u), (cell.bias, 1.0))]

    def project(self, theta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """theta (3, E) -> codes (3, E) long (rows cs, cd signed; o), realized theta (3, E), on (E,) 0/1."""
        with torch.no_grad():
            k = [torch.argmin((t[None, :] - theta[r][:, None]).abs(), 1) for r, t in enumerate(self.tabs)]
            q = torch.stack([t[i] for t, i in zip(self.tabs, k)]).to(theta.dtype)
            on = ~((k[0] == self.full) & (k[1] == self.full) & (k[2] == self.o_zero))
            return torch.stack([k[0] - self.full, k[1] - self.full, k[2]]), q, on.to(theta.dtype)


class _CellAwarePeriod(SurrogatePeriod):
    """A period whose currents are the cell surrogate at the codes nearest its latent parameters (value) with the
    ideal law's partials with respect to those parameters (gradient, straight through)."""

    def __init__(self, base, fn: Callable, proj: LinGridProjector, where: str, both: bool = False,
                 lag: float = 0.0):
        codes, _, on = proj.project(base.param.detach())
        super().__init__(base, fn, codes, where=where, on=on, both=both, lag=lag)
        self.proj = proj
        self.latent = torch.nn.Parameter(base.param.detach().clone().to(torch.float64))
        self.q = torch.zeros_like(self.latent)
        self.refresh()

    def refresh(self) -> None:
        codes, self.q, on = self.proj.project(self.latent.detach())
        self.codes.copy_(codes)
        self.on.copy_(on)

    def _straight(self, vs: torch.Tensor, vd: torch.Tensor) -> torch.Tensor:
        """Zero in value; the ideal law's partials at the realized theta with respect to the latent one."""
        theta = self.q + self.latent - self.latent.detach()
        ideal = self.law(theta.unsqueeze(-1), vs.detach(), vd.detach())      # gradient path to the latent only
        return ideal - ideal.detach()

    def currents(self, vs: torch.Tensor, vd: torch.Tensor) -> torch.Tensor:
        return self._mask(self.fn(self.codes, vs, vd).to(vs.dtype)) + self._straight(vs, vd)

    def pair(self, vs: torch.Tensor, vd: torch.Tensor):
        g = self._straight(vs, vd)
        return tuple(i + g for i in super().pair(vs, vd))


def lin_cell_aware_finetune(model: KirchhoffNet, v_u: float, v_cm: float, sample: Callable, steps: int,
                            cell=None, surrogate=None, corner: str = "tt", lr: float = 3e-3, batch: int = 128,
                            seed: int = 0, rk4_steps: int = 20, x_eval: Optional[torch.Tensor] = None,
                            dynamic_tau_s: Optional[float] = None, val: int = 256, val_every: int = 25,
                            init: Optional[KirchhoffNet] = None,
                            log: Optional[Callable[[str], None]] = None) -> Tuple[KirchhoffNet, Dict]:
    """Fine-tune a tanh_lin-law model onto the tanh_lin cell of `corner` (module docstring). sample(gen, n) ->
    (n, inputs) training inputs; x_eval (optional) inputs on which the L2 - L0 error is reported before and after,
    in % of the float model's output range there. The learning rate decays to zero (cosine) and the parameters
    of the least distillation loss on `val` inputs drawn apart (checked every `val_every` steps) are returned.
    dynamic_tau_s: train through the dynamic L2 of a chip with this
    tau (`kchip.sim.l2.surrogate_model(s_side=True, lag=True)`: the cells' characterized s-side current and
    their PDK lag over tau), the model that followed the twomoon chip to 0.73 % FS. Returns (tuned model on the
    grid, report). init: start from this model's parameters (e.g. a first, plain run) instead of `model`'s; the
    distillation target stays `model`."""
    from kchip.cells.tables import CodeTable
    from kchip.model import model_from_dict, model_to_dict
    from kchip.netlist.lincell import LinCellModel
    from kchip.netlist.transistor import cell_table_path
    from kchip.sim.l2 import load_surrogate
    for k, p in enumerate(model.periods):
        if p.law.name not in LIN_TANH_LAWS:
            raise ValueError(f"periods[{k}].law: lin cell-aware fine-tuning supports {', '.join(LIN_TANH_LAWS)}, "
                             f"got {p.law.name!r}")
    if steps < 0:
        raise ValueError(f"quantize.cell_aware.steps: must be >= 0, got {steps}")
    cell = cell or LinCellModel.from_table(CodeTable.from_json(cell_table_path("tanh_lin", corner)))
    surrogate = surrogate or load_surrogate("tanh_lin", corner)
    proj = LinGridProjector(cell, v_u)
    fn = surrogate.law(cell.amp, v_u, v_cm)
    both, lag = False, 0.0
    if dynamic_tau_s is not None:
        from kchip.hw.limits import load_limits
        from kchip.sim.l2 import _lag_sw, _with_s_side, s_side_delta
        fn, both = _with_s_side(fn, s_side_delta("tanh_lin", corner), cell.amp, v_u, v_cm), True
        lag = _lag_sw("tanh_lin", load_limits().cell_lag_s, dynamic_tau_s)
    ref = model_from_dict(model_to_dict(model)).to(torch.float64)
    start = ref if init is None else model_from_dict(model_to_dict(init)).to(torch.float64)
    if len(start.periods) != len(ref.periods) or any(a.param.shape != b.param.shape
                                                     for a, b in zip(start.periods, ref.periods)):
        raise ValueError("lin cell-aware fine-tuning: init has other periods or edge counts than the model")
    pers = [_CellAwarePeriod(p, fn, proj, where=f"periods[{k}]", both=both, lag=lag)
            for k, p in enumerate(start.periods)]
    chip = KirchhoffNet(pers, projector=ref.projector, solver=ref.solver, meta={})
    rk4 = {"method": "rk4", "options": {"step_size": 1.0 / int(rk4_steps)}}
    gap = lambda: _gap(chip, ref, pers, x_eval)
    rep = {"corner": corner, "steps": int(steps), "lr": lr, "batch": int(batch), "seed": int(seed),
           "rk4_steps": int(rk4_steps), "dynamic": dynamic_tau_s is not None, "lag_sw": lag,
           "L2_vs_L0_before": gap()}
    opt = torch.optim.Adam([p.latent for p in pers], lr=lr)
    # cosine decay to zero: with a constant rate the codes keep flipping (the L2 - L0 of twomoon swung 3-6 %
    # between checkpoints); the latent values of the best validation loss are kept
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * min(s / max(steps, 1), 1))))
    gen = torch.Generator().manual_seed(int(seed))
    x_val = torch.as_tensor(sample(torch.Generator().manual_seed(int(seed) + 7919), int(val)), dtype=torch.float64)
    with torch.no_grad():
        y_val = ref(x_val, **rk4)
    best = (_val_loss(chip, pers, x_val, y_val, rk4), [p.latent.detach().clone() for p in pers], 0)
    t0, losses = time.perf_counter(), []
    for s in range(int(steps)):
        x = torch.as_tensor(sample(gen, int(batch)), dtype=torch.float64)
        with torch.no_grad():
            target = ref(x, **rk4)
        for p in pers:
            p.refresh()
        loss = ((chip(x, **rk4) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if (s + 1) % val_every == 0 or s + 1 == steps:
            v = _val_loss(chip, pers, x_val, y_val, rk4)
            if v < best[0]:
                best = (v, [p.latent.detach().clone() for p in pers], s + 1)
            if log:
                log(f"cell-aware (tanh_lin) step {s + 1}/{steps}: distillation loss {np.mean(losses[-25:]):.4g}, "
                    f"validation {v:.4g} (best {best[0]:.4g} at step {best[2]}; {time.perf_counter() - t0:.0f} s)")
    with torch.no_grad():
        for p, lat in zip(pers, best[1]):
            p.latent.copy_(lat)
    rep["wall_s"] = time.perf_counter() - t0
    rep["best_step"], rep["val_loss_best"] = best[2], best[0]
    rep["L2_vs_L0_after"] = gap()
    rep["loss_first_last"] = [losses[0], float(np.mean(losses[-25:]))] if losses else []
    tuned = model_from_dict(model_to_dict(ref))
    with torch.no_grad():
        for tp, p in zip(tuned.periods, pers):
            p.refresh()
            tp.param.copy_((p.q * p.on).to(tp.param.dtype))        # uninstantiated edges carry no current
    rep["edges_on"] = int(sum(float(p.on.sum()) for p in pers))
    rep["edges"] = int(sum(p.num_edges for p in pers))
    return tuned, rep


def _val_loss(chip: KirchhoffNet, pers, x: torch.Tensor, y: torch.Tensor, solver: Dict) -> float:
    for p in pers:
        p.refresh()
    with torch.no_grad():
        return float(((chip(x, **solver) - y) ** 2).mean())


def _gap(chip: KirchhoffNet, ref: KirchhoffNet, pers, x: Optional[torch.Tensor]) -> Optional[Dict]:
    """RMS and max of L2 (the surrogate at the current codes) - L0 on x, in % of L0's output range there."""
    if x is None:
        return None
    for p in pers:
        p.refresh()
    from kchip.sim.simulate import compare
    tight = dict(rtol=1e-9, atol=1e-11)
    with torch.no_grad():
        x = torch.as_tensor(x, dtype=torch.float64)
        c = compare(chip(x, **tight).numpy(), ref(x, **tight).numpy())
    return {k: c[k] for k in ("rms_pct_fs", "max_pct_fs", "full_scale")}


def flow_lin_cell_aware(model: KirchhoffNet, scaling, data, x_eval, cfg: Dict,
                        log: Optional[Callable[[str], None]] = None) -> Tuple[KirchhoffNet, Dict]:
    """The flow's `quantize.cell_aware` step for a tanh_lin-law model. Training inputs: rows of the data split's
    x_train when the flow has one, else standard normal samples times `input_scale` (the forward stage's
    distribution, default 1.0). x_eval: the forward stage's inputs, on which L2 - L0 is reported.
    `dynamic: true` trains through the dynamic L2 at the chip's tau (scaling.tau_s)."""
    known = ("corner", "steps", "lr", "batch", "seed", "rk4_steps", "input_scale", "dynamic", "dynamic_steps",
             "dynamic_lr")
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise ValueError(f"flow.yaml: quantize.cell_aware.{unknown[0]}: unknown setting for a tanh_lin model "
                         f"({', '.join(known)})")
    n_in = model.num_inputs
    if data is not None:
        pool = torch.as_tensor(np.asarray(data["x_train"]), dtype=torch.float64)
        sample = lambda gen, n: pool[torch.randint(0, len(pool), (n,), generator=gen)]
    else:
        scale = float(cfg.get("input_scale", 1.0))
        sample = lambda gen, n: torch.randn(n, n_in, generator=gen, dtype=torch.float64) * scale
    common = dict(corner=cfg.get("corner", "tt"), batch=int(cfg.get("batch", 128)), seed=int(cfg.get("seed", 0)),
                  rk4_steps=int(cfg.get("rk4_steps", 20)), log=log,
                  x_eval=None if x_eval is None else torch.as_tensor(np.asarray(x_eval), dtype=torch.float64))
    tuned, rep = lin_cell_aware_finetune(
        model, scaling.v_u, scaling.v_cm, sample, steps=int(cfg.get("steps", 400)), lr=float(cfg.get("lr", 3e-3)),
        dynamic_tau_s=scaling.tau_s if bool(cfg.get("dynamic", False)) else None, **common)
    if int(cfg.get("dynamic_steps", 0)) > 0:
        # second phase: refine through the dynamic L2 (~2.5x the cost per step) from the first phase's grid
        tuned, rep2 = lin_cell_aware_finetune(
            model, scaling.v_u, scaling.v_cm, sample, steps=int(cfg["dynamic_steps"]), init=tuned,
            lr=float(cfg.get("dynamic_lr", 1e-3)), dynamic_tau_s=scaling.tau_s, **common)
        rep = dict(rep2, first_phase=rep)
    rep["cell"] = "tanh_lin"
    # the mapping slowed the chip for the float model's slopes (node-speed rule); the tuned ones may sum higher
    from kchip.hw.limits import load_limits
    from kchip.hw.mapping import tau_for_node_speed
    rep["tau_needed_s"], rep["tau_s"] = tau_for_node_speed(tuned, load_limits()), scaling.tau_s
    if rep["tau_needed_s"] > scaling.tau_s * (1 + 1e-9):
        rep["warning"] = (f"quantize.cell_aware: the tuned model's fastest node needs tau >= "
                          f"{rep['tau_needed_s']:.3g} s (node-speed rule), the chip has {scaling.tau_s:.3g} s: "
                          f"raise the latency target")
        if log:
            log(rep["warning"])
    return tuned, rep
