"""The software KirchhoffNet: a stack of periods (layers in time), each an RC circuit with its own topology.

Physics (SW units, C = 1): for every edge s -> d carrying i = g(v_s, v_d, theta), KCL gives
    dv_s/dt -= i,  dv_d/dt += i,   ground (node 0) fixed at 0.
A period integrates this ODE over its length T; nodes that a period adds start at 0 ('fill: zeros'), nodes it
drops are discarded (official semantics). Reverse direction = the periods in reverse order, each integrated
backwards in time (sampling of a generative model).

The KCL right-hand side works on the state transposed to (nodes, batch): a gather of edge endpoints is then
`index_select` of contiguous rows, and the KCL sum is one sparse (CSR) product with the signed node-edge
incidence matrix (+1 at the destination, -1 at the source, ground row dropped), which reduces each node's
edges in one pass instead of two scattered adds. Everything is vectorized over edges and batch (no Python loop
over edges); benchmarks/forward.py measures it against the official gather/scatter_add formulation.
"""
from __future__ import annotations

import math
import re
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .laws import Law, get_law

DEFAULT_SOLVER = {"method": "dopri5", "rtol": 1e-6, "atol": 1e-7}


def solver_methods() -> List[str]:
    """The torchdiffeq methods a model's solver may name (not scipy_solver: it needs options kchip does not
    pass)."""
    from torchdiffeq._impl.odeint import SOLVERS
    return [m for m in SOLVERS if m != "scipy_solver"]


class Period(nn.Module):
    """One time period: edges (src, dst), node count (ground excluded), law, per-edge parameters, length."""

    def __init__(self, edges, law: str, t_len: float, param: Optional[torch.Tensor] = None,
                 num_nodes: Optional[int] = None, where: str = "period"):
        super().__init__()
        edges = torch.as_tensor(np.asarray(edges), dtype=torch.long)
        if edges.ndim != 2 or edges.shape[1] < 2 or edges.shape[0] == 0:
            raise ValueError(f"{where}.edges: expected a non-empty (E, 2) table, got shape {tuple(edges.shape)}")
        edges = edges[:, :2].contiguous()
        if int(edges.min()) < 0:
            bad = int(torch.nonzero(edges.min(dim=1).values < 0)[0])
            raise ValueError(f"{where}.edges[{bad}]: negative node index {edges[bad].tolist()}")
        max_idx = int(edges.max())
        if num_nodes is None:
            num_nodes = max_idx
        if num_nodes < 1:
            raise ValueError(f"{where}.num_nodes: must be >= 1, got {num_nodes}")
        if max_idx > num_nodes:
            bad = int(torch.nonzero(edges.max(dim=1).values > num_nodes)[0])
            raise ValueError(f"{where}.edges[{bad}]: node index {edges[bad].tolist()} is past the node count "
                             f"{num_nodes} (nodes are 1..{num_nodes}, 0 is ground)")
        self.law: Law = get_law(law, f"{where}.law")
        if not (isinstance(t_len, (int, float)) and math.isfinite(t_len) and t_len > 0):
            raise ValueError(f"{where}.t_len: period length must be a finite number > 0, got {t_len!r}")
        self.t_len = float(t_len)
        self.num_nodes = int(num_nodes)
        num_edges = edges.shape[0]
        if param is None:
            param = torch.empty(self.law.rows, num_edges)
            nn.init.kaiming_normal_(param)
        param = torch.as_tensor(param)
        if tuple(param.shape) != (self.law.rows, num_edges):
            raise ValueError(f"{where}.param: shape {tuple(param.shape)} does not match law {self.law.name!r} "
                             f"with {num_edges} edges: expected ({self.law.rows}, {num_edges})")
        if not torch.isfinite(param).all():
            bad = torch.nonzero(~torch.isfinite(param))[0].tolist()
            raise ValueError(f"{where}.param[{bad[0]}, {bad[1]}]: parameter is {param[bad[0], bad[1]].item()} "
                             f"(NaN/inf parameters are refused)")
        self.param = nn.Parameter(param.detach().clone().float() if not param.is_floating_point()
                                  else param.detach().clone())
        self.register_buffer("src", edges[:, 0].contiguous())
        self.register_buffer("dst", edges[:, 1].contiguous())
        self.nfe = 0
        self._incidence_cache: Dict[Tuple, torch.Tensor] = {}
        self._edge_bufs, self._buffers_key = None, None

    @property
    def num_edges(self) -> int:
        return int(self.src.shape[0])

    @property
    def edges(self) -> torch.Tensor:
        return torch.stack([self.src, self.dst], dim=1)

    def currents(self, vs: torch.Tensor, vd: torch.Tensor) -> torch.Tensor:
        """Edge currents for edge-major voltages vs, vd of shape (E, B)."""
        return self.law(self.param.unsqueeze(-1), vs, vd)

    def incidence(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Signed incidence matrix (N, E) in CSR: +1 at (dst, e), -1 at (src, e); ground (node 0) rows dropped,
        self-loops cancel to 0. Cached per dtype/device (rebuilt if the edge buffers move)."""
        key = (dtype, device, self.src.data_ptr())
        mat = self._incidence_cache.get(key)
        if mat is None:
            # rows: +1 entries at dst, -1 at src; built straight in CSR (sorted by row then edge, int32 indices)
            e = torch.arange(self.num_edges, dtype=torch.int32)
            rows = torch.cat([self.dst, self.src]).cpu()
            cols = torch.cat([e, e])
            vals = torch.ones(2 * self.num_edges, dtype=dtype)
            vals[self.num_edges:] = -1
            loop = (self.src == self.dst).cpu()
            keep = (rows != 0) & ~torch.cat([loop, loop])          # self-loops cancel: drop both entries
            rows, cols, vals = rows[keep], cols[keep], vals[keep]
            order = torch.argsort(rows * self.num_edges + cols)    # by row, then column
            crow = torch.zeros(self.num_nodes + 1, dtype=torch.int64)
            crow[1:] = torch.cumsum(torch.bincount(rows - 1, minlength=self.num_nodes), 0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")      # CSR is 'beta' in torch; the product used here is stable
                mat = torch.sparse_csr_tensor(crow.to(torch.int32), cols[order], vals[order],
                                              (self.num_nodes, self.num_edges), check_invariants=True).to(device)
            self._incidence_cache = {key: mat}
        return mat

    def kcl(self, currents: torch.Tensor) -> torch.Tensor:
        """Node current sums (N, B) from edge currents (E, B): -i at src, +i at dst, ground dropped."""
        return self.incidence(currents.dtype, currents.device) @ currents

    def forward(self, t, y: torch.Tensor) -> torch.Tensor:  # y: (N, B) node-major
        self.nfe += 1
        ya = F.pad(y, (0, 0, 1, 0))
        fast = type(self).currents is Period.currents      # a subclass's own currents() always runs
        if not fast or (torch.is_grad_enabled() and (y.requires_grad or self.param.requires_grad)):
            i = self.currents(ya.index_select(0, self.src), ya.index_select(0, self.dst))
        else:
            # inference: gather into reused edge-sized buffers and evaluate the law in place
            vs, vd = self._edge_buffers(ya)
            torch.index_select(ya, 0, self.src, out=vs)
            torch.index_select(ya, 0, self.dst, out=vd)
            i = self.law.inplace(self.param.detach().unsqueeze(-1), vs, vd)
        return self.kcl(i)

    def _edge_buffers(self, ya: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        shape = (self.num_edges,) + tuple(ya.shape[1:])
        key = (shape, ya.dtype, ya.device)
        if self._buffers_key != key:
            self._edge_bufs = (torch.empty(shape, dtype=ya.dtype, device=ya.device),
                               torch.empty(shape, dtype=ya.dtype, device=ya.device))
            self._buffers_key = key
        return self._edge_bufs

    def start(self, y: torch.Tensor) -> torch.Tensor:
        """The state (N, B) this period starts from when it is the first one a forward run executes; the
        ideal circuit starts from its loaded inputs (a device model may differ: `kchip.sim.l2`)."""
        return y

    def release_buffers(self) -> None:
        """Free the inference scratch buffers (2 x edges x batch values)."""
        self._edge_bufs, self._buffers_key = None, None

    def rhs_and_divergence(self, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """dv/dt (N, B) and the trace of d(dv/dt)/dv per batch column (B,), exact: each edge current depends
        only on its own two node voltages, so trace = sum over edges of (-di/dvs [s != 0] + di/dvd [d != 0]),
        self-loops 0. The law's closed-form partials share its evaluation (no double backward); a subclass with
        its own currents() is differentiated by autograd instead."""
        self.nfe += 1
        ya = F.pad(y, (0, 0, 1, 0))
        vs = ya.index_select(0, self.src)
        vd = ya.index_select(0, self.dst)
        if type(self).currents is Period.currents:
            i, gs, gd = self.law.with_partials(self.param.unsqueeze(-1), vs, vd)
        else:
            with torch.enable_grad():
                vs_ = vs if vs.requires_grad else vs.detach().requires_grad_(True)
                vd_ = vd if vd.requires_grad else vd.detach().requires_grad_(True)
                i = self.currents(vs_, vd_)
                gs, gd = torch.autograd.grad(i.sum(), (vs_, vd_), create_graph=torch.is_grad_enabled())
        keep = (self.src != self.dst)
        ws = ((self.src != 0) & keep).to(y.dtype).unsqueeze(-1)
        wd = ((self.dst != 0) & keep).to(y.dtype).unsqueeze(-1)
        return self.kcl(i), (-gs * ws + gd * wd).sum(0)

    def divergence(self, y: torch.Tensor) -> torch.Tensor:
        """Trace of the Jacobian of dv/dt at y (N, B), per batch column."""
        return self.rhs_and_divergence(y)[1]


class _Augmented(nn.Module):
    """ODE of (state, log-density) for continuous normalizing flows: d logp/dt = -trace(J)."""

    def __init__(self, period: Period):
        super().__init__()
        self.period = period

    def forward(self, t, states):
        dv, div = self.period.rhs_and_divergence(states[0])
        return dv, -div.unsqueeze(0)


def _parse_projector(projector: Optional[str]):
    if projector in (None, "none"):
        return None
    m = re.fullmatch(r"(last|first)(\d+)", str(projector))
    if not m:
        raise ValueError(f"projector: unsupported projector {projector!r} (use lastN, firstN or none)")
    return m.group(1), int(m.group(2))


class KirchhoffNet(nn.Module):
    """A KirchhoffNet of D periods. Inputs are node voltages at t = 0 (shape (B, n_in), n_in <= nodes of the
    first period, missing nodes start at 0); outputs are node voltages at the end (after the projector)."""

    def __init__(self, periods: Sequence[Period], projector: Optional[str] = None, fill: str = "zeros",
                 solver: Optional[Dict] = None, meta: Optional[Dict] = None):
        super().__init__()
        if len(periods) == 0:
            raise ValueError("periods: a KirchhoffNet needs at least one period")
        if fill not in ("zeros", "zero"):
            raise ValueError(f"fill: only 'zeros' is supported (new nodes start at 0), got {fill!r}")
        self.periods = nn.ModuleList(periods)
        self.projector = projector if projector not in ("none",) else None
        self._proj = _parse_projector(projector)
        if self._proj and self._proj[1] > periods[-1].num_nodes:
            raise ValueError(f"projector: {projector!r} reads more nodes than the last period has "
                             f"({periods[-1].num_nodes})")
        self.fill = "zeros"
        self.solver = dict(DEFAULT_SOLVER, **(solver or {}))
        self.meta = dict(meta or {})

    # -- structure ------------------------------------------------------------------------------------------
    @property
    def num_inputs(self) -> int:
        return self.periods[0].num_nodes

    @property
    def boundaries(self) -> List[float]:
        t = [0.0]
        for p in self.periods:
            t.append(t[-1] + p.t_len)
        return t

    def num_params(self) -> int:
        return sum(p.param.numel() for p in self.periods)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        if self._proj is None:
            return x
        kind, n = self._proj
        return x[..., -n:] if kind == "last" else x[..., :n]

    @staticmethod
    def _resize(y: torch.Tensor, n: int) -> torch.Tensor:
        """Node-major state (N, B) -> (n, B): new nodes start at 0, surplus nodes are dropped."""
        if y.shape[0] < n:
            return F.pad(y, (0, 0, 0, n - y.shape[0]))
        return y[:n]

    def _odeint(self, func, y0, t, adjoint: bool, solver: Dict):
        import torchdiffeq
        kw = dict(method=solver["method"], rtol=solver["rtol"], atol=solver["atol"])
        if solver.get("options"):
            kw["options"] = dict(solver["options"])
        try:
            if adjoint:
                return torchdiffeq.odeint_adjoint(func, y0, t, adjoint_params=tuple(func.parameters()), **kw)
            return torchdiffeq.odeint(func, y0, t, **kw)
        except AssertionError as exc:       # torchdiffeq's "underflow in dt": the state diverged or is too stiff
            from ..errors import RunError
            raise RunError(f"ODE solver ({solver['method']}, rtol {solver['rtol']:g}): {exc}: the circuit's state "
                           f"diverged or is too stiff for the method (inputs or parameters too large?)") from None

    def order(self, reverse: bool) -> List[int]:
        idx = list(range(len(self.periods)))
        return idx[::-1] if reverse else idx

    def forward(self, x: torch.Tensor, reverse: bool = False, return_trajectory: bool = False,
                t_points: int = 2, adjoint: bool = False, project: bool = True, logp: Optional[torch.Tensor] = None,
                **solver_overrides):
        """Run the circuit. `reverse` integrates the periods in reverse order, backwards in time.

        return_trajectory: also return a list, per period in execution order, of (t, v) with t global time
        (shape (t_points,)) and v of shape (t_points, B, N_period).
        logp: if given (shape (B,)), also integrate d logp/dt = -trace(J) (continuous normalizing flow) and
        return (out, logp_end[, trajectory]).
        """
        if x.ndim != 2:
            raise ValueError(f"input: expected shape (batch, nodes), got {tuple(x.shape)}")
        first = self.periods[self.order(reverse)[0]]
        if x.shape[1] > first.num_nodes:
            raise ValueError(f"input: {x.shape[1]} values per sample but the first period has only "
                             f"{first.num_nodes} nodes")
        solver = dict(self.solver, **solver_overrides)
        x = x.to(self.periods[0].param.dtype)
        y = x.transpose(0, 1)
        traj = []
        bounds = self.boundaries
        for j, k in enumerate(self.order(reverse)):
            per = self.periods[k]
            y = self._resize(y, per.num_nodes)
            if j == 0 and not reverse:
                y = per.start(y)
            n_t = max(2, t_points if return_trajectory else 2)
            t = torch.linspace(0.0, per.t_len, n_t, dtype=x.dtype, device=x.device)
            if reverse:
                t = t.flip(0)
            if logp is None:
                ys = self._odeint(per, y, t, adjoint, solver)
            else:
                ys, lps = self._odeint(_Augmented(per), (y, logp.reshape(1, -1)), t, adjoint, solver)
                logp = lps[-1].reshape(-1)
            per.release_buffers()
            y = ys[-1]
            if return_trajectory:
                traj.append((t + bounds[k], ys.transpose(1, 2)))
        out = y.transpose(0, 1)
        if project:
            out = self.project(out)
        res = (out,) if logp is None else (out, logp)
        if return_trajectory:
            res = res + (traj,)
        return res[0] if len(res) == 1 else res
