"""Topology generators against literal loops (tests/reference.py) and torch's own unfold."""
import pytest
import torch

from kchip.model import topology as T
from reference import REF_GENERATORS, _ref_windows

CASES = [
    ("_fully_connect", dict(num_node=3, repeat=[25, 25])),
    ("_fully_connect", dict(num_node=4, include_gnd=False, repeat=[1, 2])),
    ("_simple_connect", dict(num_node=5, repeat=[2, 0])),
    ("_simple_connect", dict(num_node=3, include_gnd=False)),
    ("_neighbor_index", dict(num_channel=1, width=4, height=3, neighbor_size=2)),
    ("_neighbor_index", dict(num_channel=2, width=3, height=3, neighbor_size=2, repeat=2)),
    ("_neighbor_index", dict(num_channel=1, width=3, height=3, neighbor_size=2, padding=True)),
    ("_neighbor_index", dict(num_channel=1, width=3, height=4, neighbor_size=2, sharing=True)),
    ("_neighbor_index", dict(num_channel=1, width=3, height=3, neighbor_size=2, parallel=3)),
    ("_mix_connect", dict(num_channel=1, width=4, height=4, neighbor_size=3, fully_connect_node=3, repeat=[1, 1])),
    ("_mix_connect", dict(num_channel=1, width=3, height=3, neighbor_size=2, fully_connect_node=2,
                          repeat=[2, 1], kernel_repeat=2)),
    ("_mix_connect", dict(num_channel=1, width=3, height=3, neighbor_size=2, fully_connect_node=1,
                          sharing=True, padding=True)),
]


@pytest.mark.parametrize("name,args", CASES)
def test_generator_matches_literal_loops(name, args):
    got = T.generate(name, args)
    ref, _ = REF_GENERATORS[name](**args)
    assert got.tolist() == [list(r) for r in ref]


def test_twomoon_fully_connect_has_300_edges_over_two_nodes():
    e = T._fully_connect(3, repeat=[25, 25])
    assert e.shape == (300, 3) and e[:, :2].max() == 2 and e[:, 2].tolist() == list(range(300))


@pytest.mark.parametrize("c,w,h,k,pad", [(1, 4, 3, 2, False), (2, 3, 3, 2, False), (1, 3, 3, 2, True)])
def test_windows_follow_torch_unfold(c, w, h, k, pad):
    grid = torch.arange(1, 1 + c * w * h).reshape(1, c, w, h).float()
    unf = torch.nn.functional.unfold(grid, kernel_size=k, padding=(k - 1) if pad else 0, stride=1)
    expect = unf[0].t().long().tolist()
    assert _ref_windows(c, w, h, k, pad) == expect
    assert T._windows(c, w, h, k, pad).tolist() == expect


def test_paper_layers():
    fc = T.fc(2)                       # nodes 1..2 + ground, every ordered pair
    assert sorted(map(tuple, fc[:, :2].tolist())) == sorted((i, j) for i in range(3) for j in range(3) if i != j
                                                            for _ in range(1))
    ne = T.ne(1, 3, 3, 2)
    assert ne[:, :2].max() == 9 and ((ne[:, 0] == 0) | (ne[:, 1] == 0)).sum() == 18
    pj = T.proj(1, 3, 3, 2, extra=2)
    assert pj[:, :2].max() == 11
    # each extra node is joined to ground and all 9 grid nodes in both directions
    for extra in (10, 11):
        partners = set(pj[pj[:, 1] == extra, 0].tolist())
        assert partners == set(range(0, 10))


def test_unknown_generator_and_bad_args():
    with pytest.raises(ValueError, match="unknown topology generator 'star'"):
        T.generate("star", {}, "cfg.yaml: network.net_struct[0]")
    with pytest.raises(ValueError, match=r"net_struct\[0\]\.args\.nodes: unknown argument .*allowed: num_node"):
        T.generate("_fully_connect", {"nodes": 3}, "cfg.yaml: network.net_struct[0]")
    with pytest.raises(ValueError, match=r"\.args\.num_node: 'x': an integer in \[1, 4096\]"):
        T.generate("fc", {"num_node": "x"}, "cfg.yaml: network.net_struct[0]")
    with pytest.raises(ValueError, match=r"\.args\.repeat: \[1\]: a pair"):
        T.generate("fc", {"num_node": 3, "repeat": [1]}, "w")
    with pytest.raises(ValueError, match=r"\.args: missing argument 'num_node'"):
        T.generate("fc", {}, "w")
    with pytest.raises(ValueError, match=r"about 16,785,409 edges; at most 1,000,000"):
        T.generate("fc", {"num_node": 4096}, "w")
