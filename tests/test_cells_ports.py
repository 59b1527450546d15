"""Port figures of the edge cells (kchip.cells.ports): output conductance from DC surfaces against hand-built
surfaces with a known conductance, and the committed tables carry them (and relu_diff its AC bandwidth)."""
import json
from pathlib import Path

import numpy as np
import pytest

from kchip.cells.ports import cm_output_conductance, port_conductances

ROOT = Path(__file__).resolve().parents[1] / "characterization"


def test_port_conductances_of_a_three_parameter_surface():
    """i_d = tanh law in vs + g_d vd at cd = 0; i_s = i_d + g_s vs at cs = 0: the figures are g_d, g_s."""
    vs = vd = np.linspace(0.6, 1.2, 9)
    VS, VD = np.meshgrid(vs, vd)
    g_d, g_s = 7e-9, 3e-9
    combos = [(15, 0, 8), (0, 0, 11), (5, -3, 8)]
    i_d = np.stack([1e-6 * np.tanh(20 * (VS - 0.9)) + g_d * VD, 1e-6 * np.tanh(0.4) + g_d * VD,
                    1e-6 * np.tanh(5 * (VS - VD))])
    i_s = i_d + np.stack([np.zeros_like(VS), g_s * VS, np.zeros_like(VS)])
    out = port_conductances(combos, vs, vd, i_d, i_s)
    assert out["port_conductance_d_S"] == pytest.approx(g_d, rel=1e-6)
    assert out["port_conductance_s_S"] == pytest.approx(g_s, rel=1e-6)
    assert out["output_resistance_d_ohm"] == pytest.approx(1 / g_d, rel=1e-6)


def test_cm_output_conductance_of_a_difference_form_surface():
    """i = relu(G (vs - vd)) (1 + lam (vs + vd) / 2): at fixed vs - vd the current moves with the common mode by
    lam i; the figure is the largest such slope where the cell conducts."""
    vs = np.linspace(0.6, 1.2, 31)
    vd = 0.9 + 0.15 * np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    VS, VD = np.meshgrid(vs, vd)
    G, lam = 3e-6, 0.02
    i = np.maximum(G * (VS - VD), 0) * (1 + lam * (VS + VD) / 2)
    g = cm_output_conductance(vs, vd, i, 1e-8)
    i_max = G * 0.6 * (1 + lam * 0.6)                   # the largest current of a pair of rows: vs - vd = 0.6 V
    assert lam * 0.5 * G * 0.45 < g <= lam * i_max * 1.01
    assert cm_output_conductance(vs, vd, np.maximum(G * (VS - VD), 0), 1e-8) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("corner", ["tt", "ss", "ff", "sf", "fs"])
def test_committed_tables_carry_port_figures(corner):
    tl = json.loads((ROOT / "tanh_lin" / f"{corner}.json").read_text())["meta"]["summary"]
    assert 1e-9 < tl["port_conductance_d_S"] < 5e-8 and tl["output_resistance_d_ohm"] > 2e7
    rd = json.loads((ROOT / "relu_diff" / f"{corner}.json").read_text())["meta"]["summary"]
    assert rd["cm_output_resistance_ohm"] > 1e6
    assert 1e5 < rd["bandwidth_Hz"] < 1e9 and rd["bandwidth_per_code_Hz"]["3,8"] > 0
