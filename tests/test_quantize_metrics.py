"""Task metrics against closed forms: CNF NLL sign convention, output error, mismatch draws."""
import math

import pytest
import torch

from kchip.model import KirchhoffNet, Period
from kchip.quantize.evaluate import OffsetPeriod, Task, cnf_nll, mismatch_model, monte_carlo, output_error


def _cond(g, T=0.7, solver=None):
    p = Period([[1, 0]], "Conductance", T, param=torch.tensor([[g], [0.0], [0.0]]))
    return KirchhoffNet([p], solver=solver or {"rtol": 1e-9, "atol": 1e-9}).double()


def test_cnf_nll_closed_form_single_conductance():
    # forward (base -> data): dv/dt = -g v, x = z e^{-gT}. Density: p(x) = N(x e^{gT}) e^{gT}.
    g, T = 0.8, 0.7
    m = _cond(g, T)
    x = torch.tensor([[0.3], [-1.2], [2.0]], dtype=torch.float64)
    z = x * math.exp(g * T)
    want = -(-0.5 * z[:, 0] ** 2 - 0.5 * math.log(2 * math.pi) + g * T)
    assert torch.allclose(cnf_nll(m, x), want, atol=1e-6)


def test_output_error_percent_of_full_scale():
    ref = torch.tensor([[0.0, 0.0], [2.0, 1.0], [4.0, 0.5]])
    out = ref + torch.tensor([[0.1, 0.0], [0.0, 0.0], [0.0, -0.2]])
    e = output_error(ref, out)
    assert e["full_scale"] == pytest.approx(4.0)
    assert e["max"] == pytest.approx(0.2) and e["max_pct_fs"] == pytest.approx(5.0)
    assert e["rms"] == pytest.approx(math.sqrt((0.01 + 0.04) / 6))


def test_offset_current_closed_form_without_grad():
    # zero conductance + offset d on edge 1 -> 0: dv/dt = -d, v(T) = x - d T (also on the no-grad path)
    p = OffsetPeriod([[1, 0]], "Conductance", 0.5, param=torch.zeros(3, 1, dtype=torch.float64),
                     offset=torch.tensor([0.2], dtype=torch.float64))
    m = KirchhoffNet([p]).double()
    x = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(m(x), x - 0.1, atol=1e-6)
    assert torch.allclose(m(x), x - 0.1, atol=1e-6)


def test_mismatch_draw_statistics():
    torch.manual_seed(0)
    E = 4000
    p = Period([[1, 0]] * E, "relu_diff", 1.0, param=torch.stack([torch.full((E,), 0.3), torch.full((E,), 2.0)]))
    m = KirchhoffNet([p]).double()
    mm = mismatch_model(m, 0.02, 0.01, torch.Generator().manual_seed(1))
    gain = mm.periods[0].param.detach()[1] / 2.0 - 1
    assert abs(gain.std().item() - 0.02) < 0.002 and abs(gain.mean().item()) < 0.002
    assert torch.equal(mm.periods[0].param.detach()[0], m.periods[0].param.detach()[0].double())  # bias: no gm error
    off = mm.periods[0].offset.reshape(-1)
    assert abs(off.std().item() - 0.01) < 0.001
    m0 = mismatch_model(m, 0.0, 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(m0.periods[0].param, m.periods[0].param)


def test_monte_carlo_summary():
    m = _cond(0.5, solver={"method": "rk4", "options": {"step_size": 0.1}})

    class T(Task):
        x = torch.ones(4, 1, dtype=torch.float64)

        def metric(self, model):
            with torch.no_grad():
                return float(model(self.x).mean())

        def outputs(self, model):
            with torch.no_grad():
                return model(self.x)

    r = monte_carlo(m, T(), draws=8, sigma_gm=0.05, sigma_offset=0.0, seed=3)
    assert r["draws"] == 8 and len(r["values"]) == 8 and r["metric_std"] > 0
    assert r["metric_mean"] == pytest.approx(math.exp(-0.5 * 0.7), rel=0.02)
