"""Mapping: V_u from the node range reached over the calibration set, tau = C V_u / I_u, targets, bounds."""
import math

import pytest
import torch

from kchip.hw import DeviceLimits, Scaling, map_model
from kchip.hw.mapping import tau_for_node_speed
from kchip.model import KirchhoffNet, Period

LIM = DeviceLimits(input_swing_v=0.4, margin=0.1, c_min_f=50e-15, cell_current_min_a=1e-9,
                   cell_current_max_a=1e-5, tanh_slope_max_per_v=12.0)


def _decay(g=0.5):
    # one Conductance edge 1 -> ground: dv/dt = -g v, so max |v| over time = max |x| (at t = 0)
    return KirchhoffNet([Period([[1, 0]], "Conductance", 1.0, param=torch.tensor([[g], [0.], [0.]]))]).double()


def test_vu_from_calibration_range_and_tau():
    m = _decay()
    x = torch.tensor([[0.5], [-2.0], [1.0]], dtype=torch.float64)
    sc = map_model(m, x, LIM, {"kind": "latency", "value": 1e-6})
    assert sc.v_u == pytest.approx(0.4 / (2.0 * 1.1), rel=1e-9)
    assert sc.report["calibration"]["forward"]["v_abs_max"] == pytest.approx(2.0)
    assert sc.tau_s == pytest.approx(sc.c_f * sc.v_u / sc.i_u, rel=1e-12)
    assert sc.tau_s * 1.0 == pytest.approx(1e-6, rel=1e-9)          # latency target met (T_total = 1)
    assert sc.period_s == [pytest.approx(1e-6)]
    assert sc.i_u == pytest.approx(50e-15 * sc.v_u / 1e-6)


def test_both_directions_used():
    m = _decay()
    # reverse = backwards in time: v grows by e^{g T}; the reverse calibration sets the range
    sc = map_model(m, {"forward": torch.ones(2, 1, dtype=torch.float64),
                       "reverse": torch.ones(2, 1, dtype=torch.float64)}, LIM)
    assert sc.report["calibration"]["reverse"]["v_abs_max"] == pytest.approx(math.exp(0.5), rel=1e-4)
    assert sc.v_u == pytest.approx(0.4 / (math.exp(0.5) * 1.1), rel=1e-4)


def test_power_and_area_targets():
    m = _decay()
    x = torch.ones(1, 1, dtype=torch.float64)
    sp = map_model(m, x, LIM, {"kind": "power", "value": 1.8e-6})    # 1 edge at 1.8 V -> I_u = 1 uA
    assert sp.i_u == pytest.approx(1e-6)
    sa = map_model(m, x, LIM, {"kind": "area", "value": 100.0})       # 100 um^2 * 2 fF/um^2 = 200 fF
    assert sa.c_f == pytest.approx(200e-15)


def test_slope_bound_reported():
    p = Period([[1, 0], [0, 1]], "tanh_diff", 1.0, param=torch.tensor([[0.0, 0.0], [3.0, 0.1]]))
    m = KirchhoffNet([p]).double()
    sc = map_model(m, torch.full((1, 1), 2.0, dtype=torch.float64), LIM)
    v = sc.report["v_u"]
    assert v["slope_lower_bound"] == pytest.approx(3.0 / 12.0)
    assert not v["slope_bound_met"] and v["slopes_over_bound"] == 1
    assert any("tanh slopes" in w for w in sc.report["warnings"])


def test_slope_bound_is_per_cell_kind():
    """tanh_lin has input gain: its slopes are bounded by tanh_lin_slope_max_per_v, not by the pair's kappa/2U_T;
    the same slope clips on a tanh_diff model and does not on a tanh_lin one."""
    from dataclasses import replace
    from kchip.quantize.core import quantize_model
    lim = replace(LIM, tanh_lin_slope_max_per_v=60.0)
    x = torch.full((1, 1), 2.0, dtype=torch.float64)
    lin = KirchhoffNet([Period([[1, 0]], "tanh_lin", 1.0, param=torch.tensor([[3.0], [-0.5], [0.1]]))]).double()
    sc = map_model(lin, x, lim)
    v = sc.report["v_u"]
    assert v["slope_lower_bound"] == pytest.approx(3.0 / 60.0) and v["slope_bound_met"]
    assert v["slope_bound_cell"] == "tanh_lin" and not any("tanh slopes" in w for w in sc.report["warnings"])
    q = quantize_model(lin, sc, limits=lim)
    assert q.report.get("clipped_total", 0) == 0
    # without the tanh_lin bound the pair's 12 /V applies to it too (the old behaviour) and the slope clips
    sc0 = map_model(lin, x, LIM)
    assert not sc0.report["v_u"]["slope_bound_met"] and sc0.report["v_u"]["slopes_over_bound"] == 1


def test_node_speed_against_the_cell_lag():
    """tau / (largest sum of a node's edge slopes) vs the cell's lag: three tanh_lin edges into node 2 with
    |theta2| = 4 + 3 + 3 (node 1 also has 5 on its own edge, node 0 is the reference); at tau = 1 us that node's
    time constant is 0.1 us = 0.31 lags of a 0.323 us cell. node_speed "warn": a warning that names the needed
    tau; "enforce" (default): tau raised to 5 lags x 0.323 us x 10 = 16.15 us by a smaller I_u, C unchanged."""
    from dataclasses import replace
    lim = replace(LIM, tanh_lin_slope_max_per_v=60.0, cell_lag_s={"tanh_lin": 3.23e-7}, node_tau_over_lag_min=5.0)
    p = torch.tensor([[1.0, 2.0, 2.0], [-4.0, -3.0, -3.0], [0.0, 0.1, 0.2]])
    m = KirchhoffNet([Period([[1, 2], [0, 2], [1, 2]], "tanh_lin", 1.0, param=p)]).double()
    x = torch.tensor([[0.5, -0.5]], dtype=torch.float64)
    assert tau_for_node_speed(m, lim) == pytest.approx(5 * 3.23e-7 * 10)
    sc = map_model(m, x, lim, {"kind": "latency", "value": 1e-6, "node_speed": "warn"})
    ns = sc.report["node_speed"]["periods"][0]
    assert ns["node"] == 2 and ns["sum_slopes_sw"] == pytest.approx(10.0)     # node 1: 1 + 2 (two sources) = 3
    assert ns["tau_node_min_s"] == pytest.approx(sc.tau_s / 10.0) and ns["lags"] == pytest.approx(1e-7 / 3.23e-7)
    w = [w for w in sc.report["warnings"] if w.startswith("node speed")]
    assert len(w) == 1 and "tau >= 1.62e-05 s" in w[0]          # 5 lags x 0.323 us x 10
    # enforced: slowed to exactly 5 lags, the same C, I_u 16.15x smaller, and the report says so
    se = map_model(m, x, lim, {"kind": "latency", "value": 1e-6})
    assert se.tau_s == pytest.approx(1.615e-5) and se.c_f == pytest.approx(sc.c_f)
    assert se.i_u == pytest.approx(sc.i_u / 16.15)
    assert se.report["node_speed"]["periods"][0]["lags"] == pytest.approx(5.0)
    assert se.report["node_speed"]["tau_before_s"] == pytest.approx(1e-6)
    w = [w for w in se.report["warnings"] if w.startswith("node speed")]
    assert len(w) == 1 and "raised from 1e-06 s to 1.62e-05 s" in w[0]
    # slow enough: no warning, nothing changed
    sc2 = map_model(m, x, lim, {"kind": "latency", "value": 2e-5})
    assert sc2.report["node_speed"]["periods"][0]["lags"] >= 5.0 and sc2.tau_s == pytest.approx(2e-5)
    assert not any(w.startswith("node speed") for w in sc2.report["warnings"])
    with pytest.raises(ValueError, match="target.node_speed"):
        map_model(m, x, lim, {"kind": "latency", "value": 1e-6, "node_speed": "ignore"})


def test_bad_target_and_scaling_fields():
    m = _decay()
    x = torch.ones(1, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="target.kind"):
        map_model(m, x, LIM, {"kind": "speed", "value": 1})
    with pytest.raises(ValueError, match="scaling.tau_s"):
        Scaling.from_dict({"v_cm": 0.9, "v_u": 0.1, "i_u": 1e-6, "c_f": 1e-13, "tau_s": 1.0, "period_s": [1.0]})
