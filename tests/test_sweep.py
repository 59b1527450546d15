"""Chip-level corner / Monte Carlo sweep at L2 (kchip.sim.sweep): a draw with no mismatch is the plain L2 model, a
draw is reproducible from its seed and moves the outputs by about what its sigmas predict, the corners are the
surrogates of those corners; the same sweep on local processes and on a dask LocalCluster is identical."""
import numpy as np
import pytest
import torch

from kchip.netlist.transistor import transistor_netlist
from kchip.sim.l2 import surrogate_model
from kchip.sim.sweep import _point, mismatch_draw, mismatch_sigmas, run_sweep

from test_netlist_transistor import _stable_spec

X = np.array([[0.3, -0.2], [-0.4, 0.1], [0.1, 0.4]])


@pytest.fixture(scope="module")
def chip():
    spec = _stable_spec()
    _, rep = transistor_netlist(spec)
    return spec, rep


def _l2(spec, rep, **kw):
    with torch.no_grad():
        return surrogate_model(spec, rep, **kw)(torch.tensor(X)).numpy()


def test_no_mismatch_is_the_plain_L2_and_draws_are_seeded(chip):
    spec, rep = chip
    n = len(spec.periods[0].edges)
    zero = {0: (np.ones(n), np.zeros(n), np.zeros(n))}
    assert np.array_equal(_l2(spec, rep, mismatch=zero), _l2(spec, rep))
    a = _point(spec.to_json(), rep, X, "tt", 3)
    assert np.array_equal(a, _point(spec.to_json(), rep, X, "tt", 3))          # same seed, same draw
    assert not np.array_equal(a, _point(spec.to_json(), rep, X, "tt", 4))
    assert np.array_equal(_point(spec.to_json(), rep, X, "ss", None), _l2(spec, rep, corner="ss"))


def test_draw_statistics_follow_the_characterized_sigmas(chip):
    spec, rep = chip
    sig = mismatch_sigmas("relu_diff")
    assert 0 < sig["gain"] < 0.1 and 0 < sig["offset_V"] < 0.05                 # tt table: 2.5 %, 18 mV
    g, a, b = zip(*[mismatch_draw(spec, rep, "relu_diff", s)[0] for s in range(400)])
    assert np.std(np.concatenate(g)) == pytest.approx(sig["gain"], rel=0.1)
    assert np.std(np.concatenate(a)) * rep["v_u"] == pytest.approx(sig["offset_V"], rel=0.1)
    assert not np.any(np.concatenate(b))                                        # relu_diff: one offset, on v_s


def test_sweep_on_processes_equals_the_direct_points(chip):
    spec, rep = chip
    pts = run_sweep(spec, rep, X, ["tt", "ff"], 3, seed=7, workers=2)
    assert [(p["corner"], p["draw"]) for p in pts] == [("tt", None), ("ff", None), ("tt", 7), ("tt", 8), ("tt", 9)]
    for p in pts:
        assert np.array_equal(p["y"], _point(spec.to_json(), rep, X, p["corner"], p["draw"]))


def test_transistor_points_of_a_small_chip(chip, tmp_path):
    """The 5-cell chip in ngspice: at tt it follows its L2 model, at ss with tt's codes it moves as L2 at ss does;
    a mismatch draw (tt_mm) is reproducible from its seed, differs from another draw and from the nominal chip."""
    spec, rep = chip
    x = X[:1]
    pts = run_sweep(spec, rep, x, ["tt", "ss"], 2, seed=0, workers=2, transistor=tmp_path)
    tr = {(p["corner"], p["draw"]): p["y"] for p in pts if p["level"] == "transistor"}
    l2 = {(p["corner"], p["draw"]): p["y"] for p in pts if p["level"] == "L2"}
    assert len(tr) == len(l2) == 4
    for c in ("tt", "ss"):
        assert np.abs(tr[(c, None)] - l2[(c, None)]).max() < 0.03, c          # chip within 0.03 SW of L2
    shift_tr, shift_l2 = tr[("ss", None)] - tr[("tt", None)], l2[("ss", None)] - l2[("tt", None)]
    assert np.sign(shift_tr) == np.sign(shift_l2)
    from kchip.sim.sweep import _transistor_point
    again = _transistor_point(spec.to_json(), x, "tt", 0, str(tmp_path / "again"))
    assert np.array_equal(again, tr[("tt", 0)])
    assert not np.array_equal(tr[("tt", 0)], tr[("tt", 1)]) and not np.array_equal(tr[("tt", 0)], tr[("tt", None)])
