"""Every rule of rules.yaml: a hand-made pattern at the rule value passes, one grid step short fails, and the
report points at the short spot (tests/layout_patterns.py draws them)."""
from __future__ import annotations

import pytest

from kchip.pdk import load_pdk
from kchip.verify.drc import run_drc

from layout_patterns import hand_patterns, patterns

PDK = load_pdk()
RULES = PDK.rules
HAND = {"nwell.5", "nwell.6"}


def _overlaps(loc, box, dbu=0.001):
    x0, y0, x1, y1 = (v * dbu for v in box)
    return not (loc[2] < x0 or loc[0] > x1 or loc[3] < y0 or loc[1] > y1)


@pytest.mark.parametrize("rule", RULES, ids=[r["name"] for r in RULES])
def test_rule_pattern_passes_and_fails(rule, tmp_path):
    ok, bad, where = hand_patterns(rule["name"], PDK) if rule["name"] in HAND else patterns(rule, PDK)
    r_ok = run_drc(ok.write(tmp_path / "ok.gds"), PDK, rules=[rule["name"]])
    r_bad = run_drc(bad.write(tmp_path / "bad.gds"), PDK, rules=[rule["name"]])
    assert r_ok.violations == 0, r_ok.summary()
    assert r_bad.violations >= 1, f"{rule['name']}: the failing pattern passed"
    locs = r_bad.results[0].locations
    assert any(_overlaps(l, where) for l in locs), (rule["name"], locs, where)


def test_every_rule_cites_a_name_and_doc():
    for r in RULES:
        assert r.get("doc"), r["name"]
        if r["kind"] not in ("empty", "covered", "straddle"):
            assert float(r["value"]) > 0, r["name"]


def test_unknown_rule_and_missing_file_are_clear(tmp_path):
    from kchip.verify.drc import DrcError
    with pytest.raises(DrcError, match="no such GDS"):
        run_drc(tmp_path / "nope.gds", PDK)
    ok, _, _ = patterns(RULES[0], PDK)
    g = ok.write(tmp_path / "ok.gds")
    with pytest.raises(DrcError, match="unknown rule"):
        run_drc(g, PDK, rules=["m9.99"])
