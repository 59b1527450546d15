"""Identical parallel edge cells merged into one instance of a scaled cell copy (kchip.sim.merge), for simulation
only."""
import shutil

import numpy as np
import pytest

from kchip.sim.merge import isolate_cell_pins, merge_parallel_cells

DECK = """* chip
.include /x/sky130_tt_abc.spice
.subckt kc_cell s d en b0 b1
* a comment
XM1 s en d 0 sky130_fd_pr__nfet_01v8 w=1 l=1
XM2 s b0 d 0 sky130_fd_pr__pfet_01v8_lvt__k3 w=2 l=6 m=4 mult=4
XR1 s d 0 sky130_fd_pr__res_xhigh_po w=0.35 l=10
.ends kc_cell
.subckt kchip_core n1 n2 en_0 vdd
X_p0_e0_n0_n1 vcm n1 en_0 vdd 0 kc_cell
X_p0_e1_n0_n1 vcm n1 en_0 0 vdd kc_cell
X_p0_e2_n0_n1 vcm n1 en_0 vdd 0 kc_cell
X_p1_e3_n1_n2 n1 n2 en_1 vdd 0 kc_cell
X_p0_e4_n0_n1 vcm n1 en_0 vdd 0 kc_cell
X_p0_e5_n0_n1 vcm n1 en_0 0 vdd kc_cell w=2
XC1 n1 0 kc_cap
.ends kchip_core
X_p0_e9_n0_n1 vcm n1 en_0 vdd 0 kc_cell
"""


def test_groups_identical_instances_inside_the_core_only():
    new, st = merge_parallel_cells(DECK)
    lines = new.splitlines()
    assert "X_p0_e0_n0_n1 vcm n1 en_0 vdd 0 kc_cell__x3" in lines            # e0, e2, e4: same nets
    assert "* 3 identical parallel cells as one: X_p0_e0_n0_n1 X_p0_e2_n0_n1 X_p0_e4_n0_n1" in lines
    assert "X_p0_e1_n0_n1 vcm n1 en_0 0 vdd kc_cell" in lines               # other code pins
    assert "X_p1_e3_n1_n2 n1 n2 en_1 vdd 0 kc_cell" in lines                # other nodes / period
    assert "X_p0_e5_n0_n1 vcm n1 en_0 0 vdd kc_cell w=2" in lines           # has parameters: untouched
    assert lines[-1] == "X_p0_e9_n0_n1 vcm n1 en_0 vdd 0 kc_cell"           # outside kchip_core: untouched
    assert not any(ln.startswith("X_p0_e2") or ln.startswith("X_p0_e4") for ln in lines)
    assert st["cells"] == 5 and st["instances"] == 3 and st["merged_groups"] == 1
    assert st["scaled_cells"] == ["kc_cell__x3"]
    # the scaled copy: transistor multipliers x3, the resistor three times, defined before the core
    i = lines.index(".subckt kc_cell__x3 s d en b0 b1")
    assert i < lines.index(".subckt kchip_core n1 n2 en_0 vdd")
    body = lines[i + 1:lines.index(".ends kc_cell__x3")]
    assert "XM1 s en d 0 sky130_fd_pr__nfet_01v8 w=1 l=1 m=3 mult=3" in body
    assert "XM2 s b0 d 0 sky130_fd_pr__pfet_01v8_lvt__k3 w=2 l=6 m=12 mult=12" in body
    assert [b for b in body if b.startswith("XR1")] == [f"XR1__r{j} s d 0 sky130_fd_pr__res_xhigh_po w=0.35 l=10"
                                                        for j in range(3)]
    assert ".subckt kc_cell s d en b0 b1" in lines                          # the original stays for the others


def test_isolate_puts_each_cell_pin_on_its_own_net_behind_a_zero_volt_source():
    new, st = isolate_cell_pins(DECK)
    lines = new.splitlines()
    assert "X_p0_e0_n0_n1 X_p0_e0_n0_n1_p0 X_p0_e0_n0_n1_p1 X_p0_e0_n0_n1_p2 X_p0_e0_n0_n1_p3 0 kc_cell" in lines
    assert "VX_p0_e0_n0_n1_p0 X_p0_e0_n0_n1_p0 vcm 0" in lines
    assert "VX_p0_e0_n0_n1_p3 X_p0_e0_n0_n1_p3 vdd 0" in lines
    assert not any(ln.startswith("VX_p0_e0_n0_n1_p4") for ln in lines)      # ground pin: as it was
    assert "X_p0_e5_n0_n1 vcm n1 en_0 0 vdd kc_cell w=2" in lines           # parameters: untouched
    assert lines[-1] == "X_p0_e9_n0_n1 vcm n1 en_0 vdd 0 kc_cell"           # outside kchip_core: untouched
    assert st == {"isolated_instances": 5, "isolating_sources": 5 * 4}


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_isolated_deck_has_the_same_operating_point():
    """A 0 V source is a wire: every node of a small nonlinear chip keeps its voltage to the last digit printed."""
    from kchip.sim.ngspice import run_deck
    chip = """.model dd d is=1e-14
.subckt kc_cell s d en vdd vss
R1 vdd m 10k
D1 m vss dd
R2 m s 20k
G1 d vss s vss 1e-5
R3 en d 50k
.ends kc_cell
.subckt kchip_core vdd n1 n2
R1 n1 0 10k
R2 n2 0 10k
X_p0_e0_n1_n2 n1 n2 vdd vdd 0 kc_cell
X_p0_e1_n2_n1 n2 n1 vdd vdd 0 kc_cell
.ends kchip_core
"""
    tb = "\nVdd vdd 0 1.8\nXcore vdd n1 n2 kchip_core\n.op\n.end\n"
    a = run_deck("* plain\n" + chip + tb).plots[0]
    b = run_deck("* isolated\n" + isolate_cell_pins(chip)[0] + tb).plots[0]
    names = [k for k in a.vectors if k.startswith("v(")]
    assert "v(xcore.x_p0_e0_n1_n2.m)" in names and "v(n1)" in names
    for k in names:
        assert b[k][0] == pytest.approx(a[k][0], rel=1e-9, abs=1e-12), k


def test_refuses_a_mismatch_corner():
    with pytest.raises(ValueError, match="mismatch"):
        merge_parallel_cells(DECK.replace("sky130_tt_abc", "sky130_tt_mm_abc"))


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_scaled_cell_equals_separate_copies():
    """ngspice: three tanh_lin cells (157 transistors, nested m= legs, 3 poly resistors each) side by side between
    the same nets carry the same current as one instance of the cell scaled by 3, along a vd sweep. (ngspice's
    `X... m=3` did not: 0.8x off at mid transition under ngbehavior=hsa.)"""
    from kchip.cells import tanh_lin as T
    from kchip.cells.characterize import KINDS
    from kchip.cells.relu_lin import _code_bits
    from kchip.pdk import load_pdk
    from kchip.sim.merge import _scaled, _subckt_body
    from kchip.sim.ngspice import run_deck
    pdk, kind = load_pdk(), KINDS["tanh_lin"]
    sub = kind.subckt(pdk)
    pins = " ".join(["s", "dm", "en", *_code_bits(6, 4), *_code_bits(-5, 4), *["vdd", "0", "0", "vdd"],
                     *T.BIAS_PINS, "vcm", "vdd", "0"])
    head = T._head(pdk, kind, "tt", sub, "scale check") + [f"Vcm vcm 0 {kind.vcm}", "Vs s 0 0.95", "Vd d 0 0.9",
                                                          "Vmd dm d 0"]
    scaled = "\n".join(_scaled(*_subckt_body(sub.text.splitlines(), sub.name), sub.name, 3))
    sweep = [".dc Vd 0.7 1.1 0.05", ".end"]
    three = run_deck("\n".join(head + [f"X{k} {pins} {sub.name}" for k in range(3)] + sweep)).plots[0]
    one = run_deck("\n".join(head + [scaled, f"X0 {pins} {sub.name}__x3"] + sweep)).plots[0]
    i3, i1 = np.real(three["i(vmd)"]), np.real(one["i(vmd)"])
    assert np.max(np.abs(i3)) > 2e-6                       # three cells conduct (~ 3 x 1 uA at the ends)
    # equal within the solver tolerance (reltol 1e-3 at the steepest point: 0.27 nA of 3 uA measured)
    np.testing.assert_allclose(i1, i3, rtol=1e-4, atol=1e-9)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_chip_outputs_equal_with_and_without_merging(tmp_path):
    """A 3-node tanh_lin chip whose edge 1 -> 2 appears three times with the same parameters (so the same codes):
    `simulate` merges the three cells into one scaled instance; the outputs equal the unmerged chip's within the
    transient's tolerance."""
    import torch
    from test_netlist_lincell import TANH_P, _lin_spec
    from kchip.netlist import build_netlist
    from kchip.sim.simulate import simulate
    p = torch.cat([TANH_P, TANH_P[:, :1], TANH_P[:, :1]], dim=1)
    spec = _lin_spec(p, "tanh_lin", edges=[[1, 2], [2, 3], [3, 1], [0, 3], [2, 1], [1, 2], [1, 2]])
    deck = tmp_path / "chip.spice"
    deck.write_text(build_netlist(spec, "transistor", "tt"))
    x = np.array([[0.5, -0.5], [-0.8, 0.3]])
    ym, im = simulate(deck, spec, x, "forward", jobs=1, chunk=len(x))
    yu, iu = simulate(deck, spec, x, "forward", jobs=1, chunk=len(x), merge=False)
    assert im["merge"]["merged"] and im["merge"]["cells"] == 7 and im["merge"]["instances"] == 5
    assert not iu["merge"]["merged"] and iu["merge"]["isolated_instances"] == 7
    print("merged", ym.ravel(), "unmerged", yu.ravel(), "cpu", im["cpu_s"], iu["cpu_s"])
    np.testing.assert_allclose(ym, yu, atol=2e-3)
