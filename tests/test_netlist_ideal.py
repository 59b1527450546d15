"""Ideal-level chip netlist in ngspice against closed forms and the realized (L1) model."""
import math
import shutil

import numpy as np
import pytest
import torch

from kchip.hw.mapping import Scaling
from kchip.model import KirchhoffNet, Period, topology as T
from kchip.netlist import build_netlist
from kchip.quantize.core import quantize_model, realized_model
from kchip.sim import simulate as S

pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")

V_CM, V_U, I_U, C = 0.9, 0.05, 2e-9, 100e-15
TAU = C * V_U / I_U        # 2.5 us per SW time unit


def _spec(model, name="t", n_in=None):
    scaling = Scaling(V_CM, V_U, I_U, C, TAU, [p.t_len * TAU for p in model.periods])
    return quantize_model(model, scaling, bits={"gm": 10, "bias": 10}, respect_limits=False, name=name,
                          num_inputs=n_in).spec


def _deck(tmp_path, spec):
    path = tmp_path / "chip.spice"
    path.write_text(build_netlist(spec, "ideal"))
    return path


def test_one_conductance_edge_discharges_like_an_rc(tmp_path):
    """node 1 -> ground through a conductance g: v(T) = v0 exp(-g T), in SW units."""
    per = Period([[1, 0]], "Conductance", 0.8, param=torch.tensor([[1.3], [0.0], [0.0]]))
    spec = _spec(KirchhoffNet([per]))
    g = spec.edges[0].values[0]
    x = np.array([[1.0], [-0.6], [0.25]])
    y, _ = S.simulate(_deck(tmp_path, spec), spec, x, jobs=1)
    want = x * math.exp(-g * 0.8)
    assert np.max(np.abs(y - want)) <= 2e-3 * np.max(np.abs(x))
    # reverse: the same circuit with the current negated grows the node back
    yr, _ = S.simulate(_deck(tmp_path, spec), spec, want, direction="reverse", jobs=1)
    assert np.max(np.abs(yr - x)) <= 2e-3 * np.max(np.abs(x))


def _three_period_model():
    torch.manual_seed(0)
    pers = [Period(T.fc(2)[:, :2], "tanh_lin", 0.5), Period(T.fc(3)[:, :2], "tanh_lin", 0.4),
            Period(T.fc(4)[:, :2], "tanh_lin", 0.6)]
    with torch.no_grad():
        for p in pers:
            p.param.mul_(0.8)
    return KirchhoffNet(pers, projector="last2")


def test_three_period_growing_model_matches_l1_both_directions(tmp_path):
    model = _three_period_model()
    spec = _spec(model, "grow", n_in=2)
    deck = _deck(tmp_path, spec)
    l1 = realized_model(spec)
    rng = np.random.default_rng(0)
    for direction, width in (("forward", 2), ("reverse", 4)):
        x = rng.uniform(-1, 1, (4, width))
        y, info = S.simulate(deck, spec, x, direction=direction, jobs=1, chunk=2)
        with torch.no_grad():
            ref = l1(torch.tensor(x), reverse=direction == "reverse", rtol=1e-9, atol=1e-11).numpy()
        c = S.compare(y, ref)
        assert c["rms_pct_fs"] <= 0.5, (direction, c)
        assert info["chunks"] == 2


def test_added_nodes_held_at_vcm_until_their_period(tmp_path):
    model = _three_period_model()
    spec = _spec(model, "grow", n_in=2)
    deck = _deck(tmp_path, spec)
    names = [f"v(xchip.n{j})" for j in (3, 4)] + ["v(en_0)", "v(en_1)", "v(en_2)"]
    y, info = S.simulate(deck, spec, np.array([[0.9, -0.8]]), jobs=1, waves=names)
    t, w = info["time"], info["waves"]
    sch = S.build_schedule(spec, "forward", 2)
    before3 = (t > sch.t_load) & (t < sch.starts[1] - 1e-9)
    before4 = (t > sch.t_load) & (t < sch.starts[2] - 1e-9)
    assert np.max(np.abs(w["v(xchip.n3)"][before3] - V_CM)) < 1e-6
    assert np.max(np.abs(w["v(xchip.n4)"][before4] - V_CM)) < 1e-6
    assert np.max(np.abs(w["v(xchip.n4)"][t > sch.starts[2] + 0.1 * sch.lengths[2]] - V_CM)) > 1e-3
    assert sch.enable_from == {0: 0.0, 1: sch.starts[1], 2: sch.starts[2]}   # first period: from the load phase
    for k in range(3):       # each enable is high exactly inside its period (the first one also while loading, the last also while holding)
        en = w[f"v(en_{k})"]
        inside = (t > sch.enable_from[k] + 1e-9) & (t < sch.enable_until[k] - 1e-9)
        outside = (t < sch.enable_from[k] - 1e-9) | (t > sch.enable_until[k] + 1e-9)
        assert en[inside].min() > 0.99 and en[outside].max() < 0.01


def test_deck_spec_mismatch_and_bad_inputs(tmp_path):
    model = _three_period_model()
    spec = _spec(model, "grow", n_in=2)
    deck = _deck(tmp_path, spec)
    other = _spec(model, "grow2", n_in=2)
    with pytest.raises(ValueError, match="built from ChipSpec 'grow'.*differs.*rebuild it with `kchip netlist`"):
        S.simulate(deck, other, np.zeros((1, 2)), jobs=1)
    with pytest.raises(ValueError, match=r"inputs: 5 values per sample but the first executed period "
                                         r"\(periods\[0\], forward\) has 2 nodes"):
        S.simulate(deck, spec, np.zeros((1, 5)), jobs=1)
    with pytest.raises(ValueError, match=r"inputs\[0, 1\]: value nan is not finite"):
        S.simulate(deck, spec, np.array([[0.0, np.nan]]), jobs=1)
    with pytest.raises(ValueError, match="level: 'magic' is not available"):
        build_netlist(spec, "magic")


def test_failed_chunk_keeps_finished_results(tmp_path, monkeypatch):
    per = Period([[1, 0]], "Conductance", 0.5, param=torch.tensor([[1.0], [0.0], [0.0]]))
    spec = _spec(KirchhoffNet([per]))
    deck = _deck(tmp_path, spec)
    real = S.run_deck

    def flaky(deck_text, **kw):
        if "Vin_1 in_1 0 PWL(0.000000000e+00 0.9 " in deck_text:     # the chunk whose first input is 0.0
            raise S.NgspiceError("cell chip, point forward inferences: ngspice did not converge (test)")
        return real(deck_text, **kw)

    monkeypatch.setattr(S, "run_deck", flaky)
    x = np.array([[0.5], [0.4], [0.0], [0.1]])
    with pytest.raises(S.NgspiceError, match=r"1 of 2 chunks failed \(1 kept in .*chunks\): inputs 2\.\.3"):
        S.simulate(deck, spec, x, jobs=1, chunk=2, out_dir=tmp_path / "sim")
    kept = np.load(tmp_path / "sim" / "chunks" / "forward_0000.npy")
    assert np.allclose(kept[:, 0], x[:2, 0] * math.exp(-spec.edges[0].values[0] * 0.5), atol=2e-3)


def test_timeout_per_input_scales_with_the_chunk(tmp_path, monkeypatch):
    """The ngspice time limit is timeout_per_input x the inputs of the run (default 3600 s per inference at
    transistor level, 600 s per ideal run), and it is what run_deck gets."""
    per = Period([[1, 0]], "Conductance", 0.5, param=torch.tensor([[1.0], [0.0], [0.0]]))
    spec = _spec(KirchhoffNet([per]))
    deck = _deck(tmp_path, spec)

    def spy(deck_text, **kw):          # runs in the worker process: report the limit through the error
        raise S.NgspiceError(f"limit {kw['timeout']}")

    monkeypatch.setattr(S, "run_deck", spy)
    x = np.array([[0.5], [0.4], [0.0]])
    with pytest.raises(S.NgspiceError, match=r"inputs 0\.\.1: limit 600\.0 \| inputs 2\.\.2: limit 600\.0"):
        S.simulate(deck, spec, x, jobs=1, chunk=2)
    with pytest.raises(S.NgspiceError, match=r"inputs 0\.\.1: limit 15\.0 \| inputs 2\.\.2: limit 7\.5"):
        S.simulate(deck, spec, x, jobs=1, chunk=2, timeout_per_input=7.5)


def test_cli_netlist_and_simulate(tmp_path):
    import json
    import subprocess
    import sys
    from kchip.model import save_model
    model = _three_period_model()
    spec = _spec(model, "grow", n_in=2)
    spec.save(tmp_path / "chip.json")
    save_model(model, tmp_path / "m.kchip")
    np.save(tmp_path / "x.npy", np.random.default_rng(1).uniform(-1, 1, (3, 2)))
    run = lambda *a: subprocess.run([sys.executable, "-m", "kchip.cli", *map(str, a)], capture_output=True, text=True)
    r = run("netlist", tmp_path / "chip.json", "--level", "ideal", "-o", tmp_path / "chip.spice")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "chip.spice").read_text()
    assert ".subckt edge_tanh_lin" in text and "X_p2_e" in text and "C_node4" in text
    r = run("simulate", tmp_path / "chip.spice", "--spec", tmp_path / "chip.json", "--inputs", tmp_path / "x.npy",
            "--model", tmp_path / "m.kchip", "-o", tmp_path / "sim", "--jobs", "1", "--waves", "1")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "sim" / "compare_forward.json").read_text())
    assert res["compare"]["L1"]["rms_pct_fs"] <= 0.5 and "L0" in res["compare"]
    assert (tmp_path / "sim" / "waves_forward.png").stat().st_size > 10_000
    np.save(tmp_path / "bad.npy", np.zeros((2, 7)))
    r = run("simulate", tmp_path / "chip.spice", "--spec", tmp_path / "chip.json", "--inputs", tmp_path / "bad.npy",
            "-o", tmp_path / "sim2")
    assert r.returncode == 2 and "bad.npy: shape: (2, 7): at most 2 values per sample (the first period has 2 nodes)" in r.stderr, r.stderr
