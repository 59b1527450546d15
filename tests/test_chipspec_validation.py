"""ChipSpec: exact JSON round trip; every kind of invalid spec refused with a message naming the field."""
import json

import pytest
import torch

from kchip.hw import DeviceLimits, map_model
from kchip.model import KirchhoffNet, Period
from kchip.quantize import ChipSpec, quantize_model


def _spec():
    torch.manual_seed(0)
    p0 = Period([[1, 0], [0, 2], [1, 2], [2, 1]], "tanh_lin", 0.5, num_nodes=2)
    p1 = Period([[1, 3], [3, 2], [2, 0]], "tanh_lin", 0.5, num_nodes=3)
    m = KirchhoffNet([p0, p1], projector="last1").double()
    x = torch.randn(16, 2, dtype=torch.float64)
    sc = map_model(m, x, DeviceLimits())
    return quantize_model(m, sc, DeviceLimits(), respect_limits=False).spec


def test_roundtrip_exact(tmp_path):
    s = _spec()
    s.save(tmp_path / "c.json")
    s2 = ChipSpec.load(tmp_path / "c.json")
    assert s2 == s
    assert s2.to_json() == s.to_json()
    assert s2.scaling.v_u == s.scaling.v_u and s2.edges[3].values == s.edges[3].values


def _mut(fn):
    d = json.loads(_spec().to_json())
    fn(d)
    return d


CASES = [
    ("edges[2].dst", lambda d: d["edges"][2].update(dst=7)),                           # edge to a missing node
    ("edges[0].codes[1]", lambda d: d["edges"][0]["codes"].__setitem__(1, 64)),        # code out of 6-bit width
    ("periods[1].start", lambda d: d["periods"][1].update(start=0.25)),               # period overlap
    ("nodes[1].cap_f", lambda d: d["nodes"][1].update(cap_f=-1e-15)),                 # negative capacitance
    ("edges[1].cell", lambda d: d["edges"][1].update(cell="sigmoid_diff")),           # unknown cell kind
    ("scaling.c_f", lambda d: d["scaling"].update(c_f=-1.0)),
    ("edges[0].period", lambda d: d["edges"][0].update(period=1)),
    ("nodes[0].role", lambda d: d["nodes"][0].update(role="clock")),
    ("tables['tanh_lin.offset'].values[4]", lambda d: d["tables"]["tanh_lin.offset"]["values"].__setitem__(3, 99.0)),
    ("periods[0].law", lambda d: d["periods"][0].update(law="sigmoid")),
    ("edges[0].codes", lambda d: d["edges"][0]["codes"].pop()),
    ("edges[3].values[0]", lambda d: d["edges"][3]["values"].__setitem__(0, d["edges"][3]["values"][0] + 1e-3)),
]


@pytest.mark.parametrize("field,fn", CASES, ids=[c[0] for c in CASES])
def test_invalid_refused_naming_field(field, fn):
    d = _mut(fn)
    with pytest.raises(ValueError) as ei:
        ChipSpec.from_dict(d)
    assert f"chipspec.{field}" in str(ei.value), str(ei.value)


def test_not_json_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not valid JSON"):
        ChipSpec.from_json("{")
    with pytest.raises(FileNotFoundError):
        ChipSpec.load(tmp_path / "nope.json")
