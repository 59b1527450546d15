"""kchip.estimate: the pinned-state supply measurement against ngspice's operating point of the whole chip, the
analytic model against its blocks' own figures and hand arithmetic, the waveform latency on a closed-form
waveform."""
import json
import math
import re
import shutil

import numpy as np
import pytest

from kchip.estimate import analytic as A
from kchip.estimate.measure import _testbench, pinned_supply, trajectory_states, transient_supply, \
    waveform_latency
from kchip.netlist import build_netlist, read_header
from kchip.netlist.transistor import cell_table_path
from kchip.sim.ngspice import run_deck

from test_netlist_transistor import _spec

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")


def _deck(tmp_path, spec):
    rep = {}
    deck = tmp_path / "chip.spice"
    deck.write_text(build_netlist(spec, "transistor", "tt", report=rep, control="ideal"))
    return deck, rep


def _power_up(deck, head, spec, state):
    """The supply current of the whole chip at a pinned state, found the way the chip finds it: every source
    ramped up from 0 over 1 us (transient from zero, `uic`), then held; the mean over 15..20 us."""
    lines = []
    for ln in _testbench(deck, head, spec, state):
        m = re.match(r"^([VI]\w+ \S+ \S+ )(\S+)$", ln)
        lines.append(f"{m.group(1)}PWL(0 0 1u {m.group(2)})" if m and not ln.startswith("Vrst") else ln)
    tb = "\n".join(lines + [".tran 10n 20u uic", ".save i(vvdd)", ".end"]) + "\n"
    pl = run_deck(tb, cell="whole chip", point="power-up", timeout=600).plots[0]
    t, i = pl["time"], -pl["i(vvdd)"]
    return float(np.mean(i[t >= 15e-6]))


@needs_ngspice
def test_pinned_supply_equals_the_whole_chip_after_power_up(tmp_path):
    """The split measurement (chip without cells + each cell alone) against a transient of the whole chip powered
    up from zero at the same pinned state: the same supply current. (ngspice's `.op` of the whole chip is not a
    reference: at reltol 1e-3 its branch currents are loose - a gate pin 'carries' 3.5 uA - and at reltol 1e-5
    it lands on a state that draws 34 % more than the powered-up chip; measured, docs/estimate.md.)"""
    spec = _spec()
    deck, rep = _deck(tmp_path, spec)
    states = trajectory_states(spec, np.array([[0.4, -0.3]]), points=2)
    assert len(states) == 3 and states[-1][0] is None            # 2 instants of the one period + idle
    m = pinned_supply(deck, spec, states)
    head = read_header(deck.read_text())
    for k in (0, 2):                                              # the period's start, and idle
        assert m["i_vdd"][k] == pytest.approx(_power_up(deck, head, spec, states[k]), rel=2e-3), k
    assert m["instances"] == rep["instantiated"] and m["ops"] >= rep["instantiated"]


@needs_ngspice
def test_analytic_blocks_and_the_chip(tmp_path):
    """The analytic bias block (its mult-1 current x the chip's multiplicity) equals the chip's cell-less
    skeleton; the cells' analytic sum is within the fit error of the measured one; energy = sum of power x time."""
    spec = _spec()
    deck, rep = _deck(tmp_path, spec)
    bias = A.bias_units("relu_diff")
    assert 5.0 < bias["units"] < bias["nominal_units"] == 8.0     # the vcn branch is short of its 4x mirror
    ana = A.analytic_power(spec, rep, "relu_diff", "tt", 1.8, bias)
    st = trajectory_states(spec, np.array([[0.4, -0.3]]), points=2)
    m = pinned_supply(deck, spec, st)
    assert ana["states"]["period_0"]["bias_A"] == pytest.approx(np.mean(m["skeleton_vdd"]), rel=1e-3)
    fit = ana["cell_fit"]["max_fit_error_rel"]
    assert ana["states"]["period_0"]["cells_A"] == pytest.approx(np.mean(m["cells_vdd"][:-1]), rel=fit + 0.01)
    win = A.enable_windows(spec)
    i = {k: v["total_A"] for k, v in ana["states"].items()}
    e = A.energy(i, win, 1.8)
    assert e["energy_J"] == pytest.approx(1.8 * (i["period_0"] * win["enabled"][0] + i["idle"] * win["idle"]))
    assert e["power_W"] == pytest.approx(e["energy_J"] / win["t_inference"])


def test_cell_supply_fit_reproduces_the_table():
    """The linear fit of the table's supply currents meets every measured combination within its stated error,
    for a two-code cell (relu_diff) and a three-code one (tanh_lin)."""
    for kind in ("relu_diff", "tanh_lin"):
        path = cell_table_path(kind, "tt")
        supply, info = A.cell_supply_fit(path)
        raw = json.loads(path.read_text())["meta"]["summary"]["supply_current_A"]
        for key, val in raw.items():
            c = [int(v) for v in key.split(",")]
            e = {"code": c[0], "ocode": c[1]} if len(c) == 2 else {"cs": c[0], "cd": c[1], "ocode": c[2]}
            assert abs(supply(e) - val) <= info["max_fit_error_rel"] * abs(val) * (1 + 1e-9)
        assert info["max_fit_error_rel"] < 0.1


def test_enable_windows_from_the_schedule_and_the_sequencer():
    spec = _spec()
    w = A.enable_windows(spec)
    T = spec.scaling.period_s[0]
    assert w["t_end"] == pytest.approx(0.05 * T + T)                     # load + the period
    assert w["t_inference"] == pytest.approx(w["t_end"] + 0.05 * T)      # + hold
    assert sum(w["enabled"].values()) + w["idle"] == pytest.approx(w["t_inference"])
    t_clk = 0.05 * T
    s = A.enable_windows(spec, t_clk=t_clk)                              # clock slots: 20 per period
    assert s["t_end"] == pytest.approx(21 * t_clk) and s["t_inference"] == pytest.approx(23 * t_clk)


def test_waveform_latency_on_a_closed_form_waveform():
    """Two inferences of 10 us: ld high for the first 0.5 us, the output settles as 1 - exp(-t / tau) and is held
    from 8 us on at 1 - exp(-8 us / tau), the value read: it is within tol of that from
    t = -tau ln(tol + exp(-8 us / tau)) on."""
    t = np.linspace(0, 20e-6, 200001)
    tin = t % 10e-6
    ld = np.where(tin < 0.5e-6, 1.8, 0.0)
    for tau, tol in ((1e-6, 1e-3), (3e-6, 1e-3), (0.5e-6, 1e-2)):
        want = -tau * math.log(tol + math.exp(-8e-6 / tau))
        out = 1 - np.exp(-np.minimum(tin, 8e-6) / tau)
        lat = waveform_latency(t, {"v(ld)": ld, "v(out_3)": out}, [9.9e-6, 19.9e-6], [3], tol)
        assert lat["latency_s"] == pytest.approx(want, abs=2e-9), (tau, lat)
        assert len(lat["per_inference_s"]) == 2


def test_transient_supply_average():
    t = np.linspace(0, 4e-6, 4001)
    i = -(1e-3 + 5e-4 * np.sin(2 * np.pi * t / 1e-6))                     # source sign: negative = delivered
    got = transient_supply(t, i, [1e-6, 2e-6, 3e-6, 4e-6])
    assert got["i_avg_A"] == pytest.approx(1e-3, rel=1e-4)


@needs_ngspice
def test_sequencer_alone_power_and_latency():
    """The standard-cell sequencer simulated alone over one inference: a small average supply current (a few uA
    at a ~1 MHz clock; well under one edge cell's 18 uA) and the latency its strobes give (ld rise to smp fall)
    within a gate delay of the clock-slot figure."""
    from kchip.estimate.measure import sequencer_power
    spec = _spec()
    t_clk = 0.05 * spec.scaling.period_s[0]
    r = sequencer_power(spec, t_clk)
    assert 0 < r["i_avg_A"] < 18e-6
    want = A.enable_windows(spec, t_clk=t_clk)["t_end"]
    assert r["latency_s"] == pytest.approx(want, abs=2e-9), (r, want)
