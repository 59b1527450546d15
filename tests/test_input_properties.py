"""Property tests (hypothesis): mutated flow.yaml files, ChipSpecs and input arrays, run through the CLI entry
points in-process. Every run either succeeds with a valid result or fails with one clear line on stderr
(``kchip CMD: error: FILE: ...``, exit 2 for bad input, 1 for a failed run; never a traceback or an internal
error) and leaves no output that reads as complete. 500 mutations per entry point, derandomized (the same
examples every run)."""
import contextlib
import copy
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kchip.cli import main

ROOT = Path(__file__).resolve().parents[1]
# KCHIP_PROP_EXAMPLES=5000 KCHIP_PROP_RANDOM=1 explores further with fresh random examples (development)
EXAMPLES = int(os.environ.get("KCHIP_PROP_EXAMPLES", 500))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("KCHIP_PROP_RANDOM"),
                    database=None, suppress_health_check=list(HealthCheck))

# a flow cheap enough to run for real on every mutation (~50 ms): spec model, forward, quantize, ideal netlist
TINY = {"name": "tiny", "stages": ["model", "forward", "quantize", "netlist", "report"],
        "model": {"source": "spec", "seed": 1,
                  "periods": [{"topology": "fc", "args": {"num_node": 2}, "law": "tanh_lin", "t_len": 0.5,
                               "init_scale": 0.5}]},
        "forward": {"num_inputs": 4, "seed": 0}, "quantize": {"bits_gm": 4, "bits_bias": 4},
        "netlist": {"level": "ideal"}}

# values a mutation puts in: wrong types, edges of ranges, tokens that are valid elsewhere in the file
TOKENS = ["tt", "ss", "xx", "ideal", "transistor", "sequencer", "fc", "ne", "relu_diff", "tanh_lin", "eq10",
          "model", "forward", "quantize", "netlist", "simulate", "layout", "report", "train", "spec", "kchip",
          "official", "latency", "power", "diabetes", "friedman", "small", "last1", "first2", "none", "", " ", "../x",
          "dopri5", "rk4", "euler"]
INTS = st.one_of(st.integers(-3, 20), st.sampled_from([-(2 ** 31), 2 ** 31, 10 ** 12, 10 ** 7, 2 ** 32]))
FLOATS = st.one_of(st.floats(-50, 50), st.sampled_from([0.0, -0.0, 1e-300, 1e300, -1e-9, float("nan"),
                                                        float("inf"), -float("inf"), 1e6, 1e-13]))
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, st.sampled_from(TOKENS), st.text(max_size=6))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.sampled_from(TOKENS + ["a", "num_node"]),
                                                                           SCALARS, max_size=2))


def _run(argv):
    """(exit code, stderr) of one in-process CLI run; an exception that escapes main fails the test."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, err.getvalue()


def _clear_error(cmd: str, rc: int, err: str) -> None:
    """A failure is one line `kchip CMD: error: ...` naming where, with exit 2 (input) or 1 (run)."""
    assert rc in (1, 2), (rc, err)
    lines = [ln for ln in err.splitlines() if ln.startswith(f"kchip {cmd}: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert re.match(rf"kchip {cmd}: error: \S.*: \S", lines[0]), lines[0]


def _mutate(data, tree):
    """One mutation of a JSON/YAML tree, drawn by hypothesis: a random walk down to a node, then replace,
    delete, add an unknown key, duplicate or drop a list item."""
    tree = copy.deepcopy(tree)
    path, node = [], tree
    while isinstance(node, (dict, list)) and len(node) and (not path or data.draw(st.booleans())):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        k = data.draw(st.sampled_from(keys))
        path.append(k)
        node = node[k]
    parent = tree
    for k in path[:-1]:
        parent = parent[k]
    op = data.draw(st.sampled_from(["replace", "replace", "delete", "add", "dup"]))
    if not path or op == "add":
        target = node if isinstance(node, (dict, list)) else parent
        if isinstance(target, dict):
            target[data.draw(st.sampled_from(TOKENS + ["zz_unknown"]))] = data.draw(VALUES)
        elif isinstance(target, list):
            target.append(data.draw(VALUES))
        return tree
    k = path[-1]
    if op == "delete":
        del parent[k]
    elif op == "dup" and isinstance(parent, list):
        parent.insert(k, copy.deepcopy(parent[k]))
    else:
        parent[k] = data.draw(VALUES)
    return tree


def _text_mutation(data, text: str) -> str:
    """Damage the file's text: cut it, insert a character, or repeat a line (a key given twice)."""
    op = data.draw(st.sampled_from(["cut", "insert", "repeat"]))
    i = data.draw(st.integers(0, len(text)))
    if op == "cut":
        return text[:i]
    if op == "insert":
        return text[:i] + data.draw(st.sampled_from(list("[]{}:,-'\"#&*!|>%@`\t\x00") + ["\n  ", "\n"])) + text[i:]
    lines = text.splitlines(keepends=True)
    j = data.draw(st.integers(0, max(len(lines) - 1, 0)))
    return "".join(lines[: j + 1] + lines[j:j + 1] + lines[j + 1:])


# ---- flow.yaml -------------------------------------------------------------------------------------------------
def test_mutated_flow_files_run_or_fail_clearly():
    seen = {"ran": 0, "refused": 0, "failed": 0}

    @SETTINGS
    @given(st.data())
    def prop(data):
        work = Path(tempfile.mkdtemp(prefix="kchip-prop-flow-"))
        try:
            f = work / "flow.yaml"
            if data.draw(st.integers(0, 9)) == 0:
                f.write_text(_text_mutation(data, yaml.safe_dump(TINY, sort_keys=False)))
            else:
                f.write_text(yaml.safe_dump(_mutate(data, TINY), sort_keys=False, allow_unicode=True))
            rc, err = _run(["flow", str(f), "--build", str(work / "build")])
            builds = list((work / "build").glob("*/flow.json"))
            if rc == 0:
                seen["ran"] += 1
                status = json.loads(builds[0].read_text())
                assert status["status"] == "complete"
                if "report" in status["stages"]:
                    report = json.loads(next(builds[0].parent.glob("*-report/report.json")).read_text())
                    assert set(report["stages"]) == set(status["stages"]) - {"report"}
                for meta in builds[0].parent.glob("*/stage.json"):
                    assert json.loads(meta.read_text())["ok"]
            else:
                _clear_error("flow", rc, err)
                seen["failed" if builds else "refused"] += 1
                for b in builds:              # a run that started says where it failed; no report claims it
                    status = json.loads(b.read_text())
                    assert status["status"] == "failed" and status["error"]
                    assert not list(b.parent.glob("*-report/report.json"))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    prop()
    print(seen)
    # both sides were exercised: mutations that still run end to end, and ones refused before any stage
    assert seen["ran"] >= 25 and seen["refused"] >= 100, seen


@pytest.mark.parametrize("flow", ["flow.yaml", "flows/twomoon_transistor.yaml", "flows/friedman_transistor.yaml"])
def test_bundled_flows_validate(flow, tmp_path):
    """The bundled flows pass the schema (`kchip flow --check` runs nothing)."""
    rc, err = _run(["flow", str(ROOT / flow), "--check", "--build", str(tmp_path)])
    assert rc == 0, err
    assert not any(tmp_path.iterdir())


@SETTINGS
@given(st.data())
def test_mutated_expensive_flows_are_validated_clearly(data):
    """Mutations of the bundled (minutes-long) flows, through `--check`: valid, or one clear error."""
    flow = data.draw(st.sampled_from(["flow.yaml", "flows/twomoon_transistor.yaml", "flows/friedman_transistor.yaml"]))
    cfg = yaml.safe_load((ROOT / flow).read_text())
    work = Path(tempfile.mkdtemp(prefix="kchip-prop-check-"))
    try:
        f = ROOT / Path(flow).parent / f".prop-{work.name}.yaml"      # beside the original: relative paths hold
        f.write_text(yaml.safe_dump(_mutate(data, cfg), sort_keys=False, allow_unicode=True))
        rc, err = _run(["flow", str(f), "--check", "--build", str(work)])
        if rc != 0:
            _clear_error("flow", rc, err)
        assert not any(work.iterdir())
    finally:
        f.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


# ---- ChipSpec --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chip_json(tmp_path_factory):
    d = tmp_path_factory.mktemp("spec")
    (d / "flow.yaml").write_text(yaml.safe_dump(dict(TINY, name="spec", quantize={"bits_gm": 3, "bits_bias": 3})))
    rc, err = _run(["flow", str(d / "flow.yaml"), "--build", str(d / "b")])
    assert rc == 0, err
    return json.loads((d / "b" / "spec" / "03-quantize" / "chip.json").read_text())


def test_mutated_chipspecs_netlist_or_fail_clearly(chip_json):
    @SETTINGS
    @given(st.data())
    def prop(data):
        work = Path(tempfile.mkdtemp(prefix="kchip-prop-spec-"))
        try:
            f, out = work / "chip.json", work / "chip.spice"
            text = json.dumps(_mutate(data, chip_json), indent=1)
            if data.draw(st.integers(0, 9)) == 0:
                text = _text_mutation(data, text)
            f.write_text(text)
            rc, err = _run(["netlist", str(f), "--level", "ideal", "-o", str(out)])
            if rc == 0:
                from kchip.netlist import read_header
                deck = out.read_text()
                assert read_header(deck, str(out))["level"] == "ideal"
                assert ".subckt kchip_core" in deck and deck.rstrip().endswith(".ends kchip_core")
            else:
                _clear_error("netlist", rc, err)
                assert not out.exists()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    prop()


# ---- input arrays ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from kchip.model import save_model
    from kchip.tasks.regression import build_regression_model
    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("model") / "reg.kchip"
    save_model(build_regression_model(3, "small"), p)         # 3 inputs, 4 nodes, one output (last1)
    return p


DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_,
                          np.complex128, np.dtype("<U3"), np.dtype("S2")])


@st.composite
def input_files(draw):
    """(kind, writer) of an input file: mostly arrays of drawn dtype, shape and values; some other files."""
    kind = draw(st.sampled_from(["array"] * 8 + ["npz", "object", "text", "empty", "truncated"]))
    if kind == "array":
        dtype = draw(DTYPES)
        shape = draw(st.one_of(st.just((4, 3)), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))
        elems = None
        if np.dtype(dtype).kind == "f":
            width = {np.float16: 16, np.float32: 32}.get(dtype, 64)
            edges = [np.nan, np.inf, -np.inf, 1e4] + ([1e300] if width == 64 else [])
            elems = st.one_of(st.floats(-5, 5, width=width), st.sampled_from(edges))
        arr = draw(hnp.arrays(dtype, shape, elements=elems))
        return kind, lambda p: np.save(p, arr)
    if kind == "npz":
        return kind, lambda p: np.savez(open(p, "wb"), x=np.zeros((2, 3)))
    if kind == "object":
        return kind, lambda p: np.save(p, np.array([[1, None, 2]], dtype=object), allow_pickle=True)
    if kind == "text":
        return kind, lambda p: Path(p).write_text("1,2,3\n")
    if kind == "empty":
        return kind, lambda p: Path(p).write_bytes(b"")
    cut = draw(st.integers(1, 120))
    def truncated(p):
        np.save(p, np.ones((4, 3)))
        Path(p).write_bytes(Path(p).read_bytes()[:cut])
    return kind, truncated


def test_mutated_inputs_forward_or_fail_clearly(model_file):
    @SETTINGS
    @given(input_files(), st.booleans())
    def prop(spec, reverse):
        _, write = spec
        work = Path(tempfile.mkdtemp(prefix="kchip-prop-x-"))
        try:
            x, y = work / "x.npy", work / "y.npy"
            write(x)
            rc, err = _run(["forward", str(model_file), "--inputs", str(x), "-o", str(y)] +
                           (["--reverse"] if reverse else []))
            if rc == 0:
                out = np.load(y)
                assert out.ndim == 2 and np.isfinite(out).all() and out.shape[0] >= 1
            else:
                _clear_error("forward", rc, err)
                assert not y.exists()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    prop()
