"""The initial state for a transistor chip's operating point (kchip.sim.opinit): chip nets from the chip without
its edge cells, cell nodes from lone cells; checked against ngspice's operating point of the whole circuit."""
import re
import shutil

import pytest

from kchip.sim.ngspice import run_deck
from kchip.sim.hierarchy import core_path, flat_name, subckts
from kchip.sim.opinit import initial_state, pulls

# two hierarchy levels with renamed ports (the core's dirp is the chip's dir), a scaled cell copy, a capacitor
# subcircuit defined inside the core (as kchip's netlists do), cells that do not load the chip's nets (a VCVS
# reads s; the cell's current flows between its own supply pins), a diode for a nonlinear internal node
CHIP = """* opinit test chip
.model dtest d is=1e-14 n=1
.subckt kc_cell s d en vb vdd vss
E1 q vss s vss 0.5
R1 vdd m 10k
D1 m vss dtest
R2 m q 20k
R3 en w 1k
R4 w vss 1k
Rb vb vss 1meg
.ends kc_cell
.subckt kc_cell__x2 s d en vb vdd vss
E1 q vss s vss 0.5
R1 vdd m 5k
D1 m vss dtest m=2
R2 m q 10k
R3 en w 500
R4 w vss 500
Rb vb vss 500k
.ends kc_cell__x2
.subckt kc_bias vdd vb
R1 vdd vb 1k
R2 vb 0 1k
.ends kc_bias
.subckt kchip_core vdd vcm dirp en_0 n1
XB vdd vb kc_bias
.subckt kc_cap_n1 n vss
C1 n vss 1p
.ends kc_cap_n1
XC1 n1 0 kc_cap_n1
Rl n1 dirp 1k
X_p0_e0_n0_n1 vcm n1 en_0 vb vdd 0 kc_cell
X_p0_e1_n1_n0 n1 vcm en_0 vb vdd 0 kc_cell__x2
.ends kchip_core
.subckt kchip_chip vdd vcm dir en n1x
Xcore vdd vcm dir en n1x kchip_core
.ends kchip_chip
"""


def _tb(chip_path, analysis=".tran 0.1n 20n"):
    return (f"* opinit testbench\n.include {chip_path}\n.options reltol=1e-6 vntol=1e-9\nVdd vdd 0 1.8\n"
            f"Vcm vcm 0 0.9\nVdir dir 0 0.3\nVen en 0 1.2\nXchip vdd vcm dir en n1 kchip_chip\n{analysis}\n.end\n")


def test_hierarchy_names_follow_ngspice_flattening():
    subs = subckts(CHIP)
    assert subs["kchip_core"][0] == ["vdd", "vcm", "dirp", "en_0", "n1"]
    assert [t[0] for t in subs["kchip_core"][1]] == ["XB", "XC1", "X_p0_e0_n0_n1", "X_p0_e1_n1_n0"]
    path = core_path(_tb("chip.spice"), subs, "kchip_core")
    assert [p[0] for p in path] == ["Xchip", "Xcore"]
    assert flat_name(path, "vb") == "xchip.xcore.vb"          # internal to the core
    assert flat_name(path, "dirp") == "dir"                   # core port -> chip port -> testbench net
    assert flat_name(path, "n1") == "n1"
    assert flat_name(path, "0") is None
    with pytest.raises(ValueError, match="does not instantiate subcircuit 'kchip_core'"):
        core_path("* tb\nVdd vdd 0 1\n.end\n", subs, "kchip_core")


ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")


@ngspice
def test_initial_state_equals_the_whole_circuit_operating_point(tmp_path):
    chip = tmp_path / "chip.spice"
    chip.write_text(CHIP)
    volts, inner, info = initial_state(_tb(chip), chip)
    ref = {k[2:-1]: float(v[0]) for k, v in run_deck(_tb(chip, ".op")).plots[0].vectors.items()
           if k.startswith("v(")}
    assert volts["xchip.xcore.vb"] == pytest.approx(0.9, abs=1e-6)
    assert volts["n1"] == pytest.approx(0.3, abs=1e-6)
    assert inner["xchip.xcore.x_p0_e0_n0_n1.q"] == pytest.approx(0.45, abs=1e-6)      # 0.5 V(vcm)
    assert inner["xchip.xcore.x_p0_e1_n1_n0.q"] == pytest.approx(0.15, abs=1e-6)      # 0.5 V(n1), scaled copy
    assert inner["xchip.xcore.x_p0_e0_n0_n1.w"] == pytest.approx(0.6, abs=1e-6)
    cell_nodes = [k for k in ref if ".x_p" in k]
    assert len(cell_nodes) == len(inner) == 6
    for k in cell_nodes:                                        # the diode node too (nonlinear)
        assert inner[k] == pytest.approx(ref[k], abs=1e-5), k
    assert info["cell_instances"] == 2 and info["cell_states"] == 2 and info["cell_subckts"] == 2


@ngspice
def test_pulls_hold_the_state_then_let_go(tmp_path):
    """With the pulls the transient starts at the operating point and stays there after the release; a pull
    towards a wrong value shows while it holds and vanishes after."""
    chip = tmp_path / "chip.spice"
    chip.write_text(CHIP)
    text, info = pulls(_tb(chip), chip, release_s=5e-9)
    assert text.count("\nBkchip_hint") == 6
    assert text.splitlines()[1].endswith("* min(1, max(0, (5.500000e-09 - time) / 5.000000e-10))")
    wrong = re.sub(r"(x_p0_e0_n0_n1\.m\)) - [0-9.e+-]+\)", r"\1 - 0.2)", text)
    for t, held in ((text, None), (wrong, 0.2)):
        deck = _tb(chip).replace(".end\n", t + ".save v(xchip.xcore.x_p0_e0_n0_n1.m)\n.end\n")
        pl = run_deck(deck).plots[0]
        v, time = pl["v(xchip.xcore.x_p0_e0_n0_n1.m)"], pl["time"]
        ref = float(run_deck(_tb(chip, ".op")).plots[0]["v(xchip.xcore.x_p0_e0_n0_n1.m)"][0])
        assert v[-1] == pytest.approx(ref, abs=1e-6)
        if held is None:
            assert abs(v - ref).max() < 1e-5
        else:       # 1 mS against the cell's 10k / 20k / diode: the node sits near the pull's value
            assert abs(v[time < 4e-9] - ref).min() > 0.2


@ngspice
def test_a_net_only_cells_reach_is_named(tmp_path):
    chip = tmp_path / "chip.spice"
    chip.write_text(CHIP.replace("X_p0_e0_n0_n1 vcm n1 en_0 vb vdd 0 kc_cell",
                                 "X_p0_e0_n0_n1 vcm n1 en_0 lonely vdd 0 kc_cell"))
    with pytest.raises(ValueError, match=r"net 'lonely' of X_p0_e0_n0_n1 \(kc_cell\) is connected to edge cells "
                                         r"only"):
        initial_state(_tb(chip), chip)


def test_a_search_that_fell_back_is_no_state():
    from kchip.sim.ngspice import ConvergenceError, SimResult
    from kchip.sim.opinit import require_converged
    ok = SimResult([], "", 0.1)
    assert require_converged(ok, "x") is ok
    with pytest.raises(ConvergenceError, match=r"operating point of a lone kc_cell was not found by Newton or "
                                               r"source stepping \(Warning: source stepping failed\)"):
        require_converged(SimResult([], "", 0.1, extra={"op_search": "Warning: source stepping failed"}), "a lone kc_cell")
