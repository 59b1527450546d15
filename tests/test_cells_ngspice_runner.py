"""kchip.sim.ngspice: raw-file parsing and clear errors (missing ngspice / model file / non-convergence)."""
import shutil

import numpy as np
import pytest

from kchip.sim.ngspice import (ConvergenceError, ModelFileMissing, NgspiceNotFound, read_raw, run_deck)

needs_ng = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")

RC = """* rc divider
V1 a 0 1
R1 a b 1k
R2 b 0 3k
C1 b 0 1n
.dc V1 0 2 0.5
.op
.end
"""


@needs_ng
def test_runs_and_parses_all_plots():
    r = run_deck(RC, expect_points=[5, 1])
    assert len(r.plots) == 2
    dc, op = r.plots
    np.testing.assert_allclose(dc["v(b)"], 0.75 * np.arange(0, 2.01, 0.5), rtol=1e-9)
    np.testing.assert_allclose(op["v(b)"], [0.75], rtol=1e-9)
    np.testing.assert_allclose(dc["i(v1)"], -np.arange(0, 2.01, 0.5) / 4e3, rtol=1e-9)


@needs_ng
def test_transient_and_ac_complex():
    deck = """* rc
V1 a 0 dc 0 ac 1 pulse(0 1 0 1n 1n 1 2)
R1 a b 1k
C1 b 0 1n
.tran 10n 5u
.ac dec 5 1e3 1e7
.end
"""
    tr, ac = run_deck(deck).plots
    t, vb = tr["time"], tr["v(b)"]
    np.testing.assert_allclose(np.interp(1e-6, t, vb), 1 - np.exp(-1), atol=5e-3)
    f = np.real(ac["frequency"])
    h = ac["v(b)"]
    assert np.iscomplexobj(h)
    np.testing.assert_allclose(np.abs(h), 1 / np.abs(1 + 2j * np.pi * f * 1e-6), rtol=1e-6)


def test_missing_ngspice(monkeypatch):
    monkeypatch.setenv("KCHIP_NGSPICE", "/nonexistent/ngspice")
    with pytest.raises(NgspiceNotFound, match="ngspice"):
        run_deck(RC, cell="tanh_diff", point="p0")


@needs_ng
def test_missing_model_file_names_cell_and_point(tmp_path):
    deck = f".title x\n.include {tmp_path}/missing_models.spice\nV1 a 0 1\nR1 a 0 1k\n.op\n.end\n"
    with pytest.raises(ModelFileMissing, match=r"cell tanh_diff, point code 3.*missing_models\.spice"):
        run_deck(deck, cell="tanh_diff", point="code 3")


@needs_ng
def test_nonconvergence_names_cell_and_point():
    # two ideal sources in parallel: no operating point exists (singular matrix, gmin stepping fails)
    deck = "* bad\nV1 a 0 1\nV2 a 0 2\nR1 a 0 1k\n.dc V1 0 1 0.5\n.end\n"
    with pytest.raises(ConvergenceError, match=r"cell relu_diff, point vs=0\.9"):
        run_deck(deck, cell="relu_diff", point="vs=0.9", expect_points=[3])


@needs_ng
def test_short_sweep_is_an_error():
    with pytest.raises(ConvergenceError, match="returned 5 of 7 points"):
        run_deck(RC, cell="c", point="p", expect_points=[7, 1])


def test_ascii_raw_parser(tmp_path):
    f = tmp_path / "a.raw"
    f.write_text("Title: t\nDate: x\nPlotname: DC transfer characteristic\nFlags: real\nNo. Variables: 2\n"
                 "No. Points: 2\nVariables:\n\t0\tv(v-sweep)\tvoltage\n\t1\tv(b)\tvoltage\nValues:\n"
                 " 0\t0.0\n\t1.5\n\n 1\t1.0\n\t2.5\n")
    (p,) = read_raw(f)
    np.testing.assert_allclose(p["v(b)"], [1.5, 2.5])


def _wrapped_ngspice(tmp_path, name, body):
    exe = tmp_path / name
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)
    return str(exe)


@needs_ng
def test_operating_point_found_after_a_failed_gmin_step_is_not_an_error(tmp_path):
    """ngspice 39 searches the operating point in steps (Newton, gmin stepping, source stepping, a transient
    ramp): a failed step that a later one recovers is a warning, kept in extra["op_search"] (the log lines come
    from a wrapper around the real ngspice, which then solves the deck)."""
    real = shutil.which("ngspice")
    exe = _wrapped_ngspice(tmp_path, "ng_recovers", "echo 'Warning: Dynamic gmin stepping failed'\n"
                           "echo 'Note: Starting source stepping'\n" f"exec {real} \"$@\"\n")
    res = run_deck(RC, cell="chip", point="forward", ngspice=exe)
    assert res.plots[1]["v(b)"][0] == pytest.approx(0.75)          # the .op plot
    assert "Dynamic gmin stepping failed" in res.extra["op_search"]
    assert "op_search" not in run_deck(RC, cell="chip", point="forward").extra


@needs_ng
def test_failed_operating_point_search_without_results_names_cell_and_point(tmp_path):
    exe = _wrapped_ngspice(tmp_path, "ng_fails", "echo 'Warning: Dynamic gmin stepping failed'\n"
                           "echo 'Warning: source stepping failed'\nexit 1\n")
    with pytest.raises(ConvergenceError, match=r"cell chip, point forward: ngspice did not converge: Warning: "
                                               r"Dynamic gmin stepping failed; Warning: source stepping failed"):
        run_deck(RC, cell="chip", point="forward", ngspice=exe)
