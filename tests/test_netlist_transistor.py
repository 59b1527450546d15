"""Transistor-level netlist: cell codes from the measured tables, wiring, capacitors, header, refusals."""
import json
import shutil

import numpy as np
import pytest
import torch

from kchip.hw.limits import DeviceLimits
from kchip.hw.mapping import map_model
from kchip.model import KirchhoffNet, Period
from kchip.netlist import build_netlist, read_header
from kchip.netlist.transistor import BIAS_PER_CELL, PIN_CAP_F, ReluCellModel, cell_level_spec, realize
from kchip.quantize.core import quantize_model, realized_model


def _spec(law="relu_diff", seed=0):
    torch.manual_seed(seed)
    edges = [[1, 2], [2, 3], [3, 1], [0, 3], [2, 1]]
    per = Period(edges, law, 1.0)
    with torch.no_grad():
        per.param.mul_(0.5)
    m = KirchhoffNet([per], projector="last1")
    x = torch.rand(32, 2) - 0.5
    sc = map_model(m, x, DeviceLimits(input_swing_v=0.3), target={"kind": "latency", "value": 4e-6})
    return quantize_model(m, sc, DeviceLimits(input_swing_v=0.3), num_inputs=2).spec


def _stable_spec():
    """Diffusive edges (theta1 > 0: the current grows with vs - vd and lowers it) and one weak anti-diffusive
    edge: the outputs are well-conditioned in the inputs (L2 moves < 0.01 SW for a 0.02 input step), so a
    chip-vs-L2 comparison measures the chip, not an unstable trajectory. (The random `_spec()` puts input 0 on
    the knee of an anti-diffusive edge: any perturbation decides which way the nodes run away.)"""
    edges = [[1, 2], [2, 3], [3, 1], [0, 3], [2, 1]]
    p = torch.tensor([[0.3, 0.2, -0.2, 0.4, 0.1],       # theta0
                      [0.8, 0.6, 0.9, 0.5, -0.2]])      # theta1
    m = KirchhoffNet([Period(edges, "relu_diff", 1.0, param=p)], projector="last1")
    torch.manual_seed(0)
    x = torch.rand(32, 2) - 0.5
    lim = DeviceLimits(input_swing_v=0.3)
    sc = map_model(m, x, lim, target={"kind": "latency", "value": 4e-6})
    return quantize_model(m, sc, lim, num_inputs=2).spec


def _model(product=True):
    full = 15
    return ReluCellModel(2.5e-6 * np.arange(full + 1) / full, (np.arange(16) - 8) * 1.5e-7, 4, 4, product)


def test_realize_picks_exact_codes_when_the_target_is_on_the_grid():
    m = _model()
    gm, ib = m.realized(5, 11)                      # (5/15) G0, (5/15) 3 I_ub
    c, o, gm2, ib2, err = m.choose(gm, ib, 0.6)
    assert (c, o) == (5, 11) and err == 0.0 and gm2 == pytest.approx(gm) and ib2 == pytest.approx(ib)
    # independent-bias form: bias not scaled by the code
    mi = _model(product=False)
    assert mi.realized(5, 11)[1] == pytest.approx(3 * 1.5e-7)


def test_realize_reports_every_edge_and_counts_clipping():
    spec = _spec()
    rep = realize(spec, _model(), 0.6)
    assert len(rep["edges"]) == len(spec.edges)
    s = spec.scaling
    assert rep["c_f"] == pytest.approx(s.tau_s * rep["i_u"] / s.v_u)          # tau kept
    for e, se in zip(rep["edges"], spec.edges):
        assert e["sign"] == (1 if se.values[1] >= 0 else -1)
        assert 0 <= e["code"] <= 15 and 0 <= e["ocode"] <= 15
        assert e["clipped"] == (e["err_pct_fs"] > 100 * 0.5 / 15)
    assert rep["clipped"] == sum(e["clipped"] for e in rep["edges"])
    # an absurd bias cannot be realized: reported, not hidden
    bad = cell_level_spec(spec, rep)
    bad.edges[0].values = [50.0, bad.edges[0].values[1]]
    assert realize(bad, _model(), 0.6)["edges"][0]["clipped"]


def test_cell_level_spec_is_the_L2_model():
    spec = _spec()
    rep = realize(spec, _model(), 0.6)
    s2 = cell_level_spec(spec, rep)
    m2 = realized_model(s2)
    p = m2.periods[0].param.detach().numpy()
    for k, e in enumerate(rep["edges"]):
        assert p[0, k] == pytest.approx(e["realized_sw"][0]) and p[1, k] == pytest.approx(e["realized_sw"][1])


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="no ngspice")   # needs only the tables + models
def test_transistor_deck_wiring_header_and_caps(tmp_path):
    spec = _spec()
    rep = {}
    text = build_netlist(spec, "transistor", "tt", report=rep)
    head = read_header(text)
    assert head["level"] == "transistor" and head["directions"] == ["forward"]
    assert head["ports"][:2] == ["vdd", "iref"] and head["logic_high"] == 1.8
    assert ".include" in text and "kc_relu_diff_p4_4" in text and "kc_bias" in text
    # control: the standard-cell sequencer is in the deck, one clock cycle = the load phase
    assert head["control"] == "sequencer" and head["top"] == "kchip_chip"
    assert {"clk", "start", "resetb", "dir"} <= set(head["ports"])
    assert head["sequencer"]["t_clk"] == pytest.approx(0.05 * spec.scaling.period_s[0])
    assert head["sequencer"]["n_flops"] == 1 + 20 + 1
    assert ".subckt kchip_seq" in text and "sky130_fd_sc_hd__dfrtp_1" in text and ".subckt kchip_chip" in text
    assert "\nXcore " in text and "\nXseq " in text
    # transmission-gate load/reset switches with their complement lines; bias generator K-fold
    assert all(f"XSL{j} n{j} in_{j} ld ldb vdd 0 kc_tgate" in text for j in (1, 2, 3))
    assert all(f"XSR{j} n{j} vcm rst_{j} rstb_{j} vdd 0 kc_tgate" in text for j in (1, 2, 3))
    assert rep["bias_mult"] == BIAS_PER_CELL * rep["instantiated"]
    i_unit = rep["i_ref_A"] / rep["bias_mult"]
    assert head["supplies"]["iref"] == pytest.approx(rep["i_ref_A"]) and 1e-9 < i_unit < 1e-6
    inst = [ln for ln in text.splitlines() if ln.startswith("X_p0_e")]
    assert len(inst) == rep["instantiated"] == sum(e["code"] > 0 for e in rep["edges"])
    for e in rep["edges"]:
        if not e["code"]:
            continue
        ln = next(x for x in inst if x.startswith(f"X_p0_e{e['id']}_"))
        f = ln.split()
        assert f[1] == ("vcm" if e["src"] == 0 else f"n{e['src']}") and f[2] == f"n{e['dst']}" and f[3] == "en_0"
        bits = [1 if t == "vdd" else 0 for t in f[4:8]]
        obits = [1 if t == "vdd" else 0 for t in f[8:12]]
        assert sum(b << k for k, b in enumerate(bits)) == e["code"]
        assert sum(b << k for k, b in enumerate(obits)) == e["ocode"]
        assert f[-1].endswith("p4_4" if e["sign"] > 0 else "n4_4")
    # node capacitance: MIM + the cells' pin capacitance = C' for every node
    for j, c_mim in rep["node_cap_mim_f"].items():
        j = int(j)
        ns = sum(1 for e in rep["edges"] if e["code"] and e["src"] == j)
        nd = sum(1 for e in rep["edges"] if e["code"] and e["dst"] == j)
        pins = PIN_CAP_F["relu_diff"]
        assert c_mim + ns * pins["s"] + nd * pins["d"] == pytest.approx(rep["c_f"])
    json.dumps(rep)


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="no ngspice")
def test_control_choice_and_refusals():
    spec = _spec()
    text = build_netlist(spec, "transistor", "tt", control="ideal")
    head = read_header(text)
    assert head["control"] == "ideal" and "kchip_seq" not in text and "top" not in head
    assert head["ports"][:4] == ["vdd", "iref", "vcm", "dirp"]
    with pytest.raises(ValueError, match="control: 'sequencer' is not available at the ideal level"):
        build_netlist(spec, "ideal", control="sequencer")
    with pytest.raises(ValueError, match="control: 'pulse' is not available"):
        build_netlist(spec, "transistor", control="pulse")


def test_transistor_level_refuses_laws_without_a_cell():
    spec = _spec("tanh_diff")
    with pytest.raises(ValueError, match="law 'tanh_diff' has no transistor cell"):
        build_netlist(spec, "transistor")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ngspice") is None, reason="no ngspice")
@pytest.mark.parametrize("control", ["sequencer", "ideal"])
def test_transistor_chip_follows_its_L2_model(tmp_path, control):
    """3 nodes, 5 relu_diff cells at tt, 2 inferences in one ngspice run (sequencer: ~30 s): the chip's
    outputs are within 0.03 SW units of the L2 model (the cells' surrogates in the ODE, `surrogate_model`) and
    of the per-code law (measured against the latter 0.011 with the standard-cell sequencer, 0.009 with testbench
    control; against the surrogate: docs/results.md), whichever drives the control."""
    from chiprun import chip_and_l2
    y, l2, l2c, _, _ = chip_and_l2(_stable_spec(), tmp_path, control=control)
    assert np.max(np.abs(y - l2)) < 0.03, (y.ravel(), l2.ravel())
    assert np.max(np.abs(y - l2c)) < 0.03, (y.ravel(), l2c.ravel())


def test_cell_projector_lands_on_the_cell_grid_and_finetune_keeps_it_there():
    from kchip.quantize.cellaware import CellProjector, cell_aware_finetune
    m = _model()
    v_u, i_u = 0.1, 1.5e-7
    proj = CellProjector(m, v_u, i_u, 0.6)
    grid = {(round(float(b), 9), round(float(g), 9)) for b, g in zip(proj.b, proj.g)}
    torch.manual_seed(1)
    p = torch.randn(2, 7, dtype=torch.float64)
    q = proj.project(p)
    for k in range(7):
        assert (round(float(q[0, k]), 9), round(abs(float(q[1, k])), 9)) in grid
        assert torch.sign(q[1, k]) == (1 if p[1, k] >= 0 else -1)

    class Toy:                      # a regression task on a 3-node relu_diff model
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.x = torch.rand(64, 2, generator=g, dtype=torch.float64) - 0.5
            self.y = (self.x[:, :1] - self.x[:, 1:]).clamp(min=0) * 0.3
            self.solver = {"method": "rk4", "options": {"step_size": 0.25}}

        def batches(self, ep, gen):
            return [(self.x, self.y)]

        def loss(self, model, batch):
            return ((model(batch[0], **self.solver) - batch[1]) ** 2).mean()
    torch.manual_seed(0)
    model = KirchhoffNet([Period([[1, 3], [2, 3], [3, 1], [0, 3]], "relu_diff", 1.0)], projector="last1").double()
    task = Toy()
    pm = KirchhoffNet([Period([[1, 3], [2, 3], [3, 1], [0, 3]], "relu_diff", 1.0,
                              param=proj.project(model.periods[0].param.detach()))], projector="last1").double()
    with torch.no_grad():
        before = float(task.loss(pm, (task.x, task.y)))
    tuned = cell_aware_finetune(model, m, v_u, i_u, task, epochs=40, lr=3e-2)
    p2 = tuned.periods[0].param.detach()
    assert torch.equal(p2, proj.project(p2))                      # every edge exactly on the grid
    with torch.no_grad():
        assert float(task.loss(tuned, (task.x, task.y))) < before


def test_flow_cell_aware_lands_every_edge_on_the_cell_grid():
    """The flow's quantize.cell_aware step: fine-tunes onto the measured tt relu_diff grid, reports the test MSE
    before/after and `on_grid`; unknown settings are refused by name."""
    from kchip.quantize.cellaware import CellProjector, flow_cell_aware
    from kchip.cells.tables import CodeTable
    from kchip.netlist.transistor import ReluCellModel, cell_table_path
    torch.manual_seed(0)
    model = KirchhoffNet([Period([[1, 3], [2, 3], [3, 1], [0, 3], [2, 1]], "relu_diff", 1.0)], projector="last1")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 2, generator=g, dtype=torch.float64)
    y = (0.4 * x[:, :1] + 0.2 * x[:, 1:]).clamp(max=1.0)
    data = {"x_train": x[:64], "y_train": y[:64], "x_test": x[64:], "y_test": y[64:]}
    tuned, rep = flow_cell_aware(model, 0.1, data, {"epochs": 3, "lr": 1e-2, "rk4_steps": 4})
    assert rep["on_grid"] and rep["epochs"] == 3 and set(rep["test_mse"]) == {"float", "projected", "tuned"}
    cell = ReluCellModel.from_table(CodeTable.from_json(cell_table_path("relu_diff", "tt")))
    proj = CellProjector(cell, 0.1, rep["i_u"], 0.6)
    p = tuned.periods[0].param.detach()
    assert torch.equal(p, proj.project(p))
    with pytest.raises(ValueError, match="quantize.cell_aware.epoch: unknown setting"):
        flow_cell_aware(model, 0.1, data, {"epoch": 3})
