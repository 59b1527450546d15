"""Bad input gives one clear line: the examples of the input-validation issue, one by one, through the CLI
(in-process), with the exit codes (2 bad input, 1 failed run) and no traceback unless --debug."""
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from kchip.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = {"name": "tiny", "stages": ["model", "forward", "quantize", "netlist", "report"],
        "model": {"source": "spec", "seed": 1,
                  "periods": [{"topology": "fc", "args": {"num_node": 2}, "law": "tanh_lin", "t_len": 0.5,
                               "init_scale": 0.5}]},
        "forward": {"num_inputs": 4, "seed": 0}, "quantize": {"bits_gm": 4, "bits_bias": 4}}


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def flow_error(tmp_path, text):
    f = tmp_path / "flow.yaml"
    f.write_text(text if isinstance(text, str) else yaml.safe_dump(text, sort_keys=False))
    rc, _, err = run("flow", f, "--build", tmp_path / "b")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"kchip flow: error: {f}: "), err
    assert not (tmp_path / "b").exists()                 # refused before any stage ran
    return lines[0].split(f"{f}: ", 1)[1]


def with_(path, value, base=TINY):
    cfg = json.loads(json.dumps(base))
    node = cfg
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return cfg


@pytest.mark.parametrize("path, value, message", [
    ("quantize.bits_gm", 0, "quantize.bits_gm: 0: an integer in [1, 16]"),
    ("quantize.bits_gm", 40, "quantize.bits_gm: 40: an integer in [1, 16]"),
    ("quantize.bits_bias", 6.5, "quantize.bits_bias: 6.5: an integer in [1, 16]"),
    ("forward.num_inputs", -3, "forward.num_inputs: -3: an integer in [1, 1000000]"),
    ("stages", ["model", "model", "forward"], "stages[1]: 'model': listed twice (first at stages[0])"),
    ("stages", ["quantize", "model"], "stages[0]: 'quantize': needs stage 'model' earlier in the list"),
    ("colour", "blue", "colour: unknown key; allowed: name, description, stages, model"),
    ("quantize.bitz", 3, "quantize.bitz: unknown key; allowed: bits_gm, bits_bias"),
    ("quantize.target", {"kind": "latency", "value": -1}, "quantize.target.value: -1: a finite number > 0"),
    ("netlist", {"level": "ideal", "corner": "ss"}, "netlist.corner: 'ss': a corner applies at level 'transistor'"),
    ("model.solver", {"method": "euler2"}, "model.solver.method: 'euler2': one of 'dopri8'"),
    ("forward.scale", float("nan"), "forward.scale: nan: a finite number > 0"),
    ("name", "../up", "name: '../up': a name of letters, digits"),
])
def test_flow_file_key_errors(tmp_path, path, value, message):
    assert flow_error(tmp_path, with_(path, value)).startswith(message)


def test_flow_transistor_stages_need_a_law_with_a_cell(tmp_path):
    """sweep / estimate / layout / a transistor netlist build the sky130 chip: a spec model whose law has no cell
    is refused at validation, naming the period's law and the stage."""
    cfg = with_("stages", ["model", "forward", "quantize", "sweep", "report"])
    cfg["model"]["periods"][0]["law"] = "tanh_diff"
    msg = flow_error(tmp_path, cfg)
    assert msg.startswith("model.periods[0].law: 'tanh_diff': a law with a sky130 transistor cell") and "'sweep'" in msg
    cfg["stages"] = ["model", "forward", "quantize", "report"]            # no transistor stage: accepted
    f = tmp_path / "ok.yaml"
    f.write_text(yaml.safe_dump(cfg))
    assert run("flow", f, "--check")[0] == 0


def test_flow_file_syntax_and_shape_errors(tmp_path):
    assert flow_error(tmp_path, "name: x\nstages: [model\n").startswith("line 3, column 1: YAML syntax error: "
                                                                       "expected ',' or ']'")
    text = yaml.safe_dump(TINY, sort_keys=False) + "quantize: {bits_gm: 5}\n"
    assert "key 'quantize' is given twice (first on line" in flow_error(tmp_path, text)
    assert flow_error(tmp_path, "").startswith("empty file")
    assert flow_error(tmp_path, "- model\n").startswith("a flow file is a mapping")
    src = with_("model", {"source": "official", "checkpoint": "nope.pth", "config": "nope.yaml"})
    assert flow_error(tmp_path, src).startswith("model.checkpoint: 'nope.pth': file not found")
    src = with_("model", {"source": "train", "periods": []})
    assert flow_error(tmp_path, src).startswith("model.periods: unknown key for source 'train'; allowed: train")


def test_flow_check_from_to_and_status(tmp_path):
    f = tmp_path / "flow.yaml"
    f.write_text(yaml.safe_dump(TINY))
    rc, out, _ = run("flow", f, "--check", "--build", tmp_path / "b")
    assert rc == 0 and not (tmp_path / "b").exists()
    full = yaml.safe_load(out)                           # every default filled in
    assert full["simulate"]["num_inputs"] == 16 and full["netlist"]["level"] == "ideal"
    rc, out, err = run("flow", f, "--build", tmp_path / "b", "--to", "quantize")
    assert rc == 0, err
    assert not (tmp_path / "b" / "tiny" / "04-netlist").exists()
    rc, out, _ = run("flow", f, "--build", tmp_path / "b", "--from", "forward")
    assert "01 model: cached" in out and "02 forward: running" in out and "04 netlist: running" in out
    status = json.loads((tmp_path / "b" / "tiny" / "flow.json").read_text())
    assert status["status"] == "complete"
    assert run("flow", f, "--build", tmp_path / "b", "--from", "simulate")[0] == 2
    # a stage that fails: its stage.json and flow.json say so, and the earlier run's report is gone
    f.write_text(yaml.safe_dump(with_("model.projector", "last9")))
    rc, _, err = run("flow", f, "--build", tmp_path / "b")
    assert rc == 2 and "model.projector: 'last9': 'last9' reads more nodes than the last period has (2)" in err
    status = json.loads((tmp_path / "b" / "tiny" / "flow.json").read_text())
    assert status["status"] == "failed" and status["failed_stage"] == "model"
    assert not json.loads((tmp_path / "b" / "tiny" / "01-model" / "stage.json").read_text())["ok"]
    assert not (tmp_path / "b" / "tiny" / "05-report" / "report.json").exists()


def test_debug_shows_the_traceback(tmp_path):
    f = tmp_path / "flow.yaml"
    f.write_text(yaml.safe_dump(with_("quantize.bits_gm", 0)))
    with pytest.raises(ValueError, match="bits_gm"):
        main(["--debug", "flow", str(f), "--build", str(tmp_path / "b")])


# ---- kchip forward -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from kchip.model import KirchhoffNet, Period, save_model, topology
    from kchip.tasks.regression import build_regression_model
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(build_regression_model(3, "small"), d / "reg.kchip")          # declares n_in = 3 (4 nodes)
    per = Period(topology.generate("fc", {"num_node": 3}, "t")[:, :2], "tanh_lin", 0.5)
    save_model(KirchhoffNet([per]), d / "plain.kchip")                       # 3 nodes, no declared width
    return d


def forward(models, tmp_path, x, model="reg.kchip", save=None):
    p = tmp_path / "x.npy"
    (save or np.save)(p, x) if x is not None else None
    rc, out, err = run("forward", models / model, "--inputs", p, "-o", tmp_path / "y.npy")
    return rc, err.strip()


@pytest.mark.parametrize("x, message", [
    (np.array([[np.nan, 0.0, 0.0]]), ": [0, 0]: nan: inputs must be finite numbers"),
    (np.array([[0.0, 0.0, np.inf]]), ": [0, 2]: inf: inputs must be finite numbers"),
    (np.zeros((0, 3)), ": shape: (0, 3): at least one sample and one value per sample"),
    (np.array([["a", "b", "c"]]), ": dtype: '<U1': strings; inputs are real numbers"),
    (np.zeros((2, 2)), ": shape: (2, 2): 3 values per sample (the model's input width)"),
    (np.zeros((2, 9)), ": shape: (2, 9): at most 4 values per sample (the first period has 4 nodes)"),
    (np.zeros(3), ": shape: (3,): a 2-D array"),
    (np.zeros((2, 3), complex), ": dtype: 'complex128': complex numbers"),
])
def test_forward_input_errors(models, tmp_path, x, message):
    rc, err = forward(models, tmp_path, x)
    assert rc == 2 and err == f"kchip forward: error: {tmp_path / 'x.npy'}{message}" or \
        (rc == 2 and err.startswith(f"kchip forward: error: {tmp_path / 'x.npy'}{message}")), err
    assert not (tmp_path / "y.npy").exists()


def test_forward_file_errors(models, tmp_path):
    x = tmp_path / "x.npy"
    np.savez(open(x, "wb"), a=np.zeros((2, 3)))
    rc, err = forward(models, tmp_path, None)
    assert rc == 2 and err.endswith("x.npy: a .npz archive (arrays: a), not a .npy array; save one array with "
                                    "numpy.save"), err
    x.write_text("1,2,3\n")
    assert forward(models, tmp_path, None)[1].endswith("x.npy: not a .npy file (no NumPy header); save the array "
                                                       "with numpy.save")
    np.save(x, np.array([[1, None]], dtype=object), allow_pickle=True)
    assert forward(models, tmp_path, None)[1].endswith("not a .npy array of numbers (pickled (object) data)")
    x.unlink()
    assert forward(models, tmp_path, None)[1].endswith("x.npy: input file not found")
    (tmp_path / "bad.kchip").write_text("hello")
    rc, err = forward(models, tmp_path, np.zeros((1, 3)), model=tmp_path / "bad.kchip")
    assert rc == 2 and "bad.kchip: not a kchip model file (torch.load" in err


def test_forward_short_rows_are_padded_with_a_note(models, tmp_path):
    """A model that declares no input width takes rows narrower than its first period; the other nodes start at
    0 V, which stderr says (docs/model.md)."""
    rc, err = forward(models, tmp_path, np.ones((2, 1)), model="plain.kchip")
    assert rc == 0 and err == (f"note: {tmp_path / 'x.npy'}: 1 values per sample; the first period has 3 nodes: "
                               "nodes 2..3 start at 0 V")
    y = np.load(tmp_path / "y.npy")
    rc, _ = forward(models, tmp_path, np.array([[1.0, 0.0, 0.0]] * 2), model="plain.kchip")
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), y, atol=1e-12)     # the same as explicit zeros


def test_forward_diverging_run_is_a_run_error(models, tmp_path):
    rc, err = forward(models, tmp_path, np.full((1, 3), 1e300))
    assert rc == 1 and "the circuit's state diverged" in err and "Traceback" not in err, err
    assert not (tmp_path / "y.npy").exists()


def test_option_ranges(models, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 3)))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        main(["forward", str(models / "reg.kchip"), "--inputs", str(tmp_path / "x.npy"), "-o", "y.npy",
              "--rtol", "-1"])
    assert e.value.code == 2 and "argument --rtol: '-1': a finite number >= 1e-12 and < 1" in err.getvalue()
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as e:
        main(["train", "--task", "diabetes", "--epochs", "-1"])
    assert e.value.code == 2


def test_chipspec_repeated_key_and_type_errors(tmp_path):
    from kchip.quantize.chipspec import ChipSpec
    p = tmp_path / "c.json"
    p.write_text('{"format": "kchip.chipspec", "format": "x"}')
    with pytest.raises(ValueError, match="key 'format' is given twice"):
        ChipSpec.load(p)
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        ChipSpec.load(p)


def test_docs_flow_md_lists_the_schema():
    from kchip.flowschema import describe
    assert describe() in (ROOT / "docs" / "flow.md").read_text(), "regenerate docs/flow.md's key table"


def test_report_is_the_last_stage(tmp_path):
    """Found by the property test: a report before a stage that then failed read as this run's result."""
    cfg = with_("stages", ["model", "forward", "report", "quantize"])
    assert flow_error(tmp_path, cfg).startswith("stages[2]: 'report': must be the last stage")


def test_schema_has_one_section_per_flow_stage():
    from kchip.flow import STAGES
    from kchip.flowschema import _sections
    assert list(_sections()) == list(STAGES)
