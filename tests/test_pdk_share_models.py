"""Shared device model cards (kchip.pdk.flatten): same circuit, one card set per geometry group."""
import shutil

import numpy as np
import pytest

from kchip.pdk import load_pdk
from kchip.pdk.flatten import FlattenError, share_models
from kchip.sim.ngspice import run_deck

LIB = """* toy library
.param gvt = 0.1
.subckt dev d g s b mult=1
+ w=1 l=1
.param nf = 1 swx = {10*nf/w+2} other = {w*l}
Mdev d g s b fam l = {l} w = {w} nf = {nf}
+ delvto = {gvt*other}
.model fam.1 nmos level = 54 lmin = 1e-7 lmax = 1e-6 wmin = 1e-7 wmax = 1e-5 rdsw = {swx} vth0 = {gvt+0.3}
.model fam.2 nmos level = 54 lmin = 1e-6 lmax = 1e-5 wmin = 1e-7 wmax = 1e-5 rdsw = {swx} vth0 = {gvt+0.3}
.model fam.3 nmos level = 54 lmin = 1e-7 lmax = 1e-5 wmin = 1e-5 wmax = 1e-3 rdsw = {swx} vth0 = {gvt+0.3}
.ends dev
"""


def test_groups_by_the_parameters_the_cards_read():
    deck = "\n".join(["X1 a b c d dev w=2 l=0.5", "X2 a b c d dev w=2 l=4", "X3 a b c d dev w=4 l=0.5",
                      "X4 a b c d dev w={wx} l=1", "R1 a 0 1k"])
    new, st = share_models(deck, LIB, ["dev"])
    lines = new.splitlines()
    # X1 and X2 differ only in l, which no card reads: one group; X3 another; X4 (expression) untouched
    assert lines[0].split()[5] == lines[1].split()[5] == "dev__k0"
    assert lines[2].split()[5] == "dev__k1"
    assert lines[3] == "X4 a b c d dev w={wx} l=1" and lines[4] == "R1 a 0 1k"
    assert st["instances"] == 3 and st["groups"] == 2 and st["left"] == 1
    block = st["block"]
    # rdsw evaluated per group (10*1/2+2 = 7, 10*1/4+2 = 4.5); global expressions left to ngspice
    assert "rdsw = 7.0" in block and "rdsw = 4.5" in block and "vth0 = {gvt+0.3}" in block
    # bins: group k0 holds l = 0.5 and 4 um at w = 2 um -> fam.1 and fam.2; k1 only fam.1; fam.3 (w >= 10) never
    assert ".model fam__k0.1 " in block and ".model fam__k0.2 " in block and ".model fam__k1.1 " in block
    assert ".model fam__k1.2 " not in block and "fam__k0.3" not in block and st["cards"] == 3
    # the per-instance part (delvto with its own parameters) stays in the copied subcircuit
    assert ".subckt dev__k0 d g s b mult=1" in block and "Mdev d g s b fam__k0 " in block
    assert "+ delvto = {gvt*other}" in block


def test_geometry_outside_every_bin_is_an_error():
    with pytest.raises(FlattenError, match="no bin of fam holds"):
        share_models("X1 a b c d dev w=2000 l=0.5", LIB, ["dev"])


DECK = """* mixed geometries
{inc}
{body}
Vdd vdd 0 1.8
Vg g 0 0.8
.op
.end
"""


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_shared_cards_give_the_same_operating_point():
    p = load_pdk()
    body = []
    for i, (w, l, dev) in enumerate([(0.42, 0.15, "nfet_01v8"), (4, 1, "nfet_01v8"), (16, 1, "nfet_01v8_lvt"),
                                     (2, 8, "nfet_01v8"), (0.84, 0.15, "pfet_01v8"), (2, 6, "pfet_01v8_lvt"),
                                     (5, 1, "pfet_01v8"), (4, 1, "nfet_01v8")]):
        if dev.startswith("n"):
            body += [f"R{i} vdd d{i} 20k", f"X{i} d{i} g 0 0 sky130_fd_pr__{dev} w={w} l={l} m=2"]
        else:
            body += [f"R{i} d{i} 0 20k", f"X{i} d{i} g vdd vdd sky130_fd_pr__{dev} w={w} l={l}"]
    body += ["XR1 d1 r 0 sky130_fd_pr__res_xhigh_po w=0.35 l=10", "Rr r 0 1k"]
    text = "\n".join(body)
    shared, st = p.share_models(text)
    assert st["instances"] == 8 and st["groups"] == 7      # (4, 1) nfet twice -> one group
    inc = p.model_include("tt")
    a = run_deck(DECK.format(inc=inc, body=text), cell="share-check", point="plain").plots[0]
    b = run_deck(DECK.format(inc=inc, body=shared), cell="share-check", point="shared").plots[0]
    for i in range(8):
        np.testing.assert_allclose(b[f"v(d{i})"], a[f"v(d{i})"], rtol=1e-9, atol=1e-12)
    assert 0.05 < float(a["v(d1)"][0]) < 1.75       # the devices conduct (independent sanity)


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_shared_cards_keep_independent_mismatch_draws():
    """Monte Carlo (tt_mm): the mismatch terms stay per instance after sharing. 200 copies of each fet kind biased
    alike: their V_gs spread (sigma) and mean agree with the unshared library's within the sampling error
    (the ratio of two 200-sample sigmas: ~7 %; measured with 400-500 copies and two seeds: 0.93 .. 1.10), and the
    copies differ from each other."""
    p = load_pdk()
    n = 200
    body = []
    for i in range(n):
        for v in ("", "_lvt"):
            body += [f"In{v}{i} vdd n{v}{i} 1u", f"Xn{v}{i} n{v}{i} n{v}{i} 0 0 sky130_fd_pr__nfet_01v8{v} w=1 l=0.5",
                     f"Ip{v}{i} p{v}{i} 0 1u", f"Xp{v}{i} p{v}{i} p{v}{i} vdd vdd sky130_fd_pr__pfet_01v8{v} w=1 l=0.5"]
    text = "\n".join(body)
    shared, st = p.share_models(text)
    assert st["instances"] == 4 * n and st["groups"] == 4
    deck = "* mismatch copies\n{inc}\n{body}\nVdd vdd 0 1.8\n.op\n.end\n"
    inc = p.model_include("tt" + p.mismatch_suffix)
    a = run_deck(deck.format(inc=inc, body=text), cell="share-check", point="plain", seed=3).plots[0]
    b = run_deck(deck.format(inc=inc, body=shared), cell="share-check", point="shared", seed=4).plots[0]
    for pre in ("n", "p", "n_lvt", "p_lvt"):
        va = np.array([float(np.real(a[f"v({pre}{i})"][0])) for i in range(n)])
        vb = np.array([float(np.real(b[f"v({pre}{i})"][0])) for i in range(n)])
        sa, sb = va.std(ddof=1), vb.std(ddof=1)
        assert sa > 2e-3 and sb > 2e-3, (pre, sa, sb)           # mismatch is on, per copy
        assert abs(sb / sa - 1) < 0.3, (pre, sa, sb)            # ~4 sigma of the ratio's sampling error
        assert abs(vb.mean() - va.mean()) < 4 * sa / np.sqrt(n) * np.sqrt(2), (pre, va.mean(), vb.mean())
