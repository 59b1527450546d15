"""relu_lin (three-parameter ReLU cell, paper Eq. 12): subcircuit text (pins, unit multipliers, sign wiring,
enable gating), the analysis on a synthetic ideal surface, the surrogate and the code-table export."""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kchip.cells import library as L
from kchip.cells.characterize import KINDS
from kchip.cells.relu_lin import _combos_lin, lin_pins, relu_lin_subckt
from kchip.cells.relu_lin_analysis import analyze_relu_lin
from kchip.pdk import load_pdk

ROOT = Path(__file__).resolve().parents[1] / "characterization" / "relu_lin"


@pytest.fixture(scope="module")
def sub():
    return relu_lin_subckt(load_pdk())


def test_pins_and_registration(sub):
    assert sub.pins == lin_pins(4, 4) == (["s", "d", "en", "gs0", "gs1", "gs2", "gs3", "ngs", "gd0", "gd1", "gd2",
                                          "gd3", "ngd", "o0", "o1", "o2", "o3", "vbn", "vcp", "vcn", "vk", "vcm",
                                          "vdd", "vss"])
    assert sub.text.splitlines()[0].split()[2:] == sub.pins
    assert KINDS["relu_lin"].subckt(load_pdk()).text == sub.text
    assert ".lib" not in sub.text and ".include" not in sub.text


def test_unit_multipliers(sub):
    t = sub.text
    for i in (1, 2):
        for br in ("A", "B"):
            node = f"n{br.lower()}{i}"
            # pair-side diode: 15 units, cascode 15 units; legs 2^k units (same W/L), switch gate = magnitude bit
            assert re.search(rf"^XP{br}{i} \S+ {node} vdd vdd \S+ w=2 l=6 m=15 mult=15$", t, re.M)
            assert re.search(rf"^XP{br}{i}C {node} vcp \S+ vdd \S+ w=2 l=1 m=15 mult=15$", t, re.M)
            for k in range(4):
                mm = "" if k == 0 else f" m={2 ** k} mult={2 ** k}"
                assert re.search(rf"^XP{br}{i}L{k} \S+ {node} vdd vdd \S+ w=2 l=6{mm}$", t, re.M)
                inp = "s" if i == 1 else "d"
                dst = "x" if br == "A" else "nbx"
                assert re.search(rf"^XP{br}{i}L{k}S \S+ g{inp}{k} {dst} vss ", t, re.M)
    assert re.search(r"^XNR x x vss vss \S+ w=1 l=2 m=15 mult=15$", t, re.M)
    # fixed full scale: every output leg switch is on
    assert len(re.findall(r"^XO[SY]S\d \S+ vdd ", t, re.M)) == 8
    # no wider-W ratio devices: every transistor of a given role has one W
    assert not re.search(r"w=(4|8|16) l=6 ", t.split("* bias:")[0])


def test_sign_wiring(sub):
    t = sub.text
    for i, inp, sg in ((1, "s", "ngs"), (2, "d", "ngd")):
        # sign = 0: gate a <- input, gate b <- vcm; sign = 1 swaps (nfet of each tgate on the named control)
        assert re.search(rf"^XTA{i}PN {inp} {sg}b g{i}a vss ", t, re.M)
        assert re.search(rf"^XTA{i}NN vcm {sg} g{i}a vss ", t, re.M)
        assert re.search(rf"^XTB{i}PN vcm {sg}b g{i}b vss ", t, re.M)
        assert re.search(rf"^XTB{i}NN {inp} {sg} g{i}b vss ", t, re.M)
        assert re.search(rf"^XTA{i}PP {inp} {sg} g{i}a vdd ", t, re.M)       # pfet halves: complementary gate
        assert re.search(rf"^XIP{i} {sg}b {sg} vdd vdd ", t, re.M) and re.search(rf"^XIN{i} {sg}b {sg} vss vss ", t, re.M)
        assert re.search(rf"^XM1{i} na{i} g{i}a sa{i} ", t, re.M) and re.search(rf"^XM2{i} nb{i} g{i}b sb{i} ", t, re.M)


def test_enable_steers_the_outputs(sub):
    """Default enable="output" (as relu_diff): tails, bias legs and clamp always on (gates at vdd, no dumps); en
    steers the s legs (ESO to s / DSO to vdd) and the y -> d mirror output (EDO to d / DDO to vss)."""
    t = sub.text
    for i in (1, 2):
        assert re.search(rf"^XSEA{i} sa{i} vdd ta{i} ", t, re.M) and f"XDTA{i} " not in t
    assert re.search(r"^XBEA nc vdd bsa ", t, re.M) and "XDBA " not in t and re.search(r"^XSK kd vdd vdd ", t, re.M)
    assert re.search(r"^XESO s en so vss ", t, re.M) and re.search(r"^XDSO so en vdd vdd ", t, re.M)
    assert re.search(r"^XEDO d enb do vdd ", t, re.M) and re.search(r"^XDDO do enb vss vss ", t, re.M)
    assert "SYD" not in t                  # the d switch of the bias-gated form is not needed behind EDO


def test_enable_bias_option_gates_and_dumps():
    """enable="bias" (the session-3 form) gates the bias paths, dumps them into vdd while off, and puts a
    standard-V_T pfet switch (gate enb) between the y -> d mirror and d."""
    t = relu_lin_subckt(load_pdk(), enable="bias").text
    for i in (1, 2):
        assert re.search(rf"^XSEA{i} sa{i} en ta{i} ", t, re.M) and re.search(rf"^XDTA{i} ta{i} en vdd vdd ", t, re.M)
        assert re.search(rf"^XDTB{i} tb{i} en vdd vdd ", t, re.M)
    assert re.search(r"^XBEA nc en bsa ", t, re.M) and re.search(r"^XBEB nk en bsb ", t, re.M)
    assert re.search(r"^XDBA bsa en vdd vdd ", t, re.M) and re.search(r"^XSK kd en vdd ", t, re.M)
    assert re.search(r"^XPYDC yd vcp ", t, re.M) and re.search(r"^XSYD d enb yd vdd sky130_fd_pr__pfet_01v8 w=1 l=0.5$", t, re.M)
    assert re.search(r"^XIEP enb en vdd vdd ", t, re.M) and re.search(r"^XIEN enb en vss vss ", t, re.M)
    assert "SYD" not in L.relu_diff(load_pdk()).text


def test_relu_diff_pins_unchanged():
    assert L.relu_diff(load_pdk()).pins == L.edge_pins(4, 4)


def test_analysis_recovers_an_ideal_cell():
    kind = KINDS["relu_lin"]
    combos = _combos_lin(kind)
    grid = kind.vcm + np.linspace(-kind.span, kind.span, 7)
    VS, VD = np.meshgrid(grid, grid)
    G, iub = 2.5e-6, 1.8e-7
    i_d = np.stack([np.maximum(G * cs / 15 * (VS - 0.9) + G * cd / 15 * (VD - 0.9) + (o - 8) * iub, 0)
                    for cs, cd, o in combos])
    s, table, ct = analyze_relu_lin(kind, "tt", combos, grid, i_d, i_d.copy(), np.zeros_like(i_d), 1e-12, 1.0)
    assert s["max_dev_pct_fs"] < 0.05 and s["max_dev_table_model_pct_fs"] < 0.05
    assert s["G_s_A_per_V"] == pytest.approx(G, rel=1e-3) and s["i_bias_unit_A"] == pytest.approx(iub, rel=1e-3)
    np.testing.assert_allclose(ct.params["g_s"].value(np.array([-15, -1, 0, 7])), G * np.array([-1, -1 / 15, 0, 7 / 15]),
                               rtol=1e-3, atol=1e-12)
    np.testing.assert_allclose(ct.params["bias"].value(np.array([0, 8, 15])), iub * np.array([-8, 0, 7]),
                               rtol=1e-3, atol=1e-11)
    from kchip.quantize.tables import from_cells_table
    q = from_cells_table(ct)
    assert set(q) == {"relu_lin.g_s", "relu_lin.g_d", "relu_lin.bias"}
    # surrogate: the ideal table law, differentiable
    from kchip.cells.surrogate import ReluLinSurrogate
    sur = ReluLinSurrogate(ct, smooth=False)
    vs = torch.tensor([[1.1, 0.7]], dtype=torch.float64, requires_grad=True)
    vd = torch.tensor([[0.8, 0.9]], dtype=torch.float64)
    i = sur.current_hw(torch.tensor([[15]]), torch.tensor([[-15]]), torch.tensor([[8]]), vs, vd)
    np.testing.assert_allclose(i.detach().numpy(), [[G * 0.3, 0.0]], rtol=1e-3, atol=1e-12)
    i.sum().backward()
    assert vs.grad[0, 0] == pytest.approx(G, rel=1e-3) and vs.grad[0, 1] == 0


@pytest.mark.skipif(not (ROOT / "tt.json").is_file(), reason="no committed relu_lin table")
def test_committed_tables_surrogate_and_figures():
    import json
    from kchip.cells.surrogate import ReluLinSurrogate
    from kchip.cells.tables import CellTable
    t = CellTable.load(ROOT / "tt.npz")
    s = json.loads((ROOT / "tt.json").read_text())["meta"]["summary"]
    sur = ReluLinSurrogate.from_json(ROOT / "tt.json")
    from surfaces import worst_per_combo
    worst = worst_per_combo(sur, s["combos"], t.vs, t.vd, t.i_d).max()
    # the L2 surrogate carries the knee terms fitted on the knee sweeps; the grid is an independent check of them
    assert sur.knee is not None and set(sur.knee) == {"d0", "d2", "d4", "q0", "q1", "uf"}
    assert 100 * worst / s["i_fs_A"] == pytest.approx(s["knee"]["grid_max_dev_pct_fs"], abs=0.02)
    assert s["knee"]["grid_max_dev_pct_fs"] <= 0.5
    plain = ReluLinSurrogate.from_json(ROOT / "tt.json")
    plain.knee = None
    worst0 = worst_per_combo(plain, s["combos"], t.vs, t.vd, t.i_d).max()
    assert 100 * worst0 / s["i_fs_A"] == pytest.approx(s["max_dev_table_soft_pct_fs"], abs=0.02)
    assert s["leakage_pct_of_i_unit"] <= 0.1
    k = s["knee"]
    assert k["fit_max_err_nA"] < 0.5 * k["fit_max_err_nA_before"] and k["heldout_max_err_nA"] < 5.0
    assert {"knee_families", "knee_v", "knee_i_d"} <= set(t.extra)


def test_knee_terms_of_the_relu_lin_surrogate():
    """meta["knee"]: u + (d0 + d2 n^2 + d4 n^4) exp(-max(u, 0) / uf) and I_q = q0 + q1 n (n = (|cs| + |cd|) / 15),
    differentiable."""
    from kchip.cells.surrogate import ReluLinSurrogate
    from kchip.cells.tables import CodeParam, CodeTable
    G = 2.5e-6
    codes = list(range(-15, 16))
    ct = CodeTable("relu_lin", "tt", {"g_s": CodeParam(codes, [G * c / 15 for c in codes]),
                                      "g_d": CodeParam(codes, [G * c / 15 for c in codes]),
                                      "bias": CodeParam(list(range(16)), [0.0] * 16)},
                   meta=dict(knee_current_A=5e-9, vcm_V=0.9,
                             knee=dict(d0=-6e-9, d2=-1e-9, d4=0.5e-9, q0=9e-9, q1=2e-9, uf=200e-9)))
    sur = ReluLinSurrogate(ct)
    vs = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64, requires_grad=True)
    vd = torch.tensor([0.9, 1.0, 1.2], dtype=torch.float64)
    cs, cd, o = torch.tensor([6, 6, 6]), torch.tensor([-6, -6, -6]), torch.tensor([8, 8, 8])
    i = sur.current_hw(cs, cd, o, vs, vd)
    n = 12 / 15
    u = G * 6 / 15 * (vs.detach().numpy() - vd.numpy())
    u = u + (-6e-9 - 1e-9 * n ** 2 + 0.5e-9 * n ** 4) * np.exp(-np.maximum(u, 0) / 200e-9)
    iq = 9e-9 + 2e-9 * n
    np.testing.assert_allclose(i.detach().numpy(), 0.5 * (u + np.sqrt(u * u + 4 * iq * iq)), rtol=1e-12)
    i.sum().backward()
    assert torch.all(vs.grad > 0)
    ct.meta.pop("knee")
    np.testing.assert_allclose(ReluLinSurrogate(ct).current_hw(cs, cd, o, vs, vd).detach().numpy()[1], 5e-9, rtol=1e-9)


@pytest.mark.skipif(shutil.which("ngspice") is None or not (ROOT / "tt.json").is_file(), reason="no ngspice / table")
def test_relu_lin_one_node_transient_settling_at_its_knee_matches_the_L2_ode():
    """One cell enabled at t = 0 charges a 20 pF node (its d input) until its knee, where it stays for ~7 node
    time constants: the L2 ODE (with the knee terms) follows ngspice within 2 % of the swing."""
    from kchip.cells.lin_transient import lin_one_node_transient
    r = lin_one_node_transient("relu_lin", (6, -6, 8), c_farad=20e-12, t_end=150e-6)
    assert r["swing_V"] > 0.2 and r["max_err_pct_swing"] < 2.0, r["max_err_pct_swing"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ngspice") is None, reason="no ngspice")
def test_relu_lin_law_signs_and_enable():
    """Small grid (3 x 3) at tt: theta1 / theta2 follow their sign bits, the bias code adds, en = 0 is off."""
    from kchip.cells.characterize import _header
    from kchip.cells.relu import _split_run
    from kchip.cells.relu_lin import _inst_lin, _tag
    pdk, kind = load_pdk(), KINDS["relu_lin"]
    sub = kind.subckt(pdk)
    combos = [(15, 0, 12), (-15, 0, 12), (0, 15, 12), (0, -15, 12), (0, 0, 12)]
    head = _header(pdk, kind, "tt", sub, "test") + ["Vcm vcm 0 0.9", "Vs s 0 dc 0.9", "Vd d 0 dc 0.9"]
    insts = [(_tag(*c), *c, "en") for c in combos] + [("off", 15, 15, 15, "0")]
    dc, _, _ = _split_run(head, insts, ".dc Vs 0.6 1.2 0.3 Vd 0.6 1.2 0.3", 2,
                          lambda tag, cs, cd, o, en: _inst_lin(kind, sub, tag, cs, cd, o, en=en),
                          cell="relu_lin", point="test grid", expect_points=[9])
    I = {c: dc[f"i(vmd{_tag(*c)})"].reshape(3, 3) for c in combos}      # rows vd, cols vs
    base = I[(0, 0, 12)]
    assert np.all(base > 0.5e-6) and np.ptp(base) < 0.02e-6           # +4 I_ub, flat in vs and vd
    g = lambda a: (a[1, 2] - a[1, 0]) / 0.6                          # d i / d vs at vd = v_cm
    h = lambda a: (a[2, 1] - a[0, 1]) / 0.6                          # d i / d vd at vs = v_cm
    assert g(I[(15, 0, 12)]) > 1.5e-6 and g(I[(-15, 0, 12)]) < -1.5e-6 and abs(h(I[(15, 0, 12)])) < 0.05e-6
    assert h(I[(0, 15, 12)]) > 1.5e-6 and h(I[(0, -15, 12)]) < -1.5e-6 and abs(g(I[(0, 15, 12)])) < 0.05e-6
    assert np.min(I[(15, 0, 12)]) < 0.05e-6                          # rectified below the knee
    assert np.max(np.abs(dc["i(vmdoff)"])) < 1e-3 * kind.i_unit and np.max(np.abs(dc["i(vmsoff)"])) < 1e-3 * kind.i_unit


@pytest.mark.skipif(not (ROOT / "tt.npz").is_file(), reason="no committed relu_lin table")
def test_reanalysis_refits_the_knee_from_the_saved_sweeps(tmp_path):
    """The knee sweeps travel in the npz (CellTable.extra): a reanalysis without SPICE gives the same constants."""
    import json
    import shutil as sh
    from kchip.cells.relu_lin_analysis import reanalyze_relu_lin
    for ext in ("npz", "json"):
        sh.copy(ROOT / f"tt.{ext}", tmp_path / f"tt.{ext}")
    s = reanalyze_relu_lin("tt", out_dir=tmp_path, plots=False)
    ref = json.loads((ROOT / "tt.json").read_text())["meta"]["knee"]
    got = json.loads((tmp_path / "tt.json").read_text())["meta"]["knee"]
    assert set(got) == set(ref)
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-6, abs=1e-15)
    assert s["knee"]["grid_max_dev_pct_fs"] <= 0.5
