"""tanh_lin (three-parameter tanh cell, paper Eq. 13): subcircuit text (pins, blocks, steering), the analysis on a
synthetic ideal surface, the code tables for the quantizer, the L2 surrogate (committed tt table, gradcheck) and
an ngspice smoke test of one cell."""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kchip.cells import library as L
from kchip.cells.characterize import KINDS
from kchip.cells.tanh_lin import _tanh_combos, grid_volts, tanh_lin_pins, tanh_lin_subckt
from kchip.cells.tanh_lin_analysis import analyze_tanh_lin
from kchip.pdk import load_pdk

ROOT = Path(__file__).resolve().parents[1] / "characterization" / "tanh_lin"


@pytest.fixture(scope="module")
def sub():
    return tanh_lin_subckt(load_pdk())


def test_pins_and_registration(sub):
    assert sub.pins == tanh_lin_pins(4, 4) == (["s", "d", "en", "gs0", "gs1", "gs2", "gs3", "ngs", "gd0", "gd1", "gd2",
                                               "gd3", "ngd", "o0", "o1", "o2", "o3", "vbn", "vcp", "vcn", "vcm",
                                               "vdd", "vss"])
    assert sub.text.splitlines()[0].split()[2:] == sub.pins
    assert KINDS["tanh_lin"].subckt(load_pdk()).text == sub.text
    assert ".lib" not in sub.text and ".include" not in sub.text


def test_blocks(sub):
    t = sub.text
    # relu_lin's front end: legs into x / nbx, gate-swap sign
    assert re.search(r"^XPA1L3S \S+ gs3 x vss ", t, re.M) and re.search(r"^XPB2L0S \S+ gd0 nbx vss ", t, re.M)
    assert re.search(r"^XTA1NN vcm ngs g1a vss ", t, re.M)
    # divided bias copies: 14-unit diodes, 1-unit copies into x / nbx
    assert re.search(r"^XPC \S+ nc vdd vdd \S+ w=2 l=6 m=14 mult=14$", t, re.M)
    assert re.search(r"^XPCXC x vcp ", t, re.M) and re.search(r"^XPKXC nbx vcp ", t, re.M)
    # R from x to ref (xhigh poly, 1.6 MOhm drawn = 800 squares of 0.35 um), class-AB ref, clamp, pair, tail
    assert re.search(r"^XRC x ref vss sky130_fd_pr__res_xhigh_po w=0.35 l=280.00$", t, re.M)
    assert re.search(r"^XRFP ref ref vdd vdd ", t, re.M) and re.search(r"^XRFN ref ref vss vss ", t, re.M)
    assert re.search(r"^XCLP x x ref ref sky130_fd_pr__nfet_01v8_lvt ", t, re.M)
    assert re.search(r"^XTM1 ta x tt tt sky130_fd_pr__nfet_01v8_lvt w=16 l=0.5$", t, re.M)
    assert re.search(r"^XTM2 tb ref tt tt ", t, re.M) and re.search(r"^XTTU ttq vbn vss vss .* w=1.022 l=4 m=15 mult=15$", t, re.M)
    # output steering (tanh_diff's stage, prefixed): en only steers; the front end is never gated by en
    assert re.search(r"^XTPADSO d enb topad vdd ", t, re.M) and re.search(r"^XTNASSO s en tonas vss ", t, re.M)
    assert not re.search(r"^X(SEA|SEB|BEA|BEB)\S* \S+ en ", t, re.M)
    assert "vk" not in sub.pins and " vcm " in t


def test_tanh_diff_text_unchanged_by_prefix():
    t = L.tanh_diff(load_pdk()).text
    assert re.search(r"^XPADSO d enb opad vdd ", t, re.M) and "XTPA" not in t


def _ideal(kind, combos, grid, A=0.98e-6, S=70.0, T=0.35):
    VS, VD = np.meshgrid(grid, grid)
    return np.stack([A * np.tanh(S * cs / 15 * (VS - 0.9) + S * cd / 15 * (VD - 0.9) + T * (o - 8))
                     for cs, cd, o in combos])


def test_analysis_recovers_an_ideal_cell():
    kind = KINDS["tanh_lin"]
    combos = _tanh_combos(kind)
    grid = grid_volts(kind)
    i_d = _ideal(kind, combos, grid)
    s, table, ct = analyze_tanh_lin(kind, "tt", combos, grid, i_d, i_d.copy(), np.zeros_like(i_d), 1e-15, 1.0,
                                  fit_surrogate=False)
    assert s["max_dev_pct_fs"] < 0.05 and s["max_dev_table_model_pct_fs"] < 0.05
    assert s["max_dev_surrogate_pct_fs"] < 0.05 and s["max_dev_surrogate_heldout_mixed_pct_fs"] < 0.05
    assert s["amp_A"] == pytest.approx(0.98e-6, rel=1e-3) and s["S_s_per_V"] == pytest.approx(70, rel=1e-3)
    np.testing.assert_allclose(ct.params["slope_s"].value(np.array([-15, -1, 0, 7])), 70 * np.array([-1, -1 / 15, 0, 7 / 15]),
                               rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(ct.params["offset"].value(np.array([0, 8, 15])), 0.35 * np.array([-8, 0, 7]),
                               rtol=1e-3, atol=1e-4)
    assert s["theta1_max_per_V"] == pytest.approx(70, rel=1e-3)
    from kchip.quantize.tables import from_cells_table
    q = from_cells_table(ct)
    assert set(q) == {"tanh_lin.slope_s", "tanh_lin.slope_d", "tanh_lin.offset"}
    assert q["tanh_lin.slope_s"].kind == "slope" and q["tanh_lin.offset"].kind == "offset"
    assert q["tanh_lin.offset"].signed is False and q["tanh_lin.slope_d"].signed is True


def test_offset_table_survives_saturated_flat_combos():
    """The bias series (0, 0, o) is flat: i = A tanh(theta3). At o = 0 / 15 it sits within ~0.3 % of A, where a small
    dependence on vd (the d pin's output resistance; here +-0.6 % of A over the range, past A at one end) moves the
    per-combo theta3 far; the offset table weights those rows by sech^2(theta3) and keeps equal steps (session 12:
    unweighted, the committed tt table's steps alternated 0.59 / 0.19)."""
    kind = KINDS["tanh_lin"]
    combos = _tanh_combos(kind)
    grid = grid_volts(kind)
    i_d = _ideal(kind, combos, grid, T=0.42)
    VS, VD = np.meshgrid(grid, grid)
    for j, (cs, cd, o) in enumerate(combos):
        if cs == 0 and cd == 0:
            i_d[j] += 0.98e-6 * 0.006 * (VD - 0.9) / 0.3
    s, table, ct = analyze_tanh_lin(kind, "tt", combos, grid, i_d, i_d.copy(), np.zeros_like(i_d), 1e-15, 1.0,
                                  fit_surrogate=False)
    off = ct.params["offset"].value(np.arange(16))
    assert np.all(np.diff(off) > 0.3) and np.ptp(np.diff(off)) < 0.006, off      # unweighted: 0.017
    np.testing.assert_allclose(off[4:13], 0.42 * (np.arange(4, 13) - 8), atol=0.03)
    assert s["offset_table_resid"] < 0.005                                          # unweighted: 0.042


def test_surrogate_ideal_and_gradcheck():
    kind = KINDS["tanh_lin"]
    combos = _tanh_combos(kind)
    grid = grid_volts(kind)
    i_d = _ideal(kind, combos, grid)
    _, _, ct = analyze_tanh_lin(kind, "tt", combos, grid, i_d, i_d.copy(), np.zeros_like(i_d), 1e-15, 1.0,
                                  fit_surrogate=False)
    from kchip.cells.surrogate import TanhLinSurrogate
    sur = TanhLinSurrogate(ct)
    vs = torch.tensor([[0.91, 0.85]], dtype=torch.float64)
    vd = torch.tensor([[0.9, 0.93]], dtype=torch.float64)
    i = sur.current_hw(torch.tensor([[15]]), torch.tensor([[-15]]), torch.tensor([[9]]), vs, vd)
    want = 0.98e-6 * np.tanh(70 * (vs.numpy() - 0.9) - 70 * (vd.numpy() - 0.9) + 0.35)
    np.testing.assert_allclose(i.numpy(), want, rtol=2e-3, atol=1e-10)
    f = lambda a, b: sur.current_hw(torch.tensor([[3, -7]]), torch.tensor([[5, 2]]), torch.tensor([[8, 11]]), a, b) * 1e6
    a = (0.9 + 0.05 * torch.randn(1, 2, dtype=torch.float64)).requires_grad_()
    b = (0.9 + 0.05 * torch.randn(1, 2, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(f, (a, b))
    fn = sur.law(i_u=1e-6, v_u=0.05, v_cm=0.9)                 # SW units: codes (3, E), voltages (E, B)
    out = fn(torch.tensor([[15], [0], [8]]), torch.tensor([[0.2]], dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
    assert float(out) == pytest.approx(0.98 * np.tanh(70 * 0.01), rel=2e-3)
    with pytest.raises(ValueError, match="tanh_lin/tt"):
        sur.current_hw(torch.tensor(16), torch.tensor(0), torch.tensor(8), vs, vd)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ngspice") is None, reason="no ngspice")
def test_ngspice_smoke_one_cell():
    """One enabled cell at (15, 0, 8), one at (-15, 0, 12) and a disabled one, vs = v_cm + {-20, 0, 20} mV (tt):
    the steep programmable tanh (theta1 ~ 70 /V), its sign bit and offset code, and en = 0 -> no current.
    ~18 s of ngspice CPU (the operating point needs gmin stepping), 50 s at load 6: slow."""
    from kchip.cells.tanh_lin import _head, _inst
    from kchip.sim.ngspice import run_deck
    pdk, kind = load_pdk(), KINDS["tanh_lin"]
    sub = kind.subckt(pdk)
    lines = _head(pdk, kind, "tt", sub, "smoke") + ["Vcm vcm 0 0.9", "Vs s 0 dc 0.9", "Vd d 0 dc 0.9"]
    lines += _inst(kind, sub, "a", 15, 0, 8) + _inst(kind, sub, "b", -15, 0, 12) + _inst(kind, sub, "off", 15, 0, 8, en="0")
    res = run_deck("\n".join(lines + [".dc Vs 0.88 0.92 0.02", ".end"]), cell="tanh_lin", point="smoke", expect_points=[3])
    dc = res.plots[0]
    a, b = np.real(dc["i(vmda)"]), np.real(dc["i(vmdb)"])
    assert a[0] < -0.7e-6 and abs(a[1]) < 0.15e-6 and a[2] > 0.7e-6           # ~ tanh(-+1.4), tanh(0)
    assert b[0] > 0.9e-6 and b[2] < a[2] and b[1] > 0.8e-6                     # sign swapped, +4 offset steps
    assert np.max(np.abs(np.real(dc["i(vmsa)"]) - a)) < 0.02e-6                 # KCL: s sinks what d gets
    assert np.max(np.abs(dc["i(vmdoff)"])) < 1e-3 * kind.i_unit and np.max(np.abs(dc["i(vmsoff)"])) < 1e-3 * kind.i_unit


@pytest.mark.skipif(not (ROOT / "tt.json").is_file(), reason="no committed tanh_lin table")
def test_committed_tt_table_surrogate_and_quantizer():
    """The surrogate reproduces the committed tt surfaces within the figure the characterization states
    (max_dev_surrogate_pct_fs; its 0.5 % target is missed, docs/results.md), and the quantizer takes the json."""
    import json
    from kchip.cells.surrogate import TanhLinSurrogate
    from kchip.cells.tables import CellTable, CodeTable
    from kchip.quantize.tables import from_cells_table
    t = CellTable.load(ROOT / "tt.npz")
    s = json.loads((ROOT / "tt.json").read_text())["meta"]["summary"]
    sur = TanhLinSurrogate.from_json(ROOT / "tt.json")
    from surfaces import worst_per_combo
    worst = worst_per_combo(sur, s["combos"], t.vs, t.vd, t.i_d).max()
    assert 100 * worst / s["i_fs_A"] == pytest.approx(s["max_dev_surrogate_pct_fs"], abs=0.02)
    assert s["leakage_pct_of_i_unit"] <= 0.1
    q = from_cells_table(CodeTable.from_json(ROOT / "tt.json"))
    assert max(q["tanh_lin.slope_s"].vmax, -q["tanh_lin.slope_s"].vmin) == pytest.approx(s["theta1_max_per_V"], rel=1e-6)
    assert q["tanh_lin.offset"].vmin == pytest.approx(s["theta3_min"], rel=1e-6)


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
@pytest.mark.parametrize("codes", [(15, -15, 8), (3, -3, 5)])
def test_one_node_transient_matches_surrogate_ode(codes):
    """One tanh_lin cell enabled at t = 0 charges an 80 pF node from V_cm - 0.1 V towards its equilibrium
    (cd < 0): ngspice vs the ODE C dv/dt = L2 surrogate(v_in, v) with the same codes, within 2 % of the swing
    (measured 0.99 / 1.38 %); the end points agree within 0.2 %. 40 pF doubles the error (the cell's X-node lag,
    ~0.3 us, against the node's tau: docs/results.md)."""
    from kchip.cells.lin_transient import tanh_lin_one_node_transient
    o = tanh_lin_one_node_transient(codes=codes, c_farad=80e-12)
    assert o["swing_V"] > 0.1
    assert o["max_err_pct_swing"] <= 2.0, o["max_err_pct_swing"]
    assert o["final_err_pct_swing"] <= 0.2, o["final_err_pct_swing"]
    assert abs(o["c_node_F"] - 80e-12) < 2e-12        # MIM + the cell's pin: a few tens of fF


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_frontend_sweep_reproduces_committed_residual():
    """The front-end sweep (X held, one input at full code and each sign) gives the committed fine residual: zero at
    v_cm, within 0.3 mV over v_cm +- 0.3 V (session 12's front end; the 16/1 pairs of sessions 4-11 reached 1.1 mV),
    its even part at +-0.3 V - what a cancellation line (15, 15) at the grid's corners sees, times ~75 /V - within
    0.15 mV (it was 0.9-1.1 mV), and the two signs of one input differ (the gate swap puts the input on the other
    device, the B path adds the nbx mirror) by less than 0.1 mV."""
    from kchip.cells.tables import CellTable
    from kchip.cells.tanh_lin import frontend_sweep
    from kchip.pdk import load_pdk
    kind = KINDS["tanh_lin"]
    fe = frontend_sweep(load_pdk(), kind, "tt")
    x, r = fe["x_V"], fe["residual_V"]
    saved = CellTable.load(ROOT / "tt.npz").extra
    np.testing.assert_allclose(x, saved["frontend_x_V"], atol=1e-9)
    np.testing.assert_allclose(r, saved["frontend_residual_V"], atol=2e-6)
    assert r.shape == (2, 2, len(x)) and np.abs(np.interp(0.0, x, r[0, 0])) < 1e-9
    inner = np.abs(x) <= 0.3 + 1e-9
    assert 0.05e-3 < np.abs(r[:, :, inner]).max() < 0.3e-3
    even = (np.interp(0.3, x, r[0, 0]) + np.interp(-0.3, x, r[0, 0])) / 2
    assert abs(even) < 0.15e-3
    assert 0.01e-3 < np.abs(r[0, 0] - r[0, 1])[inner].max() < 0.1e-3


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_pin_capacitance_is_the_netlisters():
    """The s / d pin capacitance the chip netlister subtracts from each node's MIM capacitor (`PIN_CAP_F`) is the
    cell's, measured (.ac, cell disabled, codes (15, 15, 8), tt): mostly the 128/4 input pairs' gates."""
    from kchip.cells.relu_lin import pin_caps_lin
    from kchip.netlist.transistor import PIN_CAP_F
    c = pin_caps_lin(load_pdk(), KINDS["tanh_lin"], "tt")
    for pin in ("s", "d"):
        assert c[pin] == pytest.approx(PIN_CAP_F["tanh_lin"][pin], rel=0.05)
