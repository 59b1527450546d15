"""Measured surfaces of a chip's own code triples (kchip.cells.code_surfaces) and the L2 they refine
(kchip.sim.l2.surrogate_model(code_surfaces=...)): ngspice tables cached per triple, L2 equal to the measured
surfaces at the table's grid points, equal to the structural L2 where the residual is zero, errors by name."""
import shutil

import numpy as np
import pytest
import torch

from kchip.cells.code_surfaces import CodeSurfaces, measure_code_surfaces
from kchip.netlist.lincell import realize_lin
from kchip.netlist.transistor import cell_table_path
from kchip.quantize.core import quantize_model
from kchip.sim import l2 as L

from test_cellaware_lin import _cell, _model, _scaling

pytestmark = pytest.mark.skipif(not cell_table_path("tanh_lin", "tt").exists(), reason="no tanh_lin tables")
needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")


def _chip():
    """A 3-node tanh_lin chip (9 edges) realized on the tt cell: (spec, netlister report, instantiated triples)."""
    model = _model(5)
    sc, lim = _scaling(model)
    spec = quantize_model(model, sc, lim, num_inputs=2).spec
    rep = dict(realize_lin(spec, _cell(), span=0.3), corner="tt")
    tri = sorted({(e["cs"], e["cd"], e["ocode"]) for e in rep["edges"] if e["code"]})
    return spec, rep, tri


def _synthetic(tri, d_nA: float, s_nA: float) -> CodeSurfaces:
    """Surfaces = the structural surrogate on the tanh_lin grid + d_nA (i_d) and + d_nA + s_nA (i_s) per triple."""
    from kchip.cells.characterize import KINDS
    from kchip.cells.tanh_lin import grid_volts
    sur = L.load_surrogate("tanh_lin", "tt")
    g = torch.as_tensor(grid_volts(KINDS["tanh_lin"]))
    VD, VS = torch.meshgrid(g, g, indexing="ij")
    with torch.no_grad():
        i_d = np.stack([sur.current_hw(*[torch.tensor(c) for c in t], VS, VD).numpy() for t in tri]) + d_nA * 1e-9
    return CodeSurfaces("tanh_lin", "tt", g.numpy(), g.numpy(), tri, i_d, i_d + s_nA * 1e-9)


def test_L2_with_code_surfaces_is_the_measured_table_at_its_grid_points_and_the_structural_L2_without_residual():
    spec, rep, tri = _chip()
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    tight = dict(rtol=1e-9, atol=1e-11)
    with torch.no_grad():
        ref = L.surrogate_model(spec, rep)(x, **tight)
        same = L.surrogate_model(spec, rep, code_surfaces={"tanh_lin": _synthetic(tri, 0.0, 0.0)})(x, **tight)
        # zero residual, s side = i_d: the L2 with the mean s-side surface turned off
        ref_ns = L.surrogate_model(spec, rep, s_side=False, lag=True)(x, **tight)
    assert torch.allclose(same, ref_ns, rtol=0, atol=1e-9) and not torch.allclose(same, ref, atol=1e-6)
    # with a residual: the period's currents at the grid points are the measured ones (A / I_u), s side its own
    cs = _synthetic(tri, 5.0, 2.0)
    per = L.surrogate_model(spec, rep, code_surfaces={"tanh_lin": cs}).periods[0]
    assert per.both and per.lag > 0
    on = [j for j, e in enumerate(per.edges.tolist()) if per.on[j]]
    i_u, v_u, v_cm = rep["i_u"], rep["v_u"], spec.scaling.v_cm
    for a, b in ((3, 5), (4, 4), (7, 2)):                 # grid indices (vs, vd)
        vs = torch.full((per.num_edges,), (cs.vs[a] - v_cm) / v_u, dtype=torch.float64)
        vd = torch.full((per.num_edges,), (cs.vd[b] - v_cm) / v_u, dtype=torch.float64)
        with torch.no_grad():
            i_d, i_s = per.pair(vs, vd)
        for j in on:
            row = tuple(int(c) for c in per.codes[:, j])
            k = cs.index(row)
            assert float(i_d[j]) * i_u == pytest.approx(cs.i_d[k, b, a], rel=0, abs=1e-15)
            assert float(i_s[j] - i_d[j]) * i_u == pytest.approx(2e-9, rel=1e-6)
    # differentiable in the node voltages
    vs = torch.zeros(per.num_edges, dtype=torch.float64, requires_grad=True)
    per.pair(vs, torch.zeros_like(vs))[0].sum().backward()
    assert torch.isfinite(vs.grad).all() and vs.grad.abs().sum() > 0


def test_L2_code_surfaces_refuse_a_triple_that_was_not_measured():
    spec, rep, tri = _chip()
    with pytest.raises(ValueError, match=r"L2 code surfaces: periods\[0\], edge \d+: code triple \(.*\) of tanh_lin "
                                         r"was not measured at tt"):
        L.surrogate_model(spec, rep, code_surfaces={"tanh_lin": _synthetic(tri[1:], 0.0, 0.0)})


def test_chip_code_surfaces_asks_for_the_chips_instantiated_triples(monkeypatch):
    spec, rep, tri = _chip()
    asked = {}

    def fake(cell, corner, combos, jobs=2, log=None, grid_points=None):
        asked.update(cell=cell, corner=corner, combos=list(combos), grid_points=grid_points)
        return _synthetic(list(combos), 0.0, 0.0)
    monkeypatch.setattr("kchip.cells.code_surfaces.measure_code_surfaces", fake)
    got = L.chip_code_surfaces(spec, rep)                       # the PDK's l2_code_surfaces: [tanh_lin]
    assert set(got) == {"tanh_lin"} and asked["corner"] == "tt" and sorted(asked["combos"]) == tri
    assert L.chip_code_surfaces(spec, rep, kinds=[]) == {} and asked["grid_points"] is None
    L.chip_code_surfaces(spec, rep, grid_points=17)
    assert asked["grid_points"] == 17


@needs_ngspice
def test_measure_code_surfaces_runs_ngspice_once_per_triple_and_caches(tmp_path):
    tri = [(1, -1, 8), (2, 0, 8)]
    cs = measure_code_surfaces("tanh_lin", "tt", tri, jobs=1, cache=tmp_path)
    assert cs.info["measured"] == 2 and cs.i_d.shape == (2, 9, 9) and np.isfinite(cs.i_s).all()
    assert sorted(p.name for p in tmp_path.glob("tt_*/*.npz")) == ["sp1dm1o8.npz", "sp2dp0o8.npz"]
    # the measured surface is the cell: close to the structural surrogate (fitted to other triples), not equal
    sur = L.load_surrogate("tanh_lin", "tt")
    VD, VS = torch.meshgrid(torch.as_tensor(cs.vd), torch.as_tensor(cs.vs), indexing="ij")
    with torch.no_grad():
        model = sur.current_hw(torch.tensor(1), torch.tensor(-1), torch.tensor(8), VS, VD).numpy()
    dev = np.abs(cs.i_d[cs.index((1, -1, 8))] - model).max() / sur.i_fs
    assert 1e-5 < dev < 0.03, dev
    again = measure_code_surfaces("tanh_lin", "tt", tri[::-1] + [(2, 0, 8)], jobs=1, cache=tmp_path)
    assert again.info["measured"] == 0 and again.info["cached"] == 2
    assert np.array_equal(again.i_d, cs.i_d) and np.array_equal(again.i_s, cs.i_s)


@needs_ngspice
def test_measure_code_surfaces_on_a_finer_grid_holds_the_characterization_grid(tmp_path):
    tri = [(3, -2, 9)]
    c9 = measure_code_surfaces("tanh_lin", "tt", tri, jobs=1, cache=tmp_path)
    c17 = measure_code_surfaces("tanh_lin", "tt", tri, jobs=1, cache=tmp_path, grid_points=17)
    assert c17.info["measured"] == 1 and c17.i_d.shape == (1, 17, 17)          # its own cache entry
    assert np.allclose(c17.vs[::2], c9.vs, atol=1e-12)
    # the same operating points through a different DC path: equal within 0.02 % of I_T
    assert np.abs(c17.i_d[0][::2, ::2] - c9.i_d[0]).max() < 2e-10
    assert np.abs(c17.i_s[0][::2, ::2] - c9.i_s[0]).max() < 2e-10


def test_measure_code_surfaces_names_bad_requests(tmp_path):
    with pytest.raises(ValueError, match="code surfaces: cell kind 'relu_diff' is not supported"):
        measure_code_surfaces("relu_diff", "tt", [(1, 8)], cache=tmp_path)
    with pytest.raises(ValueError, match=r"code surfaces tanh_lin/tt: code triple \(16, 0, 8\) is outside"):
        measure_code_surfaces("tanh_lin", "tt", [(16, 0, 8)], cache=tmp_path)
    with pytest.raises(ValueError, match=r"code surfaces tanh_lin/tt: grid_points=2; an integer >= 3"):
        measure_code_surfaces("tanh_lin", "tt", [(1, 0, 8)], cache=tmp_path, grid_points=2)


def test_flow_simulate_L2_is_refined_by_the_chips_code_surfaces(tmp_path, monkeypatch):
    """The flow's transistor-level L2 (`_l2_transistor`): default L2 with the chip's code surfaces, and the
    structural L2 reported beside it; `simulate.l2_code_surfaces: false` leaves them out."""
    import json
    from kchip.flow import FlowContext
    from kchip.sim.flowstage import _l2_transistor
    from kchip.flowschema import section
    from kchip.sim.simulate import compare
    spec, rep, tri = _chip()
    rep["instantiated"] = sum(1 for e in rep["edges"] if e["code"])
    (tmp_path / "cells.json").write_text(json.dumps(rep))
    ctx = FlowContext("t", tmp_path, tmp_path, {"netlist": {"cells": "cells.json"}, "quantize": {}})
    monkeypatch.setattr("kchip.cells.code_surfaces.measure_code_surfaces",
                        lambda cell, corner, combos, jobs=2, log=None, grid_points=None: _synthetic(list(combos), 3.0, 1.0))
    curve = (np.array([0.5, 1.3]), np.array([400.0, 400.0]))
    monkeypatch.setattr("kchip.cells.switch_char.tgate_r_on_curve", lambda corner, w, l_: curve)
    x = np.random.default_rng(0).standard_normal((4, 2))
    tight = dict(rtol=1e-9, atol=1e-11)
    with torch.no_grad():        # a "chip" that is exactly the refined L2
        y = L.surrogate_model(spec, rep, code_surfaces={"tanh_lin": _synthetic(tri, 3.0, 1.0)}, load_switch=curve)(
            torch.tensor(x), **tight).numpy()
    cmp = lambda a, b: {k: v for k, v in compare(a, b).items() if k != "per_output"}
    info = {"wall_s": [1.0], "cpu_s": [1.0]}
    res, l2 = _l2_transistor(ctx, spec, x, y, None, y, info, cmp, tight, section("simulate"))
    assert res["vs_L2"]["rms_pct_fs"] < 1e-6 and res["vs_L2_structural"]["rms_pct_fs"] > 1e-3
    assert np.allclose(l2, y, atol=1e-9)                    # the L2 outputs themselves (levels.npz) come back
    assert "tanh_lin" in res["L2_code_surfaces"] and res["L2_load_switch"]["r_on_ohm"] == [400.0, 400.0]
    off, _ = _l2_transistor(ctx, spec, x, y, None, y, info, cmp, tight, {"l2_code_surfaces": False,
                                                                      "l2_load_switch": False})
    assert "vs_L2_structural" not in off and off["vs_L2"]["rms_pct_fs"] == pytest.approx(
        res["vs_L2_structural"]["rms_pct_fs"])


def test_load_switch_start_shifts_the_first_period_by_R_on_C_over_tau_times_its_currents():
    """The load phase: the first executed period's nodes start at y + R_on(v) C / tau f(y) (cells on, nodes held);
    R_on = 0 is the plain model, a reverse run and later periods are not shifted."""
    spec, rep, tri = _chip()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    v = np.array([0.5, 0.9, 1.3])
    base = L.surrogate_model(spec, rep)
    zero = L.surrogate_model(spec, rep, load_switch=(v, np.zeros(3)))
    r_on = np.array([100.0, 200.0, 300.0])
    m = L.surrogate_model(spec, rep, load_switch=(v, r_on))
    per = m.periods[0]
    y = torch.zeros(per.num_nodes, 5, dtype=torch.float64)
    y[:2] = x.T
    with torch.no_grad():
        got = per.start(y)
        eps = np.interp(spec.scaling.v_cm + rep["v_u"] * y.numpy(), v, r_on) * rep["c_f"] / rep["tau_s"]
        want = y + torch.as_tensor(eps) * per._rhs(0.0, y)
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-15) and not torch.allclose(got, y)
        assert torch.equal(zero(x), base(x)) and not torch.allclose(m(x), base(x), atol=1e-6)
        assert torch.equal(m(x, reverse=True), base(x, reverse=True))


def test_netlister_records_its_load_switch_and_older_reports_fall_back_to_its_rule():
    from kchip.netlist.transistor import _switch_width, load_switch_size, transistor_netlist
    spec, _, _ = _chip()
    _, rep = transistor_netlist(spec)
    assert rep["load_switch"] == {"w_um": _switch_width(rep["c_f"], 0.05 * min(spec.scaling.period_s)), "l_um": 0.15}
    old = {k: v for k, v in rep.items() if k != "load_switch"}
    assert load_switch_size(spec, old) == (rep["load_switch"]["w_um"], 0.15)


@needs_ngspice
def test_tgate_on_resistance_from_ngspice():
    from kchip.cells.switch_char import tgate_r_on, tgate_r_on_curve
    r = tgate_r_on("tt", 50.0)
    assert 60.0 < r < 300.0                               # 131 Ohm measured (docs/netlist.md)
    assert tgate_r_on("tt", 5.0) > 5 * r                  # narrower: higher
    v, rr = tgate_r_on_curve("tt", 50.0, span=0.1, n=3)
    assert rr[0] < rr[1] < rr[2] and rr[1] == pytest.approx(r)     # the pfet (2x) is the weaker half above V_cm
