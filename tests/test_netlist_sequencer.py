"""The standard-cell sequencer: its slot plan against the control schedule (fast), and the transistor-level
sky130_fd_sc_hd netlist in ngspice against the same plan (slow)."""
import shutil

import numpy as np
import pytest
import torch

from kchip.hw.mapping import Scaling
from kchip.model import KirchhoffNet, Period, topology as T
from kchip.netlist.schedule import build_schedule
from kchip.netlist.sequencer import expected_levels, plan, sequencer_deck, sequencer_subckt
from kchip.quantize.core import quantize_model

TAU = 1e-7


def _spec(lengths=(0.5, 0.25, 0.5)):
    torch.manual_seed(0)
    pers = [Period(T.fc(n)[:, :2], "tanh_lin", t) for n, t in zip((2, 3, 4), lengths)]
    m = KirchhoffNet(pers, projector="last2")
    sc = Scaling(0.9, 0.05, 1e-9, TAU * 1e-9 / 0.05, TAU, [p.t_len * TAU for p in pers])   # C = tau I_u / V_u
    return quantize_model(m, sc, bits={"gm": 8, "bias": 8}, respect_limits=False, num_inputs=2).spec


def test_plan_realizes_the_schedule_in_clock_cycles():
    spec = _spec()
    t_clk = 0.25 * TAU
    pl = plan(spec, t_clk)
    assert pl.cycles == {0: 2, 1: 1, 2: 2} and pl.n_flops == 1 + 5 + 1
    for direction in ("forward", "reverse"):
        n_in = 2 if direction == "forward" else 4
        sch = build_schedule(spec, direction, n_in, t_load=t_clk, t_hold=t_clk)
        lv = expected_levels(spec, pl, direction)
        for slot in range(pl.n_flops):
            t_mid = (slot + 0.5) * t_clk
            assert lv["ld"][slot] == int(t_mid < sch.t_load)
            assert lv["smp"][slot] == int(t_mid < sch.t_end)
            for k in sch.order:
                on = sch.enable_from[k] <= t_mid < sch.enable_until[k]
                assert lv[f"en_{k}"][slot] == int(on), (direction, k, slot)
            for j in range(1, spec.num_nodes + 1):
                held = any(a <= t_mid < b for a, b in sch.resets.get(j, []))
                assert lv[f"rst_{j}"][slot] == int(held), (direction, j, slot)


def test_sequencer_netlist_structure_and_clock_errors():
    spec = _spec()
    text, pl = sequencer_subckt(spec, 0.25 * TAU)
    assert text.startswith(".subckt kchip_seq clk start resetb dir ld smp en_0 en_1 en_2 rst_1")
    assert text.count("sky130_fd_sc_hd__dfrtp_1") == pl.n_flops
    assert text.count("sky130_fd_sc_hd__mux2_1") >= 3                       # one per period enable
    with pytest.raises(ValueError, match=r"periods\[0\]: length 5e-08 s is not a whole number of clock cycles of 2e-08 s"):
        plan(spec, 0.2 * TAU)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_transistor_level_sequencer_follows_the_plan(direction):
    from kchip.sim.ngspice import run_deck
    spec = _spec()
    t_clk = 0.25 * TAU
    deck, pl, tm = sequencer_deck(spec, t_clk, direction)
    res = run_deck(deck, cell="kchip_seq", point=direction)
    p = res.plots[0]
    for name, levels in expected_levels(spec, pl, direction).items():
        got = [int(np.interp(tm["t_edge0"] + (i + 0.5) * t_clk, p["time"], p[f"v({name})"]) > 0.9)
               for i in range(pl.n_flops)]
        assert got == levels, (name, got, levels)
