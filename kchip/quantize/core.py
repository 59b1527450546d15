"""Quantization: every parameter of every edge -> an integer code of its cell's code table; the realized (L1)
model; straight-through-estimator (STE) quantization-aware parametrization.

Full scale of an ideal table (`build_tables`): min(cell limit, largest |value| the model needs) for each
(cell kind, parameter) -- the chip's reference current / unit device of each DAC is sized to the model, but never
beyond what the cell can realize. A value beyond the table's ends is clipped (counted, worst error reported), or
refused with `strict=True`. Measured tables passed in `tables=` are used unchanged.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.utils.parametrize as parametrize

from kchip.hw.kinds import CELL_KINDS, PARAM_KINDS, cell_for_law, kind_factor
from kchip.hw.limits import DeviceLimits, load_limits
from kchip.hw.mapping import Scaling
from kchip.model import KirchhoffNet, Period

from .chipspec import ChipSpec, EdgeSpec, NodeSpec, PeriodSpec
from .tables import CodeTable, nearest_torch

DEFAULT_BITS = {"gm": 6, "bias": 6}


def kind_limit(kind: str, lim: DeviceLimits, cell: str = "") -> float:
    """Largest physical |value| cell kind `cell` realizes for a parameter of `kind`."""
    return {"gm": lim.gm_max_s, "slope": lim.slope_max_per_v(cell), "ibias": lim.cell_current_max_a,
            "offset": lim.tanh_offset_max, "vshift": lim.input_swing_v}[kind]


def model_hash(model: KirchhoffNet) -> str:
    """sha256 over laws, lengths, edges and parameters (float64 bytes) of a model."""
    h = hashlib.sha256()
    for p in model.periods:
        h.update(f"{p.law.name}|{p.num_nodes}|{p.t_len!r}|".encode())
        h.update(p.edges.cpu().numpy().astype(np.int64).tobytes())
        h.update(p.param.detach().cpu().double().numpy().tobytes())
    return h.hexdigest()


def build_tables(model: KirchhoffNet, scaling: Scaling, limits: Optional[DeviceLimits] = None,
                 bits: Optional[Mapping[str, int]] = None,
                 tables: Optional[Mapping[str, CodeTable]] = None,
                 respect_limits: bool = True) -> Dict[str, CodeTable]:
    """One table per (cell kind, parameter) the model uses: `tables[key]` when given (measured), else ideal with
    full scale min(cell limit, model's largest value); `respect_limits=False` ignores the cell limit (ideal cells:
    isolates the effect of the code width)."""
    lim = limits if limits is not None else load_limits()
    bits = dict(DEFAULT_BITS, **(bits or {}))
    given = dict(tables or {})
    need: Dict[str, float] = {}
    kinds: Dict[str, str] = {}
    cells: Dict[str, str] = {}
    for k, p in enumerate(model.periods):
        cell = cell_for_law(p.law.name, f"periods[{k}].law")
        for row, pname, kind in cell.params:
            key = f"{cell.name}.{pname}"
            f = kind_factor(kind, scaling.v_u, scaling.i_u)
            need[key] = max(need.get(key, 0.0), float(p.param.detach()[row].abs().max()) * f)
            kinds[key] = kind
            cells[key] = cell.name
    out = {}
    for key, mx in need.items():
        if key in given:
            t = given[key]
            if t.kind != kinds[key]:
                raise ValueError(f"tables[{key!r}].kind: {t.kind!r}, but {key} is a {kinds[key]!r} parameter")
            out[key] = t
            continue
        kind = kinds[key]
        top = kind_limit(kind, lim, cells[key])
        fs = (min(top, mx) if respect_limits else mx) if mx > 0 else top
        out[key] = CodeTable.ideal(kind, int(bits[PARAM_KINDS[kind][1]]), fs, signed=True)
    return out


@dataclass
class QuantResult:
    spec: ChipSpec
    model: KirchhoffNet          # realized (L1) model, built from spec
    report: Dict


def _roles(n_nodes: int, n_inputs: int, outputs: List[int]) -> List[str]:
    roles = []
    for i in range(1, n_nodes + 1):
        inp, out = i <= n_inputs, i in outputs
        roles.append("io" if inp and out else "input" if inp else "output" if out else "hidden")
    return roles


def output_nodes(model: KirchhoffNet) -> List[int]:
    last = model.periods[-1].num_nodes
    if model._proj is None:
        return list(range(1, last + 1))
    kind, n = model._proj
    return list(range(last - n + 1, last + 1)) if kind == "last" else list(range(1, n + 1))


def quantize_model(model: KirchhoffNet, scaling: Scaling, limits: Optional[DeviceLimits] = None,
                   bits: Optional[Mapping[str, int]] = None, tables: Optional[Mapping[str, CodeTable]] = None,
                   strict: bool = False, num_inputs: Optional[int] = None, name: str = "chip",
                   corner: str = "tt", provenance: Optional[Dict] = None,
                   respect_limits: bool = True) -> QuantResult:
    """Codes for every edge parameter, the ChipSpec and the realized model. `num_inputs`: input nodes loaded
    before t = 0 (default: the model's meta["n_in"], else all nodes of the first period); the first period's other
    nodes are reset to V_cm."""
    lim = limits if limits is not None else load_limits()
    bits = dict(DEFAULT_BITS, **(bits or {}))
    tabs = build_tables(model, scaling, lim, bits, tables, respect_limits)
    n_nodes = max(p.num_nodes for p in model.periods)
    if num_inputs is None:
        num_inputs = int(model.meta.get("n_in") or model.periods[0].num_nodes)
    n_in = int(num_inputs)
    outs = output_nodes(model)
    nodes = [NodeSpec(i + 1, r, scaling.c_f) for i, r in enumerate(_roles(n_nodes, n_in, outs))]
    stats = {key: {"count": 0, "clipped": 0, "worst_clip_error_sw": 0.0, "worst_clip_edge": None,
                   "sq_err_sw": 0.0, "max_err_sw": 0.0, "max_abs_sw": 0.0} for key in tabs}
    periods, edges = [], []
    bounds = model.boundaries
    prev_nodes = n_in
    for k, p in enumerate(model.periods):
        cell = cell_for_law(p.law.name, f"periods[{k}].law")
        par = p.param.detach().double().cpu().numpy()
        codes = np.zeros((len(cell.params), p.num_edges), dtype=np.int64)
        vals = np.zeros((len(cell.params), p.num_edges))
        for j, (row, pname, kind) in enumerate(cell.params):
            key = f"{cell.name}.{pname}"
            t = tabs[key]
            f = kind_factor(kind, scaling.v_u, scaling.i_u)
            q = t.quantize(par[row] * f)
            codes[j], vals[j] = q["codes"], q["values"] / f
            err = np.abs(vals[j] - par[row])
            s = stats[key]
            s["count"] += p.num_edges
            s["sq_err_sw"] += float((err ** 2).sum())
            s["max_err_sw"] = max(s["max_err_sw"], float(err.max()))
            s["max_abs_sw"] = max(s["max_abs_sw"], float(np.abs(par[row]).max()))
            if q["clipped"].any():
                ci = np.nonzero(q["clipped"])[0]
                worst = int(ci[np.argmax(err[ci])])
                s["clipped"] += int(ci.size)
                if err[worst] > s["worst_clip_error_sw"]:
                    s["worst_clip_error_sw"] = float(err[worst])
                    s["worst_clip_edge"] = {"period": k, "edge": worst, "value_sw": float(par[row, worst]),
                                            "realized_sw": float(vals[j, worst])}
                if strict:
                    raise ValueError(
                        f"periods[{k}] edge {worst} ({p.src[worst].item()}->{p.dst[worst].item()}) parameter "
                        f"{key}: value {par[row, worst] * f:.4g} {t.unit} is outside the realizable range "
                        f"[{t.vmin:.4g}, {t.vmax:.4g}] {t.unit} ({ci.size} values of {key} in this period out of "
                        f"range; --strict refuses to clip)")
        reset = list(range(prev_nodes + 1, p.num_nodes + 1)) if k == 0 else \
            list(range(model.periods[k - 1].num_nodes + 1, p.num_nodes + 1))
        ids = list(range(len(edges), len(edges) + p.num_edges))
        src, dst = p.src.tolist(), p.dst.tolist()
        for e in range(p.num_edges):
            edges.append(EdgeSpec(ids[e], k, src[e], dst[e], cell.name, [int(c) for c in codes[:, e]],
                                  [float(v) for v in vals[:, e]]))
        periods.append(PeriodSpec(k, float(bounds[k]), float(p.t_len), cell.law, p.num_nodes, ids, reset))
        prev_nodes = p.num_nodes
    report = {"bits": bits, "tables": {}, "clipped_total": 0, "respect_limits": respect_limits}
    for key, s in stats.items():
        t = tabs[key]
        kind = t.kind
        f = kind_factor(kind, scaling.v_u, scaling.i_u)
        vals_sorted = np.sort(np.asarray(t.values))
        report["tables"][key] = {
            "kind": kind, "unit": t.unit, "bits": t.bits, "source": t.source, "full_scale": t.vmax,
            "lsb_min": float(np.diff(vals_sorted).min()) if len(vals_sorted) > 1 else 0.0,
            "full_scale_sw": t.vmax / f, "count": s["count"], "clipped": s["clipped"],
            "worst_clip_error_sw": s["worst_clip_error_sw"], "worst_clip_edge": s["worst_clip_edge"],
            "rms_error_sw": (s["sq_err_sw"] / max(s["count"], 1)) ** 0.5, "max_error_sw": s["max_err_sw"],
            "max_abs_sw": s["max_abs_sw"]}
        report["clipped_total"] += s["clipped"]
    prov = {"source_model_sha256": model.meta.get("model_sha256") or model_hash(model),
            "model_params_sha256": model_hash(model), "bits": bits, "tool": "kchip.quantize",
            "quantization": report}
    prov.update(provenance or {})
    spec = ChipSpec(name, lim.pdk, corner, scaling, nodes, periods, edges, tabs, model.projector,
                    dict(model.solver), prov)
    return QuantResult(spec, realized_model(spec), report)


def realized_model(spec: ChipSpec, dtype=torch.float64) -> KirchhoffNet:
    """The L1 model: a KirchhoffNet whose parameters are the values the codes realize (rows a law stores but
    does not read are 0)."""
    periods = []
    for per in spec.periods:
        cell = CELL_KINDS[spec.edges[per.edges[0]].cell]
        from kchip.model.laws import get_law
        law = get_law(per.law)
        param = torch.zeros(law.rows, len(per.edges), dtype=dtype)
        ed = [spec.edges[i] for i in per.edges]
        vals = torch.tensor([e.values for e in ed], dtype=dtype).T      # (n_params, E)
        for j, (row, _, _) in enumerate(cell.params):
            param[row] = vals[j]
        periods.append(Period([[e.src, e.dst] for e in ed], per.law, per.length, param=param,
                              num_nodes=per.num_nodes, where=f"periods[{per.index}]"))
    return KirchhoffNet(periods, projector=spec.projector, solver=spec.solver or None,
                        meta={"source": "chipspec", "name": spec.name,
                              "model_sha256": spec.provenance.get("source_model_sha256")})


# ---- straight-through estimator ------------------------------------------------------------------------------
class STEQuantizer(nn.Module):
    """Parametrization of a Period's `param`: rows with a code table are replaced by their nearest realizable SW
    value in the forward pass, gradient passed straight through to the latent float parameter."""

    def __init__(self, rows_grids: Dict[int, torch.Tensor]):
        super().__init__()
        self.rows = sorted(rows_grids)
        for r in self.rows:
            self.register_buffer(f"grid{r}", rows_grids[r].clone())

    def forward(self, p):
        q = p.detach().clone()
        for r in self.rows:
            q[r] = nearest_torch(getattr(self, f"grid{r}").to(p.dtype), p[r].detach())
        return p + (q - p).detach()


def attach_ste(model: KirchhoffNet, scaling: Scaling, tables: Mapping[str, CodeTable]) -> KirchhoffNet:
    """Register STE quantization on every period's param (in place); `detach_ste` removes it."""
    for k, p in enumerate(model.periods):
        cell = cell_for_law(p.law.name, f"periods[{k}].law")
        grids = {}
        for row, pname, kind in cell.params:
            vals, _ = tables[f"{cell.name}.{pname}"].grid()
            grids[row] = torch.tensor(vals / kind_factor(kind, scaling.v_u, scaling.i_u), dtype=p.param.dtype)
        parametrize.register_parametrization(p, "param", STEQuantizer(grids))
    return model


def detach_ste(model: KirchhoffNet) -> KirchhoffNet:
    """Remove the STE parametrization, keeping the latent float parameters."""
    for p in model.periods:
        if parametrize.is_parametrized(p, "param"):
            parametrize.remove_parametrizations(p, "param", leave_parametrized=False)
    return model
