"""Quantized (L1) model: codes vs an independent rounding reference, full-precision match with the float model,
error falling with bits, clipping/strict, measured tables unchanged, STE, CLI."""
import numpy as np
import pytest
import torch
import torch.nn.utils.parametrize as parametrize

from kchip.hw import DeviceLimits, map_model
from kchip.model import KirchhoffNet, Period, save_model
from kchip.quantize import CodeTable, attach_ste, detach_ste, quantize_model, realized_model
from kchip.quantize.evaluate import Task, finetune

TIGHT = {"rtol": 1e-8, "atol": 1e-8}


def _model(seed=0):
    torch.manual_seed(seed)
    p0 = Period([[1, 0], [0, 2], [1, 2], [2, 1], [2, 0], [1, 3]], "tanh_lin", 0.6, num_nodes=3)
    p1 = Period([[1, 3], [3, 2], [2, 0], [3, 1], [0, 3]], "relu_diff", 0.4, num_nodes=3)
    with torch.no_grad():
        p0.param.mul_(0.7)
        p1.param.mul_(0.5)
    return KirchhoffNet([p0, p1], projector="last1", solver=TIGHT).double()


def _x(n=64):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _q(m, bits, lim=DeviceLimits(), **kw):
    sc = map_model(m, _x(), lim)
    return sc, quantize_model(m, sc, lim, bits={"gm": bits, "bias": bits}, num_inputs=2, **kw)


def test_codes_match_independent_rounding():
    m = _model()
    _, r = _q(m, 5, respect_limits=False)
    for k, p in enumerate(m.periods):
        par = p.param.detach().numpy()
        ids = r.spec.periods[k].edges
        got = np.array([r.spec.edges[i].values for i in ids]).T
        gotc = np.array([r.spec.edges[i].codes for i in ids]).T
        rows = [0, 1, 2] if k == 0 else [0, 1]
        for j, row in enumerate(rows):
            lsb = np.abs(par[row]).max() / 31
            ref_codes = np.round(par[row] / lsb)
            assert np.array_equal(gotc[j], ref_codes)
            assert np.allclose(got[j], ref_codes * lsb, rtol=1e-12, atol=1e-15)


def test_full_precision_matches_float():
    m = _model()
    _, r = _q(m, 16)
    x = _x(128)
    with torch.no_grad():
        d = (m(x) - r.model(x)).abs().max().item()
    assert r.report["clipped_total"] == 0
    assert d <= 1e-3, d


def test_error_falls_with_bits():
    m = _model()
    x = _x(128)
    with torch.no_grad():
        ref = m(x)
        errs = [float((_q(m, b, respect_limits=False)[1].model(x) - ref).pow(2).mean().sqrt()) for b in (3, 5, 7, 10)]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs


def test_clipping_counted_and_strict_refuses():
    m = _model()
    lim = DeviceLimits(tanh_slope_max_per_v=1.0)      # tiny slope bound -> slopes clip
    sc = map_model(m, _x(), lim)
    r = quantize_model(m, sc, lim, num_inputs=2)
    par = m.periods[0].param.detach().numpy()
    bound = 1.0 * sc.v_u
    want = int((np.abs(par[0]) > bound).sum() + (np.abs(par[1]) > bound).sum())
    assert want > 0 and r.report["tables"]["tanh_lin.slope_s"]["clipped"] + \
        r.report["tables"]["tanh_lin.slope_d"]["clipped"] == want
    assert r.report["tables"]["tanh_lin.slope_s"]["worst_clip_error_sw"] == pytest.approx(
        max(0.0, np.abs(par[0]).max() - bound), rel=1e-9)
    with pytest.raises(ValueError, match=r"tanh_lin.slope_.: value .* outside the realizable range"):
        quantize_model(m, sc, lim, num_inputs=2, strict=True)


def test_measured_table_used_unchanged():
    m = _model()
    sc = map_model(m, _x(), DeviceLimits())
    f = sc.i_u / sc.v_u
    vals = [-2.0 * f, -0.9 * f, -0.2 * f, 0.0, 0.3 * f, 1.1 * f, 2.5 * f]
    t = CodeTable.from_measured("gm", 2, True, [-3, -2, -1, 0, 1, 2, 3], vals, "measured:test")
    r = quantize_model(m, sc, DeviceLimits(), tables={"relu_diff.gain": t}, num_inputs=2)
    assert r.spec.tables["relu_diff.gain"] is t
    allowed = {v / f for v in vals}
    for i in r.spec.periods[1].edges:
        assert any(abs(r.spec.edges[i].values[1] - a) < 1e-12 for a in allowed)


def test_realized_model_roundtrips_through_json():
    m = _model()
    _, r = _q(m, 6)
    from kchip.quantize import ChipSpec
    m2 = realized_model(ChipSpec.from_json(r.spec.to_json()))
    x = _x(16)
    with torch.no_grad():
        assert torch.equal(m2(x), r.model(x))


def test_ste_forward_is_quantized_and_gradient_flows():
    m = _model()
    sc, r = _q(m, 4, respect_limits=False)
    attach_ste(m, sc, r.spec.tables)
    x = _x(32)
    out = m(x)
    with torch.no_grad():
        assert torch.allclose(out, r.model(x), atol=1e-9)
    out.pow(2).sum().backward()
    g = m.periods[0].parametrizations.param.original.grad
    assert g is not None and g.abs().sum() > 0
    detach_ste(m)
    assert not parametrize.is_parametrized(m.periods[0], "param")


class _Toy(Task):
    name, metric_name = "toy", "mse"

    def __init__(self, teacher):
        self.x = _x(64)
        with torch.no_grad():
            self.y = teacher(self.x)

    def batches(self, epoch, gen):
        yield self.x, self.y

    def loss(self, model, batch):
        return (model(batch[0]) - batch[1]).pow(2).mean()

    def metric(self, model):
        with torch.no_grad():
            return float(self.loss(model, (self.x, self.y)))


def test_finetune_plumbing():
    # lr = 0: the latent parameters stay, the result is a plain (un-parametrized) model that quantizes as before
    m = _model()
    sc, r = _q(m, 3, respect_limits=False)
    ft = finetune(m, sc, r.spec.tables, _Toy(m), epochs=1, lr=0.0)
    assert not parametrize.is_parametrized(ft.periods[0], "param")
    assert torch.equal(ft.periods[0].param, m.periods[0].param)
    r2 = quantize_model(ft, sc, DeviceLimits(), tables=r.spec.tables, num_inputs=2)
    assert [e.codes for e in r2.spec.edges] == [e.codes for e in r.spec.edges]


@pytest.mark.slow
def test_finetune_recovers_regression_4bit():
    # a small trained regression model (kchip.tasks), 4-bit codes, STE fine-tuning recovers >= half the loss
    from kchip.quantize.evaluate import Regression
    from kchip.tasks.regression import build_regression_model, load_data, train
    torch.manual_seed(0)
    data = load_data("diabetes", 42)
    m = build_regression_model(data[0].shape[1], "small")
    train(m, data, epochs=150, progress=False)
    m = m.double()
    task = Regression("diabetes")
    sc = map_model(m, task.calib(), DeviceLimits())
    r = quantize_model(m, sc, DeviceLimits(), bits={"gm": 4, "bias": 4}, num_inputs=task.num_inputs)
    l0, l4 = task.metric(m), task.metric(r.model)
    ft = finetune(m, sc, r.spec.tables, task, epochs=30, lr=5e-4)
    l4f = task.metric(quantize_model(ft, sc, DeviceLimits(), tables=r.spec.tables, num_inputs=task.num_inputs).model)
    assert l4 > l0 and (l4 - l4f) >= 0.5 * (l4 - l0), (l0, l4, l4f)


def test_cli_quantize(tmp_path):
    from kchip.cli import main
    m = _model()
    save_model(m.float(), tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", _x(32).numpy())
    out = tmp_path / "chip.json"
    rc = main(["quantize", str(tmp_path / "m.pt"), "-o", str(out), "--task", "none", "--calib",
               str(tmp_path / "x.npy"), "--bits-gm", "5", "--bits-bias", "4"])
    assert rc == 0
    from kchip.quantize import ChipSpec
    s = ChipSpec.load(out)
    assert s.tables["tanh_lin.slope_s"].bits == 5 and s.tables["tanh_lin.offset"].bits == 4
    assert s.provenance["bits"] == {"gm": 5, "bias": 4} and len(s.provenance["source_model_sha256"]) == 64
    assert [n.role for n in s.nodes] == ["input", "input", "output"]
    assert s.periods[0].reset == [3] and s.periods[1].reset == []
    with pytest.raises(SystemExit) as bad:           # argparse: --bits-gm out of [1, 16]
        main(["quantize", str(tmp_path / "m.pt"), "-o", str(out), "--task", "none", "--calib",
              str(tmp_path / "x.npy"), "--bits-gm", "0"])
    assert bad.value.code == 2
    # the node-speed rule: enforced by default (tau at least 5 tanh_lin lags per node), --node-speed warn keeps
    # the target's tau; the two runs differ only there
    tau = {}
    for mode in ("enforce", "warn"):
        assert main(["quantize", str(tmp_path / "m.pt"), "-o", str(out), "--task", "none", "--calib",
                     str(tmp_path / "x.npy"), "--target", "latency=1e-7", "--node-speed", mode]) == 0
        tau[mode] = ChipSpec.load(out).scaling.tau_s
    assert tau["warn"] == pytest.approx(1e-7) and tau["enforce"] > 10 * tau["warn"]



def test_mismatch_aware_finetune_plumbing():
    m = _model()
    sc, r = _q(m, 4, respect_limits=False)
    ft = finetune(m, sc, r.spec.tables, _Toy(m), epochs=1, lr=0.0, mismatch=(0.02, 0.01))
    assert type(ft.periods[0]) is Period and not parametrize.is_parametrized(ft.periods[0], "param")
    assert torch.equal(ft.periods[1].param, m.periods[1].param)


def test_measured_table_sets_i_u_and_nothing_clips():
    m = _model()
    gmax = 1e-6                                                    # a measured gain table tops out at 1 uS
    vals = [gmax * c / 7 * (1 + 0.03 * (c % 2)) for c in range(-7, 8)]
    vals[0], vals[-1] = -gmax, gmax
    t = CodeTable.from_measured("gm", 3, True, list(range(-7, 8)), vals, "measured:test")
    sc = map_model(m, _x(), DeviceLimits(), tables={"relu_diff.gain": t})
    gain_max = float(m.periods[1].param.detach()[1].abs().max())
    assert sc.i_u == pytest.approx(gmax * sc.v_u / gain_max, rel=1e-9)
    r = quantize_model(m, sc, DeviceLimits(), tables={"relu_diff.gain": t}, num_inputs=2)
    assert r.report["tables"]["relu_diff.gain"]["clipped"] == 0
    assert max(abs(r.spec.edges[i].codes[1]) for i in r.spec.periods[1].edges) == 7
