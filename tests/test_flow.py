"""`kchip flow`: stages run in order, results are cached per stage, a changed section re-runs downstream."""
import json
import shutil

import pytest
import yaml

from kchip.flow import run_flow

FLOW = {
    "name": "tiny",
    "stages": ["model", "forward", "quantize", "netlist", "simulate", "report"],
    "model": {"source": "spec", "seed": 1,
              "periods": [{"topology": "fc", "args": {"num_node": 2}, "law": "tanh_lin", "t_len": 0.5,
                           "init_scale": 0.5}]},
    "forward": {"num_inputs": 4, "seed": 0},
    "quantize": {"bits_gm": 8, "bits_bias": 8},
    "simulate": {"num_inputs": 3, "chunk": 3, "jobs": 1},
}


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_flow_runs_caches_and_reruns(tmp_path, capsys):
    f = tmp_path / "flow.yaml"
    f.write_text(yaml.safe_dump(FLOW))
    res = run_flow(f, tmp_path / "build")
    assert res["forward"]["roundtrip_max_abs_error"] < 1e-6
    assert res["simulate"]["vs_L1"]["rms_pct_fs"] <= 0.5
    # no data set: full scale = the float model's output range over the forward stage's inputs (all 4, not the 3
    # simulated)
    import numpy as np
    y_fw = np.load(tmp_path / "build" / "tiny" / res["forward"]["outputs"])
    assert res["simulate"]["full_scale"] == pytest.approx(float(np.max(np.ptp(y_fw, 0))))
    assert res["simulate"]["vs_L1"]["full_scale"] == res["simulate"]["full_scale"]
    report = json.loads((tmp_path / "build" / "tiny" / "06-report" / "report.json").read_text())
    assert set(report["stages"]) == {"model", "forward", "quantize", "netlist", "simulate"}
    capsys.readouterr()
    run_flow(f, tmp_path / "build")
    assert capsys.readouterr().out.count("cached") == 6
    FLOW2 = dict(FLOW, quantize={"bits_gm": 7, "bits_bias": 7})
    f.write_text(yaml.safe_dump(FLOW2))
    run_flow(f, tmp_path / "build")
    out = capsys.readouterr().out
    assert out.count("cached") == 2 and "03 quantize: running" in out and "05 simulate: running" in out


def test_flow_errors(tmp_path):
    """The schema refuses before any stage runs (more cases: tests/test_input_errors.py)."""
    f = tmp_path / "flow.yaml"
    f.write_text(yaml.safe_dump({"name": "x", "stages": ["model", "polish"]}))
    with pytest.raises(ValueError, match=r"flow.yaml: stages\[1\]: 'polish': one of 'model', 'forward'"):
        run_flow(f, tmp_path / "b")
    f.write_text(yaml.safe_dump({"stages": ["model"]}))
    with pytest.raises(ValueError, match="flow.yaml: name: missing required key"):
        run_flow(f, tmp_path / "b")
    f.write_text(yaml.safe_dump({"name": "x", "stages": ["model"], "model": {"source": "magic"}}))
    with pytest.raises(ValueError, match="model.source: 'magic': one of 'train', 'official', 'kchip', 'spec'"):
        run_flow(f, tmp_path / "b")
    f.write_text(yaml.safe_dump({"name": "x", "stages": ["model"], "model": {"periods": [{"law": "eq10"}]}}))
    with pytest.raises(ValueError, match=r"model.periods\[0\].topology: missing required key"):
        run_flow(f, tmp_path / "b")
    assert not (tmp_path / "b").exists()                 # nothing was run


def _figures(obj):
    """A report without its timings (wall and CPU seconds differ run to run)."""
    if isinstance(obj, dict):
        return {k: _figures(v) for k, v in obj.items()
                if not any(t in k for t in ("seconds", "wall", "_s_", "cpu", "speed")) and not k.endswith("_s")}
    if isinstance(obj, list):
        return [_figures(v) for v in obj]
    return obj


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_flow_killed_mid_stage_resumes_with_the_same_figures(tmp_path):
    """SIGKILL while the simulate stage runs, then the same command again: the stages before it come from the
    cache (their stage.json was complete), simulate re-runs, and report.json equals an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys
    f = tmp_path / "flow.yaml"
    f.write_text(yaml.safe_dump(FLOW))
    cmd = [sys.executable, "-m", "kchip.cli", "flow", str(f), "--build"]
    ref = subprocess.run(cmd + [str(tmp_path / "ref")], capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    p = subprocess.Popen(cmd + [str(tmp_path / "b")], stdout=subprocess.PIPE, text=True, start_new_session=True)
    for line in p.stdout:
        if "05 simulate: running" in line:
            os.killpg(p.pid, signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    status = json.loads((tmp_path / "b" / "tiny" / "flow.json").read_text())
    assert status["status"] == "running"                       # killed: it never said complete
    assert not (tmp_path / "b" / "tiny" / "05-simulate" / "stage.json").exists()
    again = subprocess.run(cmd + [str(tmp_path / "b")], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("cached") == 4 and "05 simulate: running" in again.stdout
    read = lambda d: json.loads((d / "tiny" / "06-report" / "report.json").read_text())
    assert _figures(read(tmp_path / "b")) == _figures(read(tmp_path / "ref"))
