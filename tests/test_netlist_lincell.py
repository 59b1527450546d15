"""Transistor-level chips of the three-parameter ReLU law (Eq. 12) on the relu_lin cell: codes from the measured
tables, I_u rule, clipping report, deck wiring; slow: the chip follows its L2 model in ngspice."""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kchip.cells.tables import CodeParam, CodeTable
from kchip.hw.limits import DeviceLimits
from kchip.hw.mapping import map_model
from kchip.model import KirchhoffNet, Period
from kchip.netlist import build_netlist, read_header
from kchip.netlist.lincell import LinCellModel, lin_code_pins, realize_lin
from kchip.netlist.transistor import cell_level_spec
from kchip.quantize.core import quantize_model


def _table(g=2.5e-6, iub=1.75e-7):
    """A synthetic relu_lin code table: g_s = g_d = (c/15) g, bias = (o - 8) iub."""
    c = np.arange(-15, 16)
    o = np.arange(16)
    return CodeTable("relu_lin", "tt", {"g_s": CodeParam(c, g * c / 15), "g_d": CodeParam(c, 0.99 * g * c / 15),
                                        "bias": CodeParam(o, (o - 8) * iub)}, meta={"bits": 4, "obits": 4})


def _lin_spec(p=None, law="relu_lin", edges=None):
    """3 nodes, 5 three-parameter edges: diffusive (theta1 > 0 on the source, theta2 < 0 on the destination) so
    that the outputs are well conditioned in the inputs."""
    edges = edges or [[1, 2], [2, 3], [3, 1], [0, 3], [2, 1]]
    if p is None:
        p = torch.tensor([[0.8, 0.6, 0.9, 0.0, 0.4],        # theta1 (vs)
                          [-0.7, -0.5, -0.8, -0.4, -0.3],   # theta2 (vd)
                          [0.3, 0.2, -0.2, 0.4, 0.1]])      # theta3
    m = KirchhoffNet([Period(edges, law, 1.0, param=p)], projector="last1")
    torch.manual_seed(0)
    x = torch.rand(32, 2) - 0.5
    lim = DeviceLimits(input_swing_v=0.3)
    sc = map_model(m, x, lim, target={"kind": "latency", "value": 4e-6})
    return quantize_model(m, sc, lim, num_inputs=2).spec


def test_lin_model_reads_signed_tables_and_refuses_gaps():
    m = LinCellModel.from_table(_table())
    assert m.g_s.shape == (31,) and m.bias.shape == (16,) and m.o_zero == 8
    assert m.realized(-15, 15, 8) == pytest.approx((-2.5e-6, 0.99 * 2.5e-6, 0.0))
    t = _table()
    t.params["bias"] = CodeParam(np.arange(15), np.arange(15) * 1e-7)
    with pytest.raises(ValueError, match=r"bias has no value for codes \[15\]"):
        LinCellModel.from_table(t)


def test_realize_lin_codes_unit_current_and_clipping():
    spec = _lin_spec()
    m = LinCellModel.from_table(_table())
    rep = realize_lin(spec, m, span=0.3)
    s = spec.scaling
    th = np.array([e.values for e in spec.edges])
    # I_u: the largest unit current that keeps every target inside its table (here theta1's 0.9 binds)
    lim = rep["i_u_limits"]
    assert rep["i_u"] == pytest.approx(min(lim.values()))
    assert lim["theta1"] == pytest.approx(2.5e-6 * s.v_u / np.max(th[:, 0]))
    assert rep["clipped"] == 0
    for e, t in zip(rep["edges"], th):
        gs, gd, b = m.realized(e["cs"], e["cd"], e["ocode"])
        # the chosen codes are the nearest on each table, and realized_sw is what they realize in SW units
        assert abs(gs - rep["i_u"] * t[0] / s.v_u) <= 0.5 * 2.5e-6 / 15 + 1e-15
        assert abs(b - rep["i_u"] * t[2]) <= 0.5 * 1.75e-7 + 1e-15
        assert e["realized_sw"] == pytest.approx([gs * s.v_u / rep["i_u"], gd * s.v_u / rep["i_u"], b / rep["i_u"]])
    # an explicit, too large I_u pushes theta1 = 0.9 off the table: counted, not silently clipped
    rep2 = realize_lin(spec, m, span=0.3, i_u=2 * rep["i_u"])
    assert rep2["clipped"] >= 1 and any(e["clipped"] for e in rep2["edges"])


def test_lin_code_pins_order():
    e = {"cs": -5, "cd": 12, "ocode": 9}
    assert lin_code_pins(e, 4, 4) == ["vdd", "0", "vdd", "0", "vdd",     # |5| = 0101, sign 1
                                      "0", "0", "vdd", "vdd", "0",       # 12 = 1100, sign 0
                                      "vdd", "0", "0", "vdd"]            # 9 = 1001


def test_relu_lin_transistor_deck(tmp_path):
    spec = _lin_spec()
    rep = {}
    text = build_netlist(spec, "transistor", "tt", report=rep)
    head = read_header(text)
    assert head["control"] == "sequencer" and rep["cell"] == "relu_lin"
    assert ".subckt kc_relu_lin4_4 " in text
    inst = [ln for ln in text.splitlines() if ln.startswith("X_p0_")]
    assert len(inst) == rep["instantiated"] == 5
    e3 = next(ln for ln in inst if ln.startswith("X_p0_e3_n0_n3"))
    assert e3.split()[1:4] == ["vcm", "n3", "en_0"]              # ground edge: s at V_cm
    assert e3.split()[-5:] == ["vk", "vcm", "vdd", "0", "kc_relu_lin4_4"]
    assert len(e3.split()) == 1 + 3 + 14 + 4 + 3 + 1             # name, s d en, code pins, bias, vcm vdd vss, cell
    # the L2 spec carries the realized values
    l2 = cell_level_spec(spec, rep)
    assert [e.values for e in l2.edges] == [r["realized_sw"] for r in rep["edges"]]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ngspice") is None, reason="no ngspice")
def test_relu_lin_chip_follows_its_L2_model(tmp_path):
    """3 nodes, 5 relu_lin cells at tt with the standard-cell sequencer, 2 inferences in one ngspice run: the
    chip's outputs are within 0.03 SW units of the L2 model (relu_lin surrogates in the ODE) and of the per-code
    law."""
    from chiprun import chip_and_l2
    y, l2, l2c, _, _ = chip_and_l2(_lin_spec(), tmp_path)
    assert np.max(np.abs(y - l2)) < 0.03, (y.ravel(), l2.ravel())
    assert np.max(np.abs(y - l2c)) < 0.03, (y.ravel(), l2c.ravel())


def test_relu_lin_L2_surrogate_model_skips_uninstantiated_edges():
    """L2 of a relu_lin chip: the committed tt surrogate with the report's codes; an edge realized at zero codes
    (cs = cd = 0, o = 8: not instantiated) carries no current, although the surrogate gives its knee current I_q
    there; the other edges carry the surrogate's current."""
    from kchip.cells.surrogate import ReluLinSurrogate
    from kchip.netlist.transistor import cell_table_path
    from kchip.sim.l2 import surrogate_model
    p = torch.tensor([[0.8, 0.6, 0.9, 0.0, 0.4], [-0.7, -0.5, -0.8, 0.0, -0.3], [0.3, 0.2, -0.2, 0.0, 0.1]])
    spec = _lin_spec(p)
    rep = {}
    build_netlist(spec, "transistor", "tt", report=rep)
    e3 = next(e for e in rep["edges"] if e["id"] == 3)
    assert (e3["cs"], e3["cd"], e3["ocode"], e3["code"]) == (0, 0, 8, 0)
    model = surrogate_model(spec, rep)
    per = model.periods[0]
    vs = torch.full((5, 1), 0.2, dtype=torch.float64)
    vd = torch.full((5, 1), -0.1, dtype=torch.float64)
    i = per.currents(vs, vd)[:, 0]
    sur = ReluLinSurrogate.from_json(cell_table_path("relu_lin", "tt"))
    fn = sur.law(rep["i_u"], rep["v_u"], spec.scaling.v_cm)
    ref = fn(torch.tensor([[e["cs"], e["cd"], e["ocode"]] for e in rep["edges"]]).T, vs, vd)[:, 0]
    assert float(ref[3]) > 0 and float(i[3]) == 0.0
    keep = [0, 1, 2, 4]
    assert torch.allclose(i[keep], ref[keep])


def test_L2_s_side_current_and_cell_lag():
    """surrogate_model(s_side=True): the current taken from s is the one into d plus the cell's characterized mean
    i_s - i_d surface (bilinear on the table grid; here at a grid point, compared with the npz directly);
    lag=True: the period's derivative is evaluated at v - lag dv/dt with lag = limits.cell_lag_s / tau."""
    from kchip.cells.tables import CellTable
    from kchip.hw.limits import load_limits
    from kchip.netlist.transistor import cell_table_path
    from kchip.sim.l2 import surrogate_model
    p = torch.tensor([[0.8, 0.6, 0.9, 0.2, 0.4], [-0.7, -0.5, -0.8, -0.3, -0.3], [0.3, 0.2, -0.2, 0.1, 0.1]])
    spec = _lin_spec(p)
    rep = {}
    build_netlist(spec, "transistor", "tt", report=rep)
    plain, side = surrogate_model(spec, rep).periods[0], surrogate_model(spec, rep, s_side=True).periods[0]
    t = CellTable.load(cell_table_path("relu_lin", "tt").with_suffix(".npz"))
    j, k = 2, 6                                                   # vd index, vs index on the table grid
    v_cm, v_u, i_u = spec.scaling.v_cm, rep["v_u"], rep["i_u"]
    vs = torch.full((5, 1), (float(t.vs[k]) - v_cm) / v_u, dtype=torch.float64)
    vd = torch.full((5, 1), (float(t.vd[j]) - v_cm) / v_u, dtype=torch.float64)
    i_d, i_s = side.fn(side.codes, vs, vd)
    delta = float(np.mean(t.i_s - t.i_d, axis=0)[j, k]) / i_u
    assert torch.allclose(i_d, plain.fn(plain.codes, vs, vd)) and torch.allclose(i_s - i_d, torch.full_like(i_d, delta))
    assert abs(delta) > 1e-4 and side.both and not plain.both
    lagged = surrogate_model(spec, rep, lag=True).periods[0]
    lag = load_limits().cell_lag_s["relu_lin"] / rep["tau_s"]
    assert lagged.lag == pytest.approx(lag) and plain.lag == 0.0
    y = torch.tensor([[0.3], [-0.2], [0.1]], dtype=torch.float64)
    f0 = plain.forward(0.0, y)
    assert torch.allclose(lagged.forward(0.0, y), plain.forward(0.0, y - lag * f0))


def test_realize_lin_tanh_uses_the_fixed_amplitude_and_counts_slopes_beyond_the_table():
    """tanh_lin: I_u = the cell's amplitude I_T; theta1 / V_u and theta2 / V_u are chosen on the slope tables
    (1/V), theta3 on the offset table; a slope past the table's end is clipped to the last code and counted."""
    c, o = np.arange(-15, 16), np.arange(16)
    t = CodeTable("tanh_lin", "tt", {"slope_s": CodeParam(c, 50.0 * c / 15), "slope_d": CodeParam(c, 48.0 * c / 15),
                                     "offset": CodeParam(o, 0.35 * (o - 8))}, meta={"bits": 4, "obits": 4, "amp_A": 1e-6})
    m = LinCellModel.from_table(t)
    assert m.family == "tanh" and m.amp == 1e-6
    p = torch.tensor([[0.8, 0.6, 0.9, 0.0, 0.4], [-0.7, -0.5, -0.8, -0.4, -0.3], [0.3, 0.2, -0.2, 0.4, 0.1]])
    m0 = KirchhoffNet([Period([[1, 2], [2, 3], [3, 1], [0, 3], [2, 1]], "tanh_lin", 1.0, param=p)],
                      projector="last1")
    torch.manual_seed(0)
    lim = DeviceLimits(input_swing_v=0.3)
    sc = map_model(m0, torch.rand(32, 2) - 0.5, lim, target={"kind": "latency", "value": 4e-6})
    spec = quantize_model(m0, sc, lim, num_inputs=2).spec
    v_u = spec.scaling.v_u
    rep = realize_lin(spec, m, span=0.3)
    assert rep["i_u"] == 1e-6 and rep["c_f"] == pytest.approx(spec.scaling.tau_s * 1e-6 / v_u)
    for e, edge in zip(rep["edges"], spec.edges):
        t1, t2, t3 = edge.values
        want = t1 / v_u
        if abs(want) <= 50.0:
            assert abs(m.g_s[e["cs"] + 15] - want) <= 0.5 * 50.0 / 15 + 1e-12
        assert e["realized_sw"] == pytest.approx([m.g_s[e["cs"] + 15] * v_u, m.g_d[e["cd"] + 15] * v_u,
                                                  m.bias[e["ocode"]]])
    n_out = sum(abs(e.values[0]) / v_u > 50.0 + 0.5 * 50 / 15 or abs(e.values[1]) / v_u > 48.0 + 0.5 * 48 / 15
                for e in spec.edges)
    assert rep["clipped"] >= n_out
    with pytest.raises(ValueError, match="fixed amplitude"):
        realize_lin(spec, m, span=0.3, i_u=2e-6)
    cs, cd, o, err, out = m.choose(80.0, 0.0, 0.0, 0.3)          # 80 /V: past the 50 /V table
    assert (cs, cd, o, out) == (15, 0, 8, True) and err == pytest.approx(30.0 * 0.3)


def test_L2_is_dynamic_by_default_for_the_pdks_l2_dynamic_kinds():
    """surrogate_model's default: the s-side current and the lag for the kinds in limits.l2_dynamic (sky130:
    tanh_lin), plain for the others (relu_lin here); explicit flags apply to every kind."""
    from kchip.hw.limits import load_limits
    from kchip.sim.l2 import surrogate_model
    assert load_limits().l2_dynamic == ["tanh_lin"]
    spec = _lin_spec(TANH_P, "tanh_lin")
    rep = {}
    build_netlist(spec, "transistor", "tt", report=rep)
    auto, dyn = surrogate_model(spec, rep).periods[0], surrogate_model(spec, rep, s_side=True, lag=True).periods[0]
    plain = surrogate_model(spec, rep, s_side=False, lag=False).periods[0]
    assert auto.both and auto.lag == dyn.lag > 0 and not plain.both and plain.lag == 0.0
    y = torch.tensor([[0.3], [-0.2], [0.1]], dtype=torch.float64)
    assert torch.equal(auto.forward(0.0, y), dyn.forward(0.0, y))
    rspec, rrep = _lin_spec(), {}
    build_netlist(rspec, "transistor", "tt", report=rrep)
    r = surrogate_model(rspec, rrep).periods[0]
    assert not r.both and r.lag == 0.0


# tanh_lin: slopes of a few per SW volt, so that the chip's V_u (~0.1-0.5 V) asks for several codes of the cell's
# slope table rather than its first step
TANH_P = torch.tensor([[3.0, 2.0, 2.5, 0.0, 1.5], [-2.5, -1.5, -2.0, -1.0, -1.0], [0.3, 0.2, -0.2, 0.4, 0.1]])


@pytest.mark.skipif(not (Path(__file__).parents[1] / "characterization/tanh_lin/tt.json").exists(),
                    reason="no tanh_lin tables")
def test_tanh_lin_transistor_deck():
    spec = _lin_spec(TANH_P, "tanh_lin")
    rep = {}
    text = build_netlist(spec, "transistor", "tt", report=rep)
    assert rep["cell"] == "tanh_lin" and ".subckt kc_tanh_lin" in text
    e0 = next(ln for ln in text.splitlines() if ln.startswith("X_p0_e0_n1_n2"))
    assert e0.split()[-6:-1] == ["vcp", "vcn", "vcm", "vdd", "0"]           # no vk on the tanh cell
    assert rep["i_u"] == pytest.approx(LinCellModel.from_table(
        CodeTable.from_json(Path(__file__).parents[1] / "characterization/tanh_lin/tt.json")).amp)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ngspice") is None, reason="no ngspice")
@pytest.mark.skipif(not (Path(__file__).parents[1] / "characterization/tanh_lin/tt.json").exists(),
                    reason="no tanh_lin tables")
def test_tanh_lin_chip_follows_its_L2_model(tmp_path):
    """3 nodes, 5 tanh_lin cells at tt with the standard-cell sequencer, 2 inferences in one ngspice run: the
    chip's outputs are within 0.03 SW units of the L2 model (tanh_lin surrogates in the ODE)."""
    from chiprun import chip_and_l2
    y, l2, _, _, _ = chip_and_l2(_lin_spec(TANH_P, "tanh_lin"), tmp_path, codelaw=False)
    assert np.max(np.abs(y - l2)) < 0.03, (y.ravel(), l2.ravel())


def test_transistor_run_limit_adds_the_operating_point_allowance(tmp_path, monkeypatch):
    """At the transistor level an ngspice run may take timeout_per_input x its inputs plus OP_ALLOWANCE_S (the
    operating point, once per run); the limit is what run_deck gets."""
    import kchip.sim.simulate as S
    spec = _lin_spec()
    deck = tmp_path / "chip.spice"
    deck.write_text(build_netlist(spec, "transistor", "tt"))

    def spy(deck_text, **kw):          # runs in the worker process: report the limit through the error
        raise S.NgspiceError(f"limit {kw['timeout']}")

    monkeypatch.setattr(S, "run_deck", spy)
    x = np.array([[0.5, -0.5], [-0.8, 0.3]])
    with pytest.raises(S.NgspiceError, match=r"inputs 0\.\.1: limit 3620\.0"):
        S.simulate(deck, spec, x, jobs=1, chunk=2, merge=False, timeout_per_input=10, op_init=False)
    with pytest.raises(S.NgspiceError, match=r"inputs 0\.\.1: limit 10800\.0"):
        S.simulate(deck, spec, x, jobs=1, chunk=2, merge=False, op_init=False)


def test_transistor_run_gets_the_initial_state_pulls(tmp_path, monkeypatch):
    """At the transistor level the deck ngspice gets carries kchip.sim.opinit's pulls, released a quarter of the
    time before the first enable (sequencer control: half a clock); if the state cannot be built, the deck goes
    without them and the reason is kept."""
    import kchip.sim.simulate as S
    spec = _lin_spec()
    deck = tmp_path / "chip.spice"
    deck.write_text(build_netlist(spec, "transistor", "tt"))
    t_clk = read_header(deck.read_text())["sequencer"]["t_clk"]

    def fake_pulls(tb, chip_path, release_s, **kw):     # (runs in the worker process)
        if release_s < 0:
            raise ValueError("no state")
        return f"Bkchip_hint0 a 0 I = 0\n* release {release_s / t_clk:.6f} t_clk\n", {"cell_nodes": 1}

    def spy(deck_text, **kw):
        chip = Path(re.search(r"^\.include (\S+)", deck_text, re.M).group(1)).read_text()
        rel = re.search(r"^\* release (\S+) t_clk$", deck_text, re.M)
        raise S.NgspiceError(f"pulls in deck: {'Bkchip_hint0 a 0 I = 0' in deck_text}; "
                             f"isolated: {'VX_p0_e0_' in chip}; release {rel and rel.group(1)}")

    monkeypatch.setattr(S, "pulls", fake_pulls)
    monkeypatch.setattr(S, "run_deck", spy)
    x = np.array([[0.5, -0.5]])
    with pytest.raises(S.NgspiceError, match=r"pulls in deck: True; isolated: True; release 0\.500000"):
        S.simulate(deck, spec, x, jobs=1, chunk=1)
    with pytest.raises(S.NgspiceError, match=r"pulls in deck: False"):
        S.simulate(deck, spec, x, jobs=1, chunk=1, op_init=False)
    from kchip.sim.ngspice import Plot, SimResult

    def fake_run(deck_text, **kw):      # a run without the pulls, with flat outputs
        assert "Bkchip_hint0" not in deck_text
        saves = re.search(r"^\.save (.*)$", deck_text, re.M).group(1).split()
        vec = {"time": np.array([0.0, 1.0])}
        vec.update({k.lower(): np.full(2, 0.9) for k in saves})
        return SimResult([Plot("tran1", "", vec)], "", 1.0)

    monkeypatch.setattr(S, "pulls", lambda *a, **k: fake_pulls(a[0], a[1], -1.0))
    monkeypatch.setattr(S, "run_deck", fake_run)
    y, info = S.simulate(deck, spec, x, jobs=1, chunk=1)
    assert info["op_init"] == [{"error": "no state"}] and y.shape == (1, 1)
