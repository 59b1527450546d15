"""CNF log-density against closed forms, toy data definitions, potentials, and the official twomoon fixture."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.linalg import expm
from scipy.stats import multivariate_normal

from kchip.model import KirchhoffNet, Period
from kchip.tasks import generation as G
from kchip.tasks import toy2d as T
from kchip.tasks.common import set_seed

FIXTURE = Path("/work/shared/fixtures/official-kirchhoffnet/twomoon")


def _linear_flow(seed=0, t_len=0.7):
    """A 2-node circuit of conductances p0 (vs - vd): dv/dt = A v, built here by hand from the edge list."""
    edges = np.array([[0, 1], [1, 0], [0, 2], [2, 0], [1, 2], [2, 1], [1, 2]])
    rng = np.random.RandomState(seed)
    p = rng.randn(3, len(edges)) * 0.5
    A = np.zeros((3, 3))   # rows/cols: ground, node1, node2
    for (s, d), g in zip(edges, p[0]):
        # current g (v_s - v_d) leaves s, enters d
        A[s, s] -= g; A[s, d] += g
        A[d, s] += g; A[d, d] -= g
    A = A[1:, 1:]
    per = Period(edges, "Conductance", t_len, param=torch.tensor(p), num_nodes=2)
    m = KirchhoffNet([per], solver={"method": "dopri5", "rtol": 1e-10, "atol": 1e-10}).double()
    return m, expm(A * t_len)


def test_log_prob_of_linear_flow_matches_gaussian_closed_form():
    m, M = _linear_flow()
    x = torch.tensor(np.random.RandomState(1).randn(50, 2) * 1.3)
    lp = G.log_prob(m, x).detach().numpy()
    ref = multivariate_normal(mean=np.zeros(2), cov=M @ M.T).logpdf(x.numpy())
    np.testing.assert_allclose(lp, ref, atol=1e-7)


def test_sampling_is_the_forward_map_of_the_closed_form():
    m, M = _linear_flow(3)
    g = torch.Generator().manual_seed(5)
    z = torch.randn(20, 2, generator=g).double()
    x = m(z).detach().numpy()
    np.testing.assert_allclose(x, z.numpy() @ M.T, atol=1e-8)
    x2, lp = m(z, logp=torch.zeros(20, dtype=torch.float64))
    ref = multivariate_normal(mean=np.zeros(2), cov=M @ M.T).logpdf(x2.detach().numpy())
    np.testing.assert_allclose((G.std_normal_logprob(z) + lp).detach().numpy(), ref, atol=1e-7)


def test_zero_parameter_flow_is_the_standard_normal():
    m = G.build_flow_model(2, periods=2, repeat=2)
    for p in m.periods:
        p.param.data.zero_()
        p.param.data[2] = 0.0
    # tanh_lin with all-zero parameters carries no current: identity map, NLL = standard normal's
    x = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    expected = float(-(-0.5 * (x ** 2).sum(1) - math.log(2 * math.pi)).mean())
    assert abs(G.nll(m, x) - expected) < 1e-5


def test_flow_model_layout():
    m = G.build_flow_model()
    assert len(m.periods) == 4 and all(p.t_len == 0.5 for p in m.periods)
    assert all(p.law.name == "tanh_lin" and p.num_nodes == 2 and p.num_edges == 300 for p in m.periods)
    assert m.projector is None and m.num_params() == 4 * 900


def test_twomoon_matches_make_moons():
    from sklearn.datasets import make_moons
    ref = make_moons(n_samples=300, noise=0.1, random_state=np.random.RandomState(7))[0]
    np.testing.assert_allclose(T.sample_toy("twomoon", 300, 7).numpy(), ref, atol=1e-6)


@pytest.mark.parametrize("name", list(T.TOY))
def test_toy_sets_shapes_and_determinism(name):
    a, b = T.sample_toy(name, 501, 3), T.sample_toy(name, 501, 3)
    assert a.shape == (501, 2) and torch.equal(a, b) and torch.isfinite(a).all()
    assert not torch.equal(a, T.sample_toy(name, 501, 4))


def test_eight_gaussians_centres():
    x = T.sample_toy("8gaussians", 40000, 0).numpy() * 1.414
    r = np.linalg.norm(x, axis=1)
    assert abs(np.median(r) - 4.0) < 0.1
    ang = np.mod(np.arctan2(x[:, 1], x[:, 0]) + np.pi / 8, np.pi / 4) - np.pi / 8
    assert np.abs(ang).mean() < 0.15


def test_potentials_against_formula():
    z = torch.tensor([[1.0, 0.5], [-2.0, 0.3]], dtype=torch.float64)
    r = np.hypot(1.0, 0.5)
    u1 = 0.5 * ((r - 2) / 0.4) ** 2 - np.log(np.exp(-0.5 * ((1 - 2) / 0.6) ** 2) + np.exp(-0.5 * ((1 + 2) / 0.6) ** 2))
    assert abs(float(T.u1(z)[0]) - u1) < 1e-12
    assert abs(float(T.u2(z)[1]) - 0.5 * ((0.3 - np.sin(2 * np.pi * -2 / 4)) / 0.4) ** 2) < 1e-12
    # the confining wall acts only outside |z1| <= 4
    far = torch.tensor([[4.5, 0.0]], dtype=torch.float64)
    assert float(T.u2(far)) - float(T.u2_raw(far)) == pytest.approx(0.5 * (0.5 / 0.1) ** 2)
    # log Z of a standard Gaussian potential over a wide box is log(2 pi)
    assert abs(T.log_partition(lambda q: 0.5 * (q ** 2).sum(1), lim=8.0) - math.log(2 * math.pi)) < 1e-5


@pytest.mark.skipif(not FIXTURE.exists(), reason="official fixture (/work/shared) not available")
def test_official_twomoon_fixture_nll_has_the_right_direction():
    from kchip.model import import_official
    m = import_official(FIXTURE / "model.pth", FIXTURE / "config.yaml")
    x = G.test_set("twomoon", 400)
    val = G.nll(m, x, rtol=1e-4, atol=1e-4)
    # a trained two-moons flow scores ~1.0 nats; the wrong time direction or sign scores far worse
    assert 0.7 < val < 1.4
    # the opposite convention (data -> base forward in time, i.e. sampling = reverse) scores far worse
    z, dl = m(x[:200], logp=torch.zeros(200), rtol=1e-4, atol=1e-4)
    assert float(-(G.std_normal_logprob(z) - dl).mean()) > val + 1.0


def test_kl_estimate_is_zero_for_the_identity_flow_on_a_gaussian_target(monkeypatch):
    from kchip.tasks import density as D
    monkeypatch.setitem(T.POTENTIALS, "gauss", lambda q: 0.5 * (q ** 2).sum(1))
    m = D.build_density_model(periods=2, repeat=2)
    for p in m.periods:
        p.param.data.zero_()          # tanh_diff with zero parameters: no current, identity map
    r = D.kl_estimate(m, "gauss", n=4000)
    # log q + U = -log(2 pi) per sample and log Z over [-6, 6]^2 = log(2 pi) + log(mass in that square)
    from scipy.stats import norm
    box_mass = (norm.cdf(6) - norm.cdf(-6)) ** 2
    assert abs(r["kl"] - math.log(box_mass)) < 1e-6


def test_density_training_runs_with_annealing(tmp_path):
    from kchip.tasks import density as D
    set_seed(0)
    m = D.build_density_model(periods=2, repeat=2)
    met = D.train(m, "u2", epochs=2, iters_per_epoch=1, batch=64, seed=0, progress=False, anneal=2,
                  run_dir=tmp_path)
    assert len(met["train_loss"]) == 2 and math.isfinite(met["kl"]) and met["anneal"] == 2
    assert (tmp_path / "metrics.json").exists()
