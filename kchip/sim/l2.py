"""L2 device-aware model of a transistor-level chip: every edge's characterized cell surrogate inside the torch
ODE (ARCHITECTURE.md section 4).

    model = surrogate_model(spec, rep)            # rep: the netlister's report (<deck>.cells.json)
    y = model(x)                                  # SW units, like any KirchhoffNet

Each period becomes a `SurrogatePeriod`: its currents(vs, vd) evaluate the cell surrogate of the period's cell
kind with the codes the netlister chose for each edge (rep["edges"]: code, ocode, sign), in SW units through
the chip's scaling (V_u and I_u of the report, the ChipSpec's V_cm). Its `param` holds the per-code realized
values (`cell_level_spec`), which `currents` does not read. The cell kinds are a small registry
(`register_cell`): relu_diff, relu_lin, tanh_lin; another cell plugs in with a loader (corner -> object with
law(i_u, v_u, v_cm) -> fn(codes (rows, E), vs, vd)) and the per-edge code row it reads.

`CodeLaw` is the relu_diff cell's per-code table law, relu(sign G[c] (vs - vd) + (c/15) B[o]), as such a
surrogate: with it the model equals `realized_model(cell_level_spec(spec, rep))` (the older L2, test).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F

from kchip.model.net import KirchhoffNet, Period
from kchip.quantize.chipspec import ChipSpec

__all__ = ["SurrogatePeriod", "surrogate_model", "register_cell", "load_surrogate", "CodeLaw", "chip_code_surfaces",
           "chip_load_switch"]


@dataclass
class CellEntry:
    load: Callable[[str], object]          # corner -> surrogate with .law(i_u, v_u, v_cm)
    codes: Callable[[Dict], List[int]]     # netlister report edge -> the code row the surrogate's law reads


_CELLS: Dict[str, CellEntry] = {}


def register_cell(kind: str, load: Callable[[str], object], codes: Callable[[Dict], List[int]]) -> None:
    _CELLS[kind] = CellEntry(load, codes)


def _load_relu_diff(corner: str):
    from kchip.cells.relu_surrogate import ReluDiffSurrogate
    from kchip.netlist.transistor import cell_table_path
    return ReluDiffSurrogate.from_files(cell_table_path("relu_diff", corner).with_suffix(".npz"))


register_cell("relu_diff", _load_relu_diff, lambda e: [int(e["sign"]) * int(e["code"]), int(e["ocode"])])


def _load_relu_lin(corner: str):
    from kchip.cells.surrogate import ReluLinSurrogate
    from kchip.netlist.transistor import cell_table_path
    return ReluLinSurrogate.from_json(cell_table_path("relu_lin", corner))


register_cell("relu_lin", _load_relu_lin, lambda e: [int(e["cs"]), int(e["cd"]), int(e["ocode"])])


def _load_tanh_lin(corner: str):
    from kchip.cells.tanh_lin_surrogate import TanhLinStructSurrogate
    from kchip.netlist.transistor import cell_table_path
    return TanhLinStructSurrogate.from_files(cell_table_path("tanh_lin", corner).with_suffix(".npz"))


register_cell("tanh_lin", _load_tanh_lin, lambda e: [int(e["cs"]), int(e["cd"]), int(e["ocode"])])


def load_surrogate(kind: str, corner: str):
    if kind not in _CELLS:
        raise ValueError(f"L2: no surrogate registered for cell kind {kind!r} (have {', '.join(sorted(_CELLS))})")
    return _CELLS[kind].load(corner)


class SurrogatePeriod(Period):
    """A Period whose edge currents come from a cell surrogate's SW law with fixed per-edge integer codes.
    `both`: fn returns (i_d, i_s), the current put into d and the one taken from s (they differ by the cell's
    supply-side currents); forward then applies each at its own node. currents() (and with it
    rhs_and_divergence) is i_d. `on` (E,) 0/1: edges the netlister did not instantiate (code 0) carry no current,
    whatever the surrogate gives at their codes (e.g. relu_lin's knee current I_q at zero codes)."""

    def __init__(self, base: Period, fn: Callable, codes: torch.Tensor, where: str = "period", both: bool = False,
                 on: Optional[torch.Tensor] = None, lag: float = 0.0):
        super().__init__(base.edges, base.law.name, base.t_len, param=base.param.detach(),
                         num_nodes=base.num_nodes, where=where)
        self.fn, self.both, self.lag = fn, both, float(lag)
        self.register_buffer("codes", torch.as_tensor(codes, dtype=torch.long))
        self.register_buffer("on", torch.ones(base.num_edges, dtype=torch.float64) if on is None
                             else torch.as_tensor(on, dtype=torch.float64))

    def set_load_switch(self, y_grid: torch.Tensor, eps: torch.Tensor) -> None:
        """The load phase (`start`): a node held at y by its load / reset gate sits at y + eps(y) f(y), eps = the
        gate's R_on(v) C / tau (SW time) on the increasing node-value grid y_grid, linear in between."""
        self.register_buffer("load_y", torch.as_tensor(y_grid, dtype=torch.float64))
        self.register_buffer("load_eps", torch.as_tensor(eps, dtype=torch.float64))

    def start(self, y: torch.Tensor) -> torch.Tensor:
        if getattr(self, "load_y", None) is None:
            return y
        from kchip.cells.tanh_lin_surrogate import _pwl
        eps = _pwl(self.load_eps.to(y.dtype), self.load_y.to(y.dtype), y)
        return y + eps * self._rhs(0.0, y)                                  # cells at DC: no lag

    def _mask(self, i: torch.Tensor) -> torch.Tensor:
        on = self.on.to(i.dtype)
        return i * (on[:, None] if i.dim() == 2 else on)

    def currents(self, vs: torch.Tensor, vd: torch.Tensor) -> torch.Tensor:
        i = self.fn(self.codes, vs, vd)
        return self._mask((i[0] if self.both else i).to(vs.dtype))

    def pair(self, vs: torch.Tensor, vd: torch.Tensor):
        """(i_d, i_s) of a `both` surrogate, edges not instantiated masked."""
        return tuple(self._mask(i) for i in self.fn(self.codes, vs, vd))

    def forward(self, t, y: torch.Tensor) -> torch.Tensor:
        if self.lag:
            # the cells answer lag (SW time) late: i(v(t - lag)) ~ i(v - lag dv/dt), first order in the lag
            return self._rhs(t, y - self.lag * self._rhs(t, y))
        return self._rhs(t, y)

    def _rhs(self, t, y: torch.Tensor) -> torch.Tensor:
        if not self.both:
            return super().forward(t, y)
        self.nfe += 1
        ya = F.pad(y, (0, 0, 1, 0))
        i_d, i_s = self.pair(ya.index_select(0, self.src), ya.index_select(0, self.dst))
        # kcl(i_d): +i_d at d, -i_d at s; the s side takes i_s, so add (i_d - i_s) back at s
        s_rows = F.one_hot(self.src, self.num_nodes + 1)[:, 1:].T.to(y.dtype)      # (N, E), ground dropped
        return self.kcl(i_d.to(y.dtype)) + s_rows @ (i_d - i_s).to(y.dtype)


def surrogate_model(spec: ChipSpec, rep: Mapping, corner: Optional[str] = None,
                    surrogates: Optional[Mapping[str, object]] = None, dtype=torch.float64,
                    s_side: Optional[bool] = None, lag: Optional[bool] = None,
                    code_surfaces: Optional[Mapping[str, object]] = None,
                    load_switch: Optional[tuple] = None,
                    mismatch: Optional[Mapping[int, tuple]] = None) -> KirchhoffNet:
    """The L2 model of the transistor-level chip built from `spec` with the netlister's report `rep`: cell
    surrogates of `corner` (default: the report's) inside the ODE. `surrogates` {cell kind: surrogate}
    overrides the registry (e.g. `CodeLaw` for the check against the per-code model).
    s_side: where a surrogate gives only the current into d, the current taken from s is that plus the cell's
    characterized mean i_s - i_d surface (`s_side_delta`; tanh_lin: +0.26 % of I_T on average at tt).
    lag: every cell answers its inputs late by the PDK's `limits.cell_lag_s` of its kind (over rep tau_s).
    Both measured on the twomoon chip (docs/results.md, session 7): chip - L2 1.81 % FS RMS plain, 0.73 % with both.
    None (default): on for the cell kinds in the PDK's `limits.l2_dynamic` (sky130: tanh_lin), off for the others
    (relu_diff: its lag is a knee-crossing lag, a delay of its law made L2 worse); True / False: for every kind.
    code_surfaces: {cell kind: `kchip.cells.code_surfaces.CodeSurfaces`} measured on the chip's own code triples:
    every edge of such a kind gets its triple's measured residual (measured i_d - the surrogate's, bilinear on the
    table grid) added, and with s_side its triple's own i_s - i_d instead of the mean surface.
    load_switch: (node voltages V, R_on Ohm) of the chip's load / reset gate (`kchip.cells.switch_char`): a forward
    run starts from the loaded state shifted by R_on(v) C / tau times the first period's currents (its cells are
    on during the load phase, `SurrogatePeriod.start`).
    mismatch: {period index: (gain (E,), offset_s (E,), offset_d (E,))}: one Monte Carlo draw of the cells'
    mismatch (`kchip.sim.sweep.mismatch_draw`): each edge's current is gain x the surrogate's at its inputs
    shifted by the offsets (SW units)."""
    from kchip.hw.limits import load_limits
    from kchip.netlist.transistor import SUPPORTED_LAWS, cell_level_spec
    from kchip.quantize.core import realized_model
    corner = corner or rep.get("corner") or spec.corner
    base = realized_model(cell_level_spec(spec, rep), dtype=dtype)
    by_id = {e["id"]: e for e in rep["edges"]}
    i_u, v_u, v_cm = float(rep["i_u"]), float(rep["v_u"]), float(spec.scaling.v_cm)
    cache: Dict[str, object] = dict(surrogates or {})
    deltas: Dict[str, tuple] = {}                   # s_side: one table read per cell kind
    lim = load_limits()
    dynamic = lambda kind, flag: (kind in lim.l2_dynamic) if flag is None else bool(flag)
    if load_switch is not None:                     # (node value grid SW, R_on C / tau in SW time)
        v, r_on = (np.asarray(a, np.float64) for a in load_switch)
        load_sw = ((v - v_cm) / v_u, r_on * float(rep["c_f"]) / float(rep["tau_s"]))
    periods = []
    for per, bp in zip(spec.periods, base.periods):
        kind = SUPPORTED_LAWS.get(per.law, per.law)
        if kind not in cache:
            cache[kind] = load_surrogate(kind, corner)
        entry = _CELLS.get(kind)
        to_codes = entry.codes if entry else (lambda e: [int(e["sign"]) * int(e["code"]), int(e["ocode"])])
        rows = [to_codes(by_id[i]) for i in per.edges]
        codes = torch.tensor(rows, dtype=torch.long).T
        on = [bool(by_id[i]["code"]) for i in per.edges]
        sur = cache[kind]
        both = "both" in inspect.signature(sur.law).parameters
        fn = sur.law(i_u, v_u, v_cm, both=True) if both else sur.law(i_u, v_u, v_cm)
        if code_surfaces and kind in code_surfaces:
            if both:
                raise ValueError(f"L2 code surfaces: the {kind} surrogate gives its own s-side current; "
                                 f"code surfaces refine i_d-only surrogates")
            fn = _with_code_surfaces(fn, code_surfaces[kind], sur, rows, on, i_u, v_u, v_cm, dynamic(kind, s_side),
                                     where=f"periods[{per.index}]")
            both = dynamic(kind, s_side)
        elif dynamic(kind, s_side) and not both:
            if kind not in deltas:
                deltas[kind] = s_side_delta(kind, corner)
            fn, both = _with_s_side(fn, deltas[kind], i_u, v_u, v_cm), True
        if mismatch and per.index in mismatch:
            fn = _with_mismatch(fn, *mismatch[per.index], both)
        lag_sw = _lag_sw(kind, lim.cell_lag_s, rep["tau_s"]) if dynamic(kind, lag) else 0.0
        periods.append(SurrogatePeriod(bp, fn, codes, where=f"periods[{per.index}]", both=both,
                                       on=torch.tensor(on, dtype=torch.float64), lag=lag_sw))
        if load_switch is not None:
            periods[-1].set_load_switch(*load_sw)
    return KirchhoffNet(periods, projector=base.projector, solver=base.solver,
                        meta=dict(base.meta, level="L2", corner=corner,
                                  s_side="pdk" if s_side is None else bool(s_side),
                                  lag="pdk" if lag is None else bool(lag), lag_sw=[p.lag for p in periods],
                                  cells={k: type(v).__name__ for k, v in cache.items()},
                                  code_surfaces=sorted(code_surfaces or {}), load_switch=load_switch is not None))


def _with_mismatch(fn: Callable, gain, off_s, off_d, both: bool) -> Callable:
    g, a, b = (torch.as_tensor(np.asarray(v), dtype=torch.float64) for v in (gain, off_s, off_d))

    def drawn(codes, vs, vd):
        shape = (-1,) + (1,) * (vs.dim() - 1)          # per edge, broadcast over the batch
        out = fn(codes, vs + a.to(vs.dtype).reshape(shape), vd + b.to(vd.dtype).reshape(shape))
        k = g.to(vs.dtype).reshape(shape)
        return (out[0] * k, out[1] * k) if both else out * k
    return drawn


def chip_code_surfaces(spec: ChipSpec, rep: Mapping, kinds=None, corner: Optional[str] = None, jobs: int = 2,
                       log: Optional[Callable[[str], None]] = None,
                       grid_points: Optional[int] = None) -> Dict[str, object]:
    """{cell kind: CodeSurfaces} of the code triples the chip's instantiated cells use, for the kinds `kinds`
    (default: the PDK's `limits.l2_code_surfaces`) that the chip has; measured with ngspice, cached per triple
    (`kchip.cells.code_surfaces`); grid_points: points per input of their grid (default the characterization
    grid's)."""
    from kchip.cells.code_surfaces import measure_code_surfaces
    from kchip.hw.limits import load_limits
    from kchip.netlist.transistor import SUPPORTED_LAWS
    kinds = set(load_limits().l2_code_surfaces if kinds is None else kinds)
    by_id = {e["id"]: e for e in rep["edges"]}
    triples: Dict[str, set] = {}
    for per in spec.periods:
        kind = SUPPORTED_LAWS.get(per.law, per.law)
        if kind in kinds:
            rows = (_CELLS[kind].codes(by_id[i]) for i in per.edges if by_id[i]["code"])
            triples.setdefault(kind, set()).update(tuple(r) for r in rows)
    corner = corner or rep.get("corner") or spec.corner
    return {k: measure_code_surfaces(k, corner, sorted(t), jobs=jobs, log=log, grid_points=grid_points)
            for k, t in sorted(triples.items())}


def chip_load_switch(spec: ChipSpec, rep: Mapping, corner: Optional[str] = None):
    """(node voltages, R_on Ohm) of the transistor chip's load / reset gate at its corner (`kchip.cells.switch_char`;
    the gate width from the netlister's report, or its sizing rule for reports written before it recorded it)."""
    from kchip.cells.switch_char import tgate_r_on_curve
    from kchip.netlist.transistor import load_switch_size
    w, l_ = load_switch_size(spec, rep)
    return tgate_r_on_curve(corner or rep.get("corner") or spec.corner, w, l_)


def s_side_delta(kind: str, corner: str):
    """(vs grid, vd grid, mean over the characterized combos of i_s - i_d (vd, vs) in A) of a cell kind's table."""
    from kchip.cells.tables import CellTable
    from kchip.netlist.transistor import cell_table_path
    t = CellTable.load(cell_table_path(kind, corner).with_suffix(".npz"))
    return (torch.as_tensor(np.asarray(t.vs, np.float64)), torch.as_tensor(np.asarray(t.vd, np.float64)),
            torch.as_tensor(np.mean(np.asarray(t.i_s) - np.asarray(t.i_d), axis=0)))


def _bilinear(tab: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """tab (len(gy), len(gx)) at (x, y), bilinear, border values held outside the grids."""
    return _edge_bilinear(tab[None], gx, gy, x, y)


def _with_s_side(fn: Callable, delta, i_u: float, v_u: float, v_cm: float) -> Callable:
    gx, gy, tab = delta

    def both(codes, vs, vd):
        i = fn(codes, vs, vd)
        d = _bilinear(tab.to(i.dtype), gx.to(i.dtype), gy.to(i.dtype), v_cm + v_u * vs, v_cm + v_u * vd) / i_u
        return i, i + d
    return both


def _edge_bilinear(tab: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """Per-edge tables tab (E, len(gy), len(gx)) (or one table, E = 1) at (x, y) of shape (E,) or (E, B), bilinear,
    border values held outside the grids."""
    def cell(g, v):
        k = torch.searchsorted(g, v.detach().contiguous()).clamp(1, g.numel() - 1)
        return k, ((v - g[k - 1]) / (g[k] - g[k - 1])).clamp(0.0, 1.0)
    kx, tx = cell(gx, x)
    ky, ty = cell(gy, y)
    if tab.shape[0] == 1:                           # one table for every edge
        e = torch.zeros_like(kx)
    else:
        e = torch.arange(tab.shape[0], device=x.device).reshape(-1, *([1] * (x.dim() - 1))).expand_as(kx)
    a, b = tab[e, ky - 1, kx - 1], tab[e, ky - 1, kx]
    c, d = tab[e, ky, kx - 1], tab[e, ky, kx]
    return (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty


def _with_code_surfaces(fn: Callable, cs, sur, rows, on, i_u: float, v_u: float, v_cm: float, s_side: bool,
                        where: str) -> Callable:
    """fn (SW law of an i_d-only surrogate) + each edge's measured residual of its code triple (module `kchip.cells.
    code_surfaces`); with s_side, (i_d, i_s) with the triple's own measured i_s - i_d."""
    gx, gy = (torch.as_tensor(np.asarray(g, np.float64)) for g in (cs.vs, cs.vd))
    VD, VS = torch.meshgrid(gy, gx, indexing="ij")
    zero = (torch.zeros_like(VS), torch.zeros_like(VS))
    tabs: Dict[tuple, tuple] = {}                       # code triple -> (i_d residual, i_s - i_d), A
    for k, (row, is_on) in enumerate(zip(rows, on)):
        t = tuple(int(c) for c in row)
        if not is_on or t in tabs:                      # not instantiated: masked anyway
            continue
        if t not in cs:
            raise ValueError(f"L2 code surfaces: {where}, edge {k}: code triple {t} of {cs.cell} was not "
                             f"measured at {cs.corner}")
        j = cs.index(t)
        with torch.no_grad():
            model = sur.current_hw(*[torch.tensor(c) for c in t], VS, VD)
        tabs[t] = (torch.as_tensor(np.asarray(cs.i_d[j], np.float64)) - model,
                   torch.as_tensor(np.asarray(cs.i_s[j] - cs.i_d[j], np.float64)))
    per_edge = [tabs[tuple(int(c) for c in row)] if is_on else zero for row, is_on in zip(rows, on)]
    res, ds = (torch.stack([p[m] for p in per_edge]) / i_u for m in (0, 1))

    def law(codes, vs, vd):
        x, y = v_cm + v_u * vs, v_cm + v_u * vd
        i = fn(codes, vs, vd)
        i = i + _edge_bilinear(res.to(i.dtype), gx.to(i.dtype), gy.to(i.dtype), x, y)
        if not s_side:
            return i
        return i, i + _edge_bilinear(ds.to(i.dtype), gx.to(i.dtype), gy.to(i.dtype), x, y)
    return law


def _lag_sw(kind: str, lags: Mapping[str, float], tau_s: float) -> float:
    """The PDK lag of a cell kind in SW time units of a chip with time constant tau_s."""
    lag_s = lags.get(kind)
    if not lag_s:
        raise ValueError(f"L2 lag: no limits.cell_lag_s for cell kind {kind!r} in the PDK")
    return float(lag_s) / float(tau_s)


class CodeLaw:
    """The relu_diff per-code table law as a surrogate: i = relu(sign G[c] (vs - vd) + (c/15) B[o]) (A), from
    the cell's code table (`kchip.netlist.transistor.ReluCellModel`)."""

    def __init__(self, model):
        self.gain = torch.as_tensor(np.asarray(model.gain, np.float64))
        self.bias = torch.as_tensor(np.asarray(model.bias, np.float64))
        self.full = float(model.full)

    def current_hw(self, code, ocode, vs, vd):
        code, ocode = torch.as_tensor(code).long(), torch.as_tensor(ocode).long()
        g = torch.sign(code).to(vs.dtype) * self.gain.to(vs.dtype)[code.abs()]
        return torch.relu(g * (vs - vd) + code.abs().to(vs.dtype) / self.full * self.bias.to(vs.dtype)[ocode])

    def law(self, i_u: float, v_u: float, v_cm: float):
        def fn(codes, vs, vd):
            c = torch.as_tensor(codes).long()
            code, ocode = (c[k][:, None] if vs.dim() == 2 else c[k] for k in range(2))
            return self.current_hw(code, ocode, v_cm + v_u * vs, v_cm + v_u * vd) / i_u
        return fn
