"""Cell-aware fine-tuning of tanh_lin models (kchip.quantize.cellaware_lin): distillation through the measured
tt tanh_lin surrogate lands every edge on the cell grid, on the codes the netlister then chooses, and brings the
chip's L2 model closer to the float model than rounding each edge to its nearest codes."""
from pathlib import Path

import numpy as np
import pytest
import torch

from kchip.cells.tables import CodeTable
from kchip.hw.limits import DeviceLimits
from kchip.hw.mapping import map_model
from kchip.model import KirchhoffNet, Period
from kchip.netlist.lincell import LinCellModel, realize_lin
from kchip.netlist.transistor import cell_table_path
from kchip.quantize.cellaware_lin import LinGridProjector, flow_lin_cell_aware, lin_cell_aware_finetune
from kchip.quantize.core import quantize_model

pytestmark = pytest.mark.skipif(not cell_table_path("tanh_lin", "tt").exists(), reason="no tanh_lin tables")

# 2 input nodes and an output node, three parallel edges per pair: small offsets (theta3 within +-0.3, where the
# cell's offset step is ~0.3) so that rounding to the grid matters and parallel edges can make up for it
EDGES = [[1, 3], [1, 3], [1, 3], [2, 3], [2, 3], [2, 3], [3, 1], [3, 2], [0, 3]]


def _model(seed: int = 0) -> KirchhoffNet:
    g = torch.Generator().manual_seed(seed)
    p = torch.stack([0.6 * torch.rand(len(EDGES), generator=g, dtype=torch.float64) + 0.2,
                     -0.6 * torch.rand(len(EDGES), generator=g, dtype=torch.float64) - 0.2,
                     0.5 * torch.rand(len(EDGES), generator=g, dtype=torch.float64) - 0.25])
    return KirchhoffNet([Period(EDGES, "tanh_lin", 1.0, param=p)], projector="last1").double()


def _scaling(model):
    lim = DeviceLimits(input_swing_v=0.3)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return map_model(model, x, lim, target={"kind": "latency", "value": 2e-4}), lim


def _cell():
    return LinCellModel.from_table(CodeTable.from_json(cell_table_path("tanh_lin", "tt")))


def test_projector_picks_the_netlisters_codes():
    cell = _cell()
    proj = LinGridProjector(cell, 0.015)
    theta = torch.randn(3, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.5
    codes, q, on = proj.project(theta)
    for e in range(40):
        cs, cd, o, _, _ = cell.choose(theta[0, e].item() / 0.015, theta[1, e].item() / 0.015, theta[2, e].item(), 0.3)
        assert [cs, cd, o] == codes[:, e].tolist()
        assert q[:, e].tolist() == pytest.approx([cell.g_s[cs + 15] * 0.015, cell.g_d[cd + 15] * 0.015, cell.bias[o]])
    zero = proj.project(torch.tensor([[0.001], [-0.002], [0.01]], dtype=torch.float64))
    assert zero[0][:, 0].tolist() == [0, 0, cell.o_zero] and zero[2].item() == 0.0      # not instantiated


def test_finetune_lands_on_the_grid_the_netlister_realizes_and_closes_the_gap():
    model = _model()
    sc, lim = _scaling(model)
    x_eval = torch.randn(48, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    sample = lambda gen, n: torch.randn(n, 2, generator=gen, dtype=torch.float64)
    tuned, rep = lin_cell_aware_finetune(model, sc.v_u, sc.v_cm, sample, steps=60, lr=1e-2, batch=64,
                                         rk4_steps=8, x_eval=x_eval)
    before, after = rep["L2_vs_L0_before"]["rms_pct_fs"], rep["L2_vs_L0_after"]["rms_pct_fs"]
    assert after < 0.7 * before, rep
    # the tuned parameters are grid values; the chip built from them (6-bit ideal codes, then the cell's
    # nearest codes) gets exactly the codes the fine-tuning trained through
    proj = LinGridProjector(_cell(), sc.v_u)
    p = tuned.periods[0].param.detach()
    codes, q, on = proj.project(p)
    assert torch.allclose(p, q * on, rtol=0, atol=1e-12)
    spec = quantize_model(tuned, sc, lim, num_inputs=2).spec
    chip = realize_lin(spec, _cell(), span=0.3)
    got = torch.tensor([[e["cs"], e["cd"], e["ocode"]] for e in chip["edges"]]).T
    assert torch.equal(got, codes)
    assert [e["code"] for e in chip["edges"]] == [int(v) for v in on.tolist()]


def test_lin_cell_aware_refuses_other_laws_and_unknown_settings():
    relu = KirchhoffNet([Period([[1, 2], [2, 1]], "relu_diff", 1.0)])
    with pytest.raises(ValueError, match=r"periods\[0\].law: lin cell-aware fine-tuning supports tanh_lin"):
        lin_cell_aware_finetune(relu, 0.015, 0.9, lambda g, n: torch.zeros(n, 2), steps=1)
    with pytest.raises(ValueError, match="quantize.cell_aware.epochs: unknown setting for a tanh_lin model"):
        flow_lin_cell_aware(_model(), _scaling(_model())[0], None, None, {"epochs": 3})


@pytest.mark.parametrize("dynamic", [False, True])
def test_the_model_trained_through_is_the_chips_L2(dynamic):
    """What the fine-tuning reports as its L2 - L0 after training is the L2 model of the chip built from the tuned
    model (`surrogate_model` on the netlister's codes; dynamic: with the s-side current and the cells' lag)."""
    from kchip.sim.l2 import surrogate_model
    model = _model(1)
    sc, lim = _scaling(model)
    x_eval = torch.randn(24, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    tuned, rep = lin_cell_aware_finetune(model, sc.v_u, sc.v_cm, lambda g, n: torch.randn(n, 2, generator=g,
                                         dtype=torch.float64), steps=8, lr=1e-2, batch=32, rk4_steps=8,
                                         x_eval=x_eval, dynamic_tau_s=sc.tau_s if dynamic else None)
    assert rep["dynamic"] is dynamic and (rep["lag_sw"] > 0) is dynamic
    spec = quantize_model(tuned, sc, lim, num_inputs=2).spec
    chip = dict(realize_lin(spec, _cell(), span=0.3), corner="tt")
    tight = dict(rtol=1e-9, atol=1e-11)
    with torch.no_grad():
        l2 = surrogate_model(spec, chip, s_side=dynamic, lag=dynamic)(x_eval, **tight)
        l0 = model.double()(x_eval, **tight)
    fs = float((l0.max(0).values - l0.min(0).values).max())
    rms = float(((l2 - l0) / fs * 100).pow(2).mean().sqrt())
    assert rms == pytest.approx(rep["L2_vs_L0_after"]["rms_pct_fs"], rel=1e-6)


def test_flow_two_phases_refine_through_the_dynamic_L2_from_the_first_grid():
    model = _model(2)
    sc, _ = _scaling(model)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    tuned, rep = flow_lin_cell_aware(model, sc, None, x, {"steps": 4, "lr": 1e-2, "batch": 16, "rk4_steps": 8,
                                                          "dynamic_steps": 2, "dynamic_lr": 1e-2})
    assert rep["dynamic"] and not rep["first_phase"]["dynamic"] and rep["cell"] == "tanh_lin"
    assert rep["steps"] == 2 and rep["first_phase"]["steps"] == 4
    assert rep["tau_needed_s"] > 0 and rep["tau_s"] == sc.tau_s
    bad = KirchhoffNet([Period(EDGES[:4], "tanh_lin", 1.0)], projector="last1")
    with pytest.raises(ValueError, match="init has other periods or edge counts"):
        lin_cell_aware_finetune(model, sc.v_u, sc.v_cm, lambda g, n: torch.zeros(n, 2), steps=1, init=bad)


def test_flow_quantize_stage_dispatches_by_law(tmp_path):
    """The flow's quantize.cell_aware: a tanh_lin model is distilled (no data set needed; L2 - L0 reported on the
    forward stage's inputs), a relu_diff model without a data set is refused by name."""
    from kchip.flow import FlowContext
    from kchip.quantize.flowstage import _cell_aware
    model = _model(3)
    sc, _ = _scaling(model)
    np.save(tmp_path / "inputs.npy", np.random.default_rng(0).standard_normal((8, 2)))
    ctx = FlowContext("t", tmp_path, tmp_path, {"forward": {"inputs": "inputs.npy"}})
    tuned, rep = _cell_aware(model, sc, None, ctx, {"steps": 2, "batch": 8, "rk4_steps": 8})
    assert rep["cell"] == "tanh_lin" and rep["L2_vs_L0_after"]["rms_pct_fs"] >= 0
    relu = KirchhoffNet([Period([[1, 2], [2, 1]], "relu_diff", 1.0)])
    with pytest.raises(ValueError, match="quantize.cell_aware needs a model stage with a dataset"):
        _cell_aware(relu, sc, None, ctx, {"epochs": 1})


def test_limits_refuse_a_bad_l2_dynamic_entry():
    from types import SimpleNamespace
    pdk = SimpleNamespace(name="toy", vdd=1.8, vcm=0.9, limits={"l2_dynamic": "tanh_lin"},
                          device=lambda name: {"c_area_f_per_um2": 2e-15})
    with pytest.raises(ValueError, match="toy pdk.yaml: limits.l2_dynamic: expected a list of cell kinds"):
        DeviceLimits.from_pdk(pdk)
    pdk.limits = {"l2_dynamic": ["tanh_lin", "relu_lin"]}
    assert DeviceLimits.from_pdk(pdk).l2_dynamic == ["tanh_lin", "relu_lin"]
    pdk.limits = {"l2_code_surfaces": [3]}
    with pytest.raises(ValueError, match="toy pdk.yaml: limits.l2_code_surfaces: expected a list of cell kinds"):
        DeviceLimits.from_pdk(pdk)
    pdk.limits = {"l2_code_surfaces": ["tanh_lin"]}
    assert DeviceLimits.from_pdk(pdk).l2_code_surfaces == ["tanh_lin"]
