"""The trimmed include reproduces the full sky130 library (ngspice), and loads faster."""
import shutil
import time

import numpy as np
import pytest

from kchip.pdk import load_pdk
from kchip.sim.ngspice import run_deck

pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")


def _deck(inc):
    return f"""* nfet/pfet Id(Vgs)
{inc}
Vd d 0 0.9
Vg g 0 0.9
Vp p 0 0.9
X1 d g 0 0 sky130_fd_pr__nfet_01v8 w=4 l=1
X2 p g vdd vdd sky130_fd_pr__pfet_01v8 w=2 l=4
Vdd vdd 0 1.8
.dc Vg 0 1.8 0.05
.end
"""


@pytest.mark.parametrize("corner", ["tt", "ff"])
def test_trimmed_equals_full_library(corner):
    p = load_pdk()
    t0 = time.perf_counter()
    a = run_deck(_deck(p.model_include(corner, trimmed=True)), cell="pdk-check", point=corner)
    t1 = time.perf_counter()
    b = run_deck(_deck(p.model_include(corner, trimmed=False)), cell="pdk-check", point=corner)
    t2 = time.perf_counter()
    for v in ("i(vd)", "i(vp)"):
        np.testing.assert_allclose(a.plots[0][v], b.plots[0][v], rtol=1e-9, atol=1e-18)
    # independent sanity: nfet W/L 4/1 at Vgs=1.8 V carries 100 uA .. 2 mA
    assert 1e-4 < abs(a.plots[0]["i(vd)"][-1]) < 2e-3
    assert (t1 - t0) < (t2 - t1)
