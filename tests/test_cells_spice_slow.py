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
    r = run_dc(load_pdk(), kind, "tt", codes=[0, 5, 15], ac=False, jobs=2)
    g = r["grid"]
    VS, VD = np.meshgrid(g, g)
    amp = np.array([0, 5, 15])[:, None, None] * kind.i_unit
    # one slope for the cell (minimax over codes and the +-0.3 V grid), nominal amplitudes code * I_unit
    dev = min(np.max(np.abs(r["i_d"] - amp * np.tanh(k * (VS - VD))[None])) for k in np.linspace(11, 15, 81))
    assert dev <= 0.015 * kind.i_fs                      # issue 5: <= 1.5 % of full scale (tt)
    assert np.max(np.abs(r["i_d"][0])) < 1e-9            # code 0: no tail current
    assert np.max(np.abs(r["leak"][0])) < 1e-3 * kind.i_unit   # disabled: <= 0.1 % of the unit current
    assert np.max(np.abs(r["leak"][1])) < 1e-3 * kind.i_unit
    np.testing.assert_allclose(r["i_s"], r["i_d"], atol=0.015 * kind.i_fs)   # sinks from s what it sources into d


@pytest.mark.parametrize("mode", ["release", "enable"])
@pytest.mark.parametrize("code", [15, 5])
def test_one_node_transient_matches_ode(code, mode):
    # enable mode = cell enabled at t = 0: the output-steered cell keeps its bias while disabled, so it
    # must track the ODE as well as with the node released from reset (issue 5: <= 2 % of the swing)
    o = one_node_transient("tanh_diff", code=code, mode=mode)
    assert o["max_err_pct_swing_table_cnode"] <= 2.0
    assert o["max_err_pct_swing_table_cpass"] <= 2.0


@pytest.mark.parametrize("mode", ["release", "enable"])
def test_one_node_transient_4pf_at_fs(mode):
    """At fs a 2 pF node misses 2 % (2.3-2.6 %: the slow pfet mirrors lag); a 4 pF node halves the lag error
    (measured 0.84-1.24 % at fs, <= 1.24 % at all five corners: docs/results.md)."""
    for code in (15, 5):
        o = one_node_transient("tanh_diff", code=code, mode=mode, corner="fs", c_farad=4e-12, t_end=6e-6)
        assert o["max_err_pct_swing_table_cnode"] <= 1.5
        assert o["max_err_pct_swing_table_cpass"] <= 1.5


def test_relu_knee_crossing_transient():
    """relu_diff at full code, pre-activation ramped -30 % -> +100 % FS in 2 us (and back), vs its own DC curve.
    The clamp (X held just below conduction) and the y keep-alive remove the dead time of the old cell (56 % FS
    deviation after the knee, output 0 until ~0.8 us); the cell still lags the ramp by ~0.1 us (mirror and
    cascode nodes in weak inversion), so the project target (<= 2 % FS from 100 ns after the knee) is NOT met:
    these bounds guard the measured state (docs/cells.md)."""
    from kchip.cells.relu_transient import knee_transient
    o = knee_transient("tt")
    assert o["rise"]["pre_level_pct"] <= 0.5          # enabled, negative pre-activation: output <= 0.5 % FS
    assert o["rise"]["dev_after_100ns_pct"] <= 40.0   # old cell: 56 %
    assert o["fall"]["dev_after_100ns_pct"] <= 15.0
    assert o["fall"]["off_residual_pct"] <= 15.0


def test_relu_pin_capacitance_matches_netlister():
    from kchip.cells.relu_transient import pin_caps
    from kchip.netlist.transistor import PIN_CAP_F
    c = pin_caps("tt")
    for pin in ("s", "d"):
        assert c[pin] == pytest.approx(PIN_CAP_F["relu_diff"][pin], rel=0.15)
