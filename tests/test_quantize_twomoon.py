"""Official twomoon fixture (skipped when absent): mapping finds the node range, 6-bit codes keep the sampled
outputs within 1 % of full scale (RMS), full-precision codes match the float model."""
import torch

from kchip.hw import DeviceLimits, map_model
from kchip.model import import_official
from kchip.quantize import quantize_model
from kchip.quantize.evaluate import output_error


def test_twomoon_6bit_and_full_precision(twomoon_fixture):
    m = import_official(twomoon_fixture / "model.pth", twomoon_fixture / "config.yaml").double()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(200, 2, generator=g, dtype=torch.float64)
    lim = DeviceLimits()
    sc = map_model(m, {"forward": z}, lim)
    assert sc.report["calibration"]["forward"]["v_abs_max"] > 5      # internal nodes swing far beyond the data
    assert sc.report["v_u"]["slope_bound_met"] is False              # reported: sky130 pair slope too small
    solver = {"rtol": 1e-6, "atol": 1e-6}
    with torch.no_grad():
        ref = m(z, **solver)
        r6 = quantize_model(m, sc, lim, respect_limits=False)
        e6 = output_error(ref, r6.model(z, **solver))
        r16 = quantize_model(m, sc, lim, bits={"gm": 16, "bias": 16}, respect_limits=False)
        d16 = (r16.model(z, **solver) - ref).abs().max().item()
    assert e6["rms_pct_fs"] <= 1.0, e6
    assert d16 <= 1e-3, d16
