"""Long SPICE checks of the cells (run with -m slow)."""
import shutil

import numpy as np
import pytest

from kchip.cells.characterize import CellKind, run_dc
from kchip.cells.transient import one_node_transient
from kchip.pdk import load_pdk

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("ngspice") is None, reason="no ngspice")]


def test_tanh_cell_follows_tanh_and_gates_off():
    kind = CellKind("tanh_diff", step=0.1)
    r = run_dc(load_pdk(), kind, "tt", codes=[0, 15], ac=False)
    g = r["grid"]
    VS, VD = np.meshgrid(g, g)
    ideal = 1e-6 * np.tanh(12.0 * (VS - VD))            # kappa/2U_T with kappa ~ 0.62
    assert np.max(np.abs(r["i_d"][1] - ideal)) < 0.05e-6
    assert np.max(np.abs(r["i_d"][0])) < 1e-9            # code 0: no tail current
    assert np.max(np.abs(r["leak"][0])) < 1e-3 * kind.i_unit   # disabled: <= 0.1 % of the unit current
    np.testing.assert_allclose(r["i_s"][1], r["i_d"][1], atol=0.02e-6)   # sinks from s what it sources into d


@pytest.mark.parametrize("code", [15, 5])
def test_one_node_transient_release_matches_ode(code):
    o = one_node_transient("tanh_diff", code=code, mode="release")
    assert o["max_err_pct_swing_table_cnode"] <= 2.0
