"""Forward and reverse of every i-v law x topology generator against the independent reference."""
import numpy as np
import pytest
import torch

from kchip.model import KirchhoffNet, Period, import_official, topology as T
from kchip.model.laws import LAWS
from reference import REF_LAWS, REF_ROWS, ref_forward

LAW_NAMES = sorted({law.name for law in LAWS.values()})
TOPOLOGIES = {
    "_fully_connect": ("_fully_connect", dict(num_node=4, repeat=[1, 1])),
    "_simple_connect": ("_simple_connect", dict(num_node=4, repeat=[1, 0])),
    "_neighbor_index": ("_neighbor_index", dict(num_channel=1, width=3, height=3, neighbor_size=2)),
    "_mix_connect": ("_mix_connect", dict(num_channel=1, width=3, height=2, neighbor_size=2, fully_connect_node=2,
                                          repeat=[1, 1])),
    "FC": ("fc", dict(num_node=3)),
    "NE": ("ne", dict(num_channel=1, width=3, height=2, neighbor_size=2)),
    "Proj": ("proj", dict(num_channel=1, width=2, height=2, neighbor_size=2, extra=2)),
}
TIGHT = dict(method="dopri5", rtol=1e-10, atol=1e-12)


def _params(rows, num_edges, seed):
    g = np.random.default_rng(seed)
    return 0.6 * g.standard_normal((rows, num_edges))


def _pair(specs, projector=None):
    """kchip model (float64) and the reference's period dicts from the same specs."""
    periods = [Period(s["edges"], s["law"], s["t_len"], param=torch.tensor(s["param"]), num_nodes=s.get("num_nodes"))
               for s in specs]
    model = KirchhoffNet(periods, projector=projector, solver=TIGHT).double()
    ref = [dict(edges=s["edges"], law=s["law"], param=s["param"], t_len=s["t_len"],
                num_nodes=s.get("num_nodes") or int(np.max(s["edges"]))) for s in specs]
    return model, ref


@pytest.mark.parametrize("topo", sorted(TOPOLOGIES))
@pytest.mark.parametrize("law", LAW_NAMES)
def test_law_x_topology_both_directions(law, topo):
    gen, args = TOPOLOGIES[topo]
    edges = T.generate(gen, args)[:, :2]
    spec = dict(edges=edges, law=law, t_len=0.7, param=_params(REF_ROWS[law], len(edges), seed=len(edges)))
    model, ref = _pair([spec])
    n = int(edges.max())
    x = np.random.default_rng(1).uniform(-1, 1, (3, n))
    for reverse in (False, True):
        with torch.no_grad():
            got = model(torch.tensor(x), reverse=reverse).numpy()
        want = ref_forward(ref, x, reverse=reverse)
        assert np.max(np.abs(got - want)) <= 1e-5, (law, topo, reverse, np.max(np.abs(got - want)))


@pytest.mark.parametrize("law", ["ShiftRelu1", "tanh_lin", "relu_diff"])
def test_three_periods_growing_node_count(law):
    """Periods with 2 -> 4 -> 6 nodes; added nodes start at 0; lastN projector; both directions."""
    rows = REF_ROWS[law]
    e1 = T.fc(2)[:, :2]
    e2 = T._fully_connect(5, repeat=[1, 0])[:, :2]
    e3 = T.proj(1, 2, 2, 2, extra=2)[:, :2]
    specs = [dict(edges=e, law=law, t_len=t, param=_params(rows, len(e), seed=k))
             for k, (e, t) in enumerate([(e1, 0.5), (e2, 0.4), (e3, 0.6)])]
    model, ref = _pair(specs, projector="last3")
    assert [p.num_nodes for p in model.periods] == [2, 4, 6]
    x = np.random.default_rng(7).uniform(-1, 1, (4, 2))
    for reverse in (False, True):
        xin = x if not reverse else np.random.default_rng(8).uniform(-1, 1, (4, 6))
        with torch.no_grad():
            got = model(torch.tensor(xin), reverse=reverse).numpy()
        want = ref_forward(ref, xin, reverse=reverse, projector="last3")
        assert got.shape == want.shape
        assert np.max(np.abs(got - want)) <= 1e-5, (reverse, np.max(np.abs(got - want)))


def test_added_nodes_start_at_zero_in_trajectory():
    e1, e2 = T.fc(1)[:, :2], T.fc(3)[:, :2]
    p1 = Period(e1, "Conductance", 0.5, param=torch.zeros(3, len(e1)))
    p2 = Period(e2, "Conductance", 0.5, param=torch.ones(3, len(e2)))
    model = KirchhoffNet([p1, p2]).double()
    out, traj = model(torch.tensor([[0.8]], dtype=torch.float64), return_trajectory=True, t_points=5)
    t2, v2 = traj[1]
    assert torch.allclose(t2[0], torch.tensor(0.5, dtype=t2.dtype))
    assert v2.shape == (5, 1, 3)
    assert v2[0, 0].tolist() == [0.8, 0.0, 0.0]           # carried node + two new nodes at 0


def test_twomoon_fixture_forward_and_reverse(twomoon_fixture):
    model = import_official(twomoon_fixture / "model.pth", twomoon_fixture / "config.yaml").double()
    specs = [dict(edges=p.edges.numpy(), law=p.law.name, t_len=p.t_len, param=p.param.detach().numpy(),
                  num_nodes=p.num_nodes) for p in model.periods]
    assert [p.law.name for p in model.periods] == ["ShiftTanh2", "ShiftTanh2"]
    assert [p.num_edges for p in model.periods] == [300, 300]
    x = np.random.default_rng(0).standard_normal((6, 2))
    for reverse in (False, True):
        with torch.no_grad():
            got = model(torch.tensor(x), reverse=reverse, rtol=1e-9, atol=1e-11).numpy()
        want = ref_forward(specs, x, reverse=reverse)
        assert np.max(np.abs(got - want)) <= 1e-4


def test_ideal_law_table_agrees_with_reference_formulas():
    g = np.random.default_rng(3)
    for name in LAW_NAMES:
        law = LAWS[name]
        p = g.standard_normal((law.rows, 20))
        vs, vd = g.standard_normal(20), g.standard_normal(20)
        got = law(torch.tensor(p), torch.tensor(vs), torch.tensor(vd)).numpy()
        want = [REF_LAWS[name](p[:, e], vs[e], vd[e]) for e in range(20)]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("law", LAW_NAMES)
def test_divergence_matches_autograd_jacobian_trace(law):
    e = np.concatenate([T._fully_connect(4, repeat=[1, 1])[:, :2], [[2, 2]]])       # with a self-loop
    per = Period(e, law, 0.5, param=torch.tensor(_params(REF_ROWS[law], len(e), 5))).double()
    y = torch.randn(3, 4, dtype=torch.float64)
    div = per.divergence(y).detach()
    for b in range(4):
        jac = torch.autograd.functional.jacobian(lambda col: per(0.0, col.unsqueeze(1)).squeeze(1), y[:, b])
        assert abs(float(torch.trace(jac)) - float(div[b])) < 1e-10


@pytest.mark.parametrize("law", ["ShiftRelu1", "tanh_lin", "Conductance", "ShiftLeakyRelu2"])
def test_autograd_path_equals_inference_path_and_adjoint_gradients(law):
    """The in-place inference kernel and the autograd kernel give the same forward; odeint_adjoint gives the
    same parameter gradients as backprop through the solver."""
    e = T._mix_connect(1, 2, 3, 2, 1, repeat=[1, 1])[:, :2]
    spec = dict(edges=e, law=law, t_len=0.6, param=_params(REF_ROWS[law], len(e), seed=11))
    model, _ = _pair([spec])
    x = torch.tensor(np.random.default_rng(4).uniform(-1, 1, (3, int(e.max()))))
    with torch.no_grad():
        y_inf = model(x)
    y_ad = model(x)
    assert y_ad.requires_grad
    assert torch.allclose(y_ad, y_inf, atol=1e-6, rtol=0)      # same math; fused ops round differently
    g_direct = torch.autograd.grad(y_ad.square().sum(), model.periods[0].param)[0]
    y_adj = model(x, adjoint=True)
    g_adj = torch.autograd.grad(y_adj.square().sum(), model.periods[0].param)[0]
    # the adjoint re-integrates the state backwards, so its gradient is as exact as that re-integration
    assert float((g_direct - g_adj).abs().max()) <= 1e-3 * float(g_direct.abs().max())


def test_cnf_logp_of_linear_circuit_matches_closed_form():
    """A linear (Conductance) circuit is dv/dt = M v: log-density change over T is -T trace(M)."""
    e = T._fully_connect(3, repeat=[1, 0])[:, :2]
    per = Period(e, "Conductance", 0.8, param=torch.tensor(_params(3, len(e), 2)))
    model = KirchhoffNet([per], solver=TIGHT).double()
    x = torch.randn(4, 2, dtype=torch.float64)
    y0 = torch.randn(2, 1, dtype=torch.float64)
    M = torch.autograd.functional.jacobian(lambda v: model.periods[0](0.0, v.unsqueeze(1)).squeeze(1), y0[:, 0])
    with torch.no_grad():
        _, dlogp = model(x, logp=torch.zeros(4, dtype=torch.float64))
    assert torch.allclose(dlogp, torch.full((4,), float(-0.8 * torch.trace(M)), dtype=torch.float64), atol=1e-9)


def test_self_loops_and_ground_edges_match_reference():
    edges = np.array([[1, 1], [0, 1], [1, 2], [2, 0], [2, 2], [0, 2], [1, 2]])
    spec = dict(edges=edges, law="tanh_diff", t_len=0.9, param=_params(2, len(edges), seed=9))
    model, ref = _pair([spec])
    x = np.array([[0.3, -0.7], [1.0, 0.5]])
    with torch.no_grad():
        got = model(torch.tensor(x)).numpy()
    assert np.max(np.abs(got - ref_forward(ref, x))) <= 1e-5


def test_subclass_currents_override_is_used_on_the_inference_path():
    class Doubled(Period):
        def currents(self, vs, vd):
            return 2 * super().currents(vs, vd)

    e = T.fc(2)[:, :2]
    p = _params(2, len(e), 3)
    base = KirchhoffNet([Period(e, "tanh_diff", 0.5, param=torch.tensor(p))], solver=TIGHT).double()
    dbl = KirchhoffNet([Doubled(e, "tanh_diff", 0.5, param=torch.tensor(p))], solver=TIGHT).double()
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    with torch.no_grad():
        y1 = base(x)
        y2 = dbl(x)
        y_half = KirchhoffNet([Period(e, "tanh_diff", 1.0, param=torch.tensor(p))], solver=TIGHT).double()(x)
    assert not torch.allclose(y1, y2)
    assert torch.allclose(y2, y_half, atol=1e-8)     # doubling every current == doubling the time
