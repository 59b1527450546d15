"""Hardware mapping: choose the physical scaling of a KirchhoffNet (ARCHITECTURE §3).

    v_hw = V_cm + V_u * v,   i_hw = I_u * i,   node capacitor C,   t_hw = tau * t,   tau = C * V_u / I_u.

`map_model(model, calib_inputs, pdk_limits, target)`:
1. runs the float model over a calibration set in every direction used (forward = inference / sampling, reverse =
   density evaluation of a flow) and records the node-voltage range of all nodes at all times (21 points per
   period) and the largest edge current;
2. V_u: the largest value that keeps every node inside the cells' usable input swing with the stated margin,
   V_u = input_swing / (max|v| (1 + margin)) -- a larger V_u buys signal-to-offset/noise ratio; the lower bound
   from the tanh cells, |theta_slope| <= slope_max_per_V * V_u, is checked, and when it cannot be met together with
   the swing the swing wins (signals must not leave the cells' range) and the report says how many slopes will be
   clipped and what swing or slope would be needed;
3. I_u: upper bounds from the largest cell current (peak edge current and bias currents), the largest
   transconductance, lower bound from the smallest unit current; then the target picks I_u and C:
   latency (s, whole inference) -> tau = latency / T_total, C = C_min, I_u = C V_u / tau (C grows if I_u would be
   below its minimum); power (W) -> I_u = P / (VDD * edges enabled at once), C = C_min; area (um^2 of capacitor
   per node) -> C from the area, I_u at its largest;
4. node speed: every period's fastest node time constant, tau / (sum of its edges' slopes), must be at least
   `node_tau_over_lag_min` lags of the period's cell (`cell_lag_s`, from the characterized bandwidths): where the
   target's tau is shorter the chip is slowed down to that tau (smaller I_u, then larger C) and the report says
   what the latency became; target `node_speed: warn` keeps the target's tau and only warns.
Every choice, bound and the range it came from is in `Scaling.report`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional

import torch
import torch.nn.functional as F

from .kinds import cell_for_law, kind_factor
from .limits import DeviceLimits, load_limits

DEFAULT_TARGET = {"kind": "latency", "value": 1e-6}


@dataclass
class Scaling:
    """Physical scaling of a chip. All SI units; `period_s` are the period lengths in seconds."""
    v_cm: float
    v_u: float
    i_u: float
    c_f: float
    tau_s: float
    period_s: List[float]
    report: Dict = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return float(sum(self.period_s))

    def to_dict(self) -> Dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "scaling") -> "Scaling":
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(d).__name__}")
        need = ("v_cm", "v_u", "i_u", "c_f", "tau_s", "period_s")
        for k in need:
            if k not in d:
                raise ValueError(f"{where}.{k}: missing required field")
        extra = set(d) - set(need) - {"report"}
        if extra:
            raise ValueError(f"{where}.{sorted(extra)[0]}: unknown field")
        for k in ("v_cm", "v_u", "i_u", "c_f", "tau_s"):
            v = d[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{where}.{k}: expected a finite number, got {v!r}")
            if k != "v_cm" and v <= 0:
                raise ValueError(f"{where}.{k}: must be > 0, got {v!r}")
        if not isinstance(d["period_s"], list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0
                for x in d["period_s"]):
            raise ValueError(f"{where}.period_s: expected a list of positive numbers, got {d['period_s']!r}")
        if not isinstance(d.get("report", {}), Mapping):
            raise ValueError(f"{where}.report: expected an object, got {type(d['report']).__name__}")
        tau = d["c_f"] * d["v_u"] / d["i_u"]
        if abs(tau - d["tau_s"]) > 1e-6 * tau:
            raise ValueError(f"{where}.tau_s: {d['tau_s']!r} != c_f * v_u / i_u = {tau!r}")
        return cls(float(d["v_cm"]), float(d["v_u"]), float(d["i_u"]), float(d["c_f"]), float(d["tau_s"]),
                   [float(x) for x in d["period_s"]], dict(d.get("report", {})))


def _directions(calib) -> Dict[str, torch.Tensor]:
    if isinstance(calib, Mapping):
        out = {}
        for k, v in calib.items():
            if k not in ("forward", "reverse"):
                raise ValueError(f"calib_inputs: direction {k!r} unknown (use 'forward' and/or 'reverse')")
            out[k] = torch.as_tensor(v)
        if not out:
            raise ValueError("calib_inputs: no direction given")
        return out
    return {"forward": torch.as_tensor(calib)}


@torch.no_grad()
def calibration_ranges(model, calib_inputs, t_points: int = 21) -> Dict:
    """Node-voltage range (all nodes, all times, every direction given) and peak edge current, SW units."""
    out = {}
    dtype = next(model.parameters()).dtype
    for direction, x in _directions(calib_inputs).items():
        x = x.to(dtype)
        _, traj = model(x, reverse=(direction == "reverse"), return_trajectory=True, t_points=t_points)
        order = model.order(direction == "reverse")
        vmin, vmax, imax, per = math.inf, -math.inf, 0.0, []
        for k, (_, v) in zip(order, traj):
            p = model.periods[k]
            vmin, vmax = min(vmin, float(v.min())), max(vmax, float(v.max()))
            ya = F.pad(v, (1, 0))                              # (T, B, N+1), ground at 0
            i_max = 0.0
            for vt in ya:                                      # time slices: (B, N+1)
                vt = vt.transpose(0, 1)
                i = p.currents(vt.index_select(0, p.src), vt.index_select(0, p.dst))
                i_max = max(i_max, float(i.abs().max()))
            imax = max(imax, i_max)
            per.append({"period": k, "v_min": float(v.min()), "v_max": float(v.max()), "i_edge_abs_max": i_max})
        out[direction] = {"samples": int(x.shape[0]), "v_min": vmin, "v_max": vmax,
                          "v_abs_max": max(abs(vmin), abs(vmax)), "i_edge_abs_max": imax, "periods": per}
    return out


def _param_maxima(model, by_key: bool) -> Dict[str, float]:
    mx: Dict[str, float] = {}
    for k, p in enumerate(model.periods):
        cell = cell_for_law(p.law.name, f"periods[{k}].law")
        for row, pname, kind in cell.params:
            key = f"{cell.name}.{pname}" if by_key else kind
            mx[key] = max(mx.get(key, 0.0), float(p.param.detach()[row].abs().max()))
    return mx


def param_maxima(model) -> Dict[str, float]:
    """Largest |theta| per parameter kind over all edges of all periods (rows the laws read)."""
    return _param_maxima(model, by_key=False)


def param_maxima_by_key(model) -> Dict[str, float]:
    """Largest |theta| per "<cell>.<param>" over all periods."""
    return _param_maxima(model, by_key=True)


def _slope_bound(model, lim: DeviceLimits, v_u: float, vu_swing: float, v_abs: float, margin: float,
                 rep: Dict) -> None:
    """Check |theta_slope| <= slope_max(cell) * V_u for every tanh cell kind of the model (a pair: kappa/2U_T;
    tanh_lin: its input-gain bound); report the V_u lower bound and, when the swing wins, what clips."""
    n_over, worst = 0, None            # worst: (V_u it needs, its |theta|, the bound, the cell kind)
    for p in model.periods:
        cell = cell_for_law(p.law.name)
        smax = lim.slope_max_per_v(cell.name)
        for row, _, kind in cell.params:
            if kind != "slope":
                continue
            th = p.param.detach()[row].abs()
            n_over += int((th > smax * v_u).sum())
            if worst is None or float(th.max()) / smax > worst[0]:
                worst = (float(th.max()) / smax, float(th.max()), smax, cell.name)
    need = worst[0]
    ok = need <= vu_swing * (1 + 1e-12)
    rep["v_u"].update({"slope_lower_bound": need, "slope_bound_met": ok,
                       "slope_max_needed_per_v": worst[1] / v_u, "slope_bound_cell": worst[3]})
    if not ok:
        rep["v_u"]["slopes_over_bound"] = n_over
        _, th, smax, name = worst
        rep["warnings"].append(
            f"tanh slopes: max |theta| = {th:.4g} needs {th / v_u:.3g} /V at V_u = {v_u * 1e3:.3g} mV but the "
            f"{name} cell gives at most {smax:.3g} /V; {n_over} slope parameters will be clipped. Needed: input "
            f"swing +-{need * v_abs * (1 + margin):.3g} V (have +-{lim.input_swing_v:.3g} V) or |theta_slope| * "
            f"max|v| <= {smax * lim.input_swing_v / (1 + margin):.3g} (have {th * v_abs:.3g}).")


def _slope_sums(model, lim: DeviceLimits) -> List[Dict]:
    """Per period: the node with the largest sum over its edges of |d i / d v_node| in SW units (the gm / slope
    parameters: a one-slope cell acts on both its nodes, a two-slope cell with its first on s and its second on
    d) and the lag of the period's cell (lim.cell_lag_s, None if unknown)."""
    out = []
    for p in model.periods:
        cell = cell_for_law(p.law.name)
        rows = [row for row, _, kind in cell.params if kind in ("gm", "slope")]
        th = p.param.detach().abs().double()
        g = torch.zeros(p.num_nodes + 1, dtype=torch.float64)
        src_row, dst_row = (rows[0], rows[0]) if len(rows) == 1 else (rows[0], rows[1])
        g.index_add_(0, p.src.long(), th[src_row])
        g.index_add_(0, p.dst.long(), th[dst_row])
        g[0] = 0.0                                   # node 0: the fixed reference
        out.append({"period": len(out), "cell": cell.name, "node": int(g.argmax()), "sum_slopes_sw": float(g.max()),
                    "cell_lag_s": lim.cell_lag_s.get(cell.name)})
    return out


def _tau_needed(sums: List[Dict], lim: DeviceLimits) -> float:
    """The smallest tau that gives every period of `sums` (`_slope_sums`) lim.node_tau_over_lag_min lags."""
    return max([lim.node_tau_over_lag_min * e["cell_lag_s"] * e["sum_slopes_sw"] for e in sums if e["cell_lag_s"]]
               or [0.0])


def tau_for_node_speed(model, lim: DeviceLimits) -> float:
    """The smallest tau at which every period's fastest node time constant (tau / its slope sum) is at least
    lim.node_tau_over_lag_min lags of the period's cell (0 where no lag is known)."""
    return _tau_needed(_slope_sums(model, lim), lim)


def _node_speed(sums: List[Dict], lim: DeviceLimits, tau: float, t_total: float, rep: Dict) -> None:
    """The fastest node time constant of each period against the lag of its cells: tau / G, G = the node's slope
    sum (`sums`, from `_slope_sums`). A cell that lags its inputs by more than a fraction of that time constant
    leaves the node's feedback loop behind the ODE (and past ~1/4 of it, ringing). rep["node_speed"]; a warning
    below lim.node_tau_over_lag_min lags (left only where the scaling could not be slowed: see `_slow_down`)."""
    out, worst = [], None
    for ent in (dict(e) for e in sums):
        lag, gmax = ent["cell_lag_s"], ent["sum_slopes_sw"]
        tau_node = tau / gmax if gmax > 0 else float("inf")
        ent.update(tau_node_min_s=tau_node, lags=(tau_node / lag) if lag else None)
        out.append(ent)
        if lag and (worst is None or ent["lags"] < worst["lags"]):
            worst = ent
    rep["node_speed"] = dict(rep.get("node_speed", {}), periods=out, min_lags=lim.node_tau_over_lag_min)
    if worst is not None and worst["lags"] < lim.node_tau_over_lag_min * (1 - 1e-9):
        need = _tau_needed([worst], lim)
        rep["warnings"].append(
            f"node speed: period {worst['period']} node {worst['node']} has a time constant of "
            f"{worst['tau_node_min_s']:.3g} s (tau {tau:.3g} s / sum of its edges' slopes {worst['sum_slopes_sw']:.3g}), "
            f"only {worst['lags']:.2g} lags of the {worst['cell']} cell ({worst['cell_lag_s']:.3g} s); the chip will "
            f"not follow the ODE there. Needed: tau >= {need:.3g} s (latency target >= {need * t_total:.3g} s: "
            f"a larger C or a smaller I_u)")


def _slow_down(c: float, i_u: float, v_u: float, need: float, lim: DeviceLimits, i_u_fixed: bool,
               t_total: float, rep: Dict) -> "tuple[float, float]":
    """Node-speed rule (target node_speed = "enforce"): when tau = C V_u / I_u is below `need`
    (`tau_for_node_speed`), slow the chip down to it - a smaller I_u first (down to its minimum; not when the
    measured tables fixed it), then a larger C (up to C_max) - and say what that does to the latency."""
    tau = c * v_u / i_u
    if tau >= need * (1 - 1e-12):
        return c, i_u
    if not i_u_fixed:
        i_u = max(lim.cell_current_min_a, c * v_u / need)
    c = min(lim.c_max_f, max(c, need * i_u / v_u))
    tau2 = c * v_u / i_u
    rep["node_speed"] = {"rule": "enforce", "tau_needed_s": need, "tau_before_s": tau, "tau_after_s": tau2}
    rep["warnings"].append(
        f"node speed: tau raised from {tau:.3g} s to {tau2:.3g} s (latency {tau * t_total:.3g} -> "
        f"{tau2 * t_total:.3g} s) so that every node time constant is >= {lim.node_tau_over_lag_min:g} cell lags"
        + ("" if tau2 >= need * (1 - 1e-9) else f"; C capped at {lim.c_max_f:.3g} F: still short of {need:.3g} s")
        + " (target node_speed: warn keeps the target's tau)")
    return c, i_u


def map_model(model, calib_inputs, pdk_limits: Optional[DeviceLimits] = None,
              target: Optional[Mapping] = None, margin: Optional[float] = None,
              tables: Optional[Mapping] = None) -> Scaling:
    """Choose V_cm, V_u, I_u, C, tau for `model` (see module doc). `calib_inputs`: inputs of the forward direction,
    or {"forward": x, "reverse": x'} for every direction the chip runs. `target`: {"kind": "latency" | "power" |
    "area", "value": seconds | watts | um^2 of capacitor per node, "node_speed": "enforce" (default) | "warn"}. `tables`: measured code tables
    ("<cell>.<param>" -> CodeTable): their gm / bias-current full scales then fix I_u (the largest model value lands
    on the table's smaller end of range, so nothing clips) and the target only sets C."""
    lim = pdk_limits if pdk_limits is not None else load_limits()
    target = dict(DEFAULT_TARGET if target is None else target)
    if target.get("kind") not in ("latency", "power", "area"):
        raise ValueError(f"target.kind: {target.get('kind')!r} unknown (latency, power or area)")
    value = float(target.get("value", 0))
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"target.value: must be a positive number, got {target.get('value')!r}")
    node_speed = target.get("node_speed", "enforce")
    if node_speed not in ("enforce", "warn"):
        raise ValueError(f"target.node_speed: {node_speed!r} is not 'enforce' or 'warn'")
    margin = lim.margin if margin is None else float(margin)
    rng = calibration_ranges(model, calib_inputs)
    v_abs = max(r["v_abs_max"] for r in rng.values())
    i_edge = max(r["i_edge_abs_max"] for r in rng.values())
    pmax = param_maxima(model)
    rep: Dict = {"limits": lim.to_dict(), "target": target, "margin": margin, "calibration": rng,
                 "param_abs_max_sw": pmax, "warnings": []}

    # ---- V_u -------------------------------------------------------------------------------------------
    if v_abs <= 0:
        raise ValueError("calib_inputs: the model's node voltages are all 0 over the calibration set")
    vu_swing = lim.input_swing_v / (v_abs * (1.0 + margin))
    v_u = vu_swing
    rep["v_u"] = {"chosen": v_u, "rule": "input_swing_v / (max|v| * (1 + margin))",
                  "v_abs_max_sw": v_abs, "node_swing_v": v_abs * v_u}
    if "slope" in pmax and pmax["slope"] > 0:
        _slope_bound(model, lim, v_u, vu_swing, v_abs, margin, rep)
    if "vshift" in pmax and pmax["vshift"] * v_u > lim.input_swing_v:
        rep["warnings"].append(f"knee shifts: max {pmax['vshift'] * v_u:.3g} V exceeds the input swing")

    # ---- I_u bounds --------------------------------------------------------------------------------------
    bounds = {"peak edge current": lim.cell_current_max_a / max(i_edge, 1.0)}
    if pmax.get("gm", 0) > 0:
        bounds["largest transconductance"] = lim.gm_max_s * v_u / pmax["gm"]
    if pmax.get("ibias", 0) > 0:
        bounds["largest bias current"] = lim.cell_current_max_a / pmax["ibias"]
    i_u_max = min(bounds.values())
    i_u_min = lim.cell_current_min_a
    rep["i_u"] = {"upper_bounds": bounds, "i_u_max": i_u_max, "i_u_min": i_u_min, "i_edge_abs_max_sw": i_edge}
    if i_u_max < i_u_min:
        rep["warnings"].append(f"I_u: upper bound {i_u_max:.3g} A is below the smallest unit current "
                               f"{i_u_min:.3g} A; using the upper bound")
        i_u_min = i_u_max

    t_total = float(sum(p.t_len for p in model.periods))
    e_max = max(p.num_edges for p in model.periods)
    kind = target["kind"]
    c = lim.c_min_f
    if kind == "latency":
        tau = value / t_total
        i_u = c * v_u / tau
        if i_u > i_u_max:
            rep["warnings"].append(f"latency target {value:.3g} s needs I_u = {i_u:.3g} A > {i_u_max:.3g} A; "
                                   f"using I_u max, latency = {t_total * c * v_u / i_u_max:.3g} s")
            i_u = i_u_max
        elif i_u < i_u_min:
            i_u = i_u_min
            c = min(lim.c_max_f, i_u * tau / v_u)
            if c >= lim.c_max_f:
                rep["warnings"].append(f"latency target {value:.3g} s: C capped at {lim.c_max_f:.3g} F")
        rule = "tau = latency / T_total; C = C_min, I_u = C V_u / tau (C raised if I_u < I_min)"
    elif kind == "power":
        i_u = min(i_u_max, max(i_u_min, value / (lim.vdd * e_max)))
        rule = "I_u = P / (VDD * edges enabled at once), C = C_min"
    else:
        c = min(lim.c_max_f, max(lim.c_min_f, value * lim.c_area_f_per_um2))
        i_u = i_u_max
        rule = "C = capacitor area * density (clamped to [C_min, C_max]); I_u at its upper bound"
    if tables:
        by_key = param_maxima_by_key(model)
        tb = {}
        for key, t in tables.items():
            mx = by_key.get(key, 0.0)
            fs = min(abs(t.vmin), abs(t.vmax)) if t.vmin < 0 < t.vmax else max(abs(t.vmin), abs(t.vmax))
            if mx > 0 and fs > 0 and t.kind in ("gm", "ibias"):
                tb[key] = fs * v_u / mx if t.kind == "gm" else fs / mx
        if tb:
            i_u_tab = min(tb.values())
            rep["i_u"]["measured_table_bounds"] = tb
            if kind == "latency":
                c = min(lim.c_max_f, max(lim.c_min_f, i_u_tab * (value / t_total) / v_u))
            rule += f"; I_u set by the measured tables ({min(tb, key=tb.get)})"
            if not i_u_min <= i_u_tab <= i_u_max:
                rep["warnings"].append(f"I_u = {i_u_tab:.3g} A from the measured tables is outside "
                                       f"[{i_u_min:.3g}, {i_u_max:.3g}] A")
            i_u = i_u_tab
    sums = _slope_sums(model, lim)
    if node_speed == "enforce":
        c, i_u = _slow_down(c, i_u, v_u, _tau_needed(sums, lim), lim, "measured_table_bounds" in rep["i_u"],
                            t_total, rep)
    tau = c * v_u / i_u
    _node_speed(sums, lim, tau, t_total, rep)
    rep["choice"] = {"rule": rule, "c_f": c, "i_u": i_u, "tau_s": tau, "latency_s": tau * t_total,
                     "static_power_w_est": lim.vdd * i_u * e_max, "edges_enabled_max": e_max}
    rep["param_phys_max"] = {k: v * kind_factor(k, v_u, i_u) for k, v in pmax.items()}
    return Scaling(v_cm=lim.v_cm, v_u=v_u, i_u=i_u, c_f=c, tau_s=tau,
                   period_s=[p.t_len * tau for p in model.periods], report=rep)
