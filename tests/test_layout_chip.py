"""Chip layout from the netlist stage's transistor deck (testbench control): DRC-clean, LVS-equal to the deck,
deterministic, and broken copies caught."""
from __future__ import annotations

import hashlib

import klayout.db as kdb
import pytest

from kchip.layout import write_gds
from kchip.layout.chip import layout_deck
from kchip.netlist import build_netlist
from kchip.pdk import load_pdk
from kchip.verify.deck import netlist_view, subckts
from kchip.verify.drc import run_drc
from kchip.verify.lvs import run_lvs

from test_netlist_transistor import _stable_spec

PDK = load_pdk()


@pytest.fixture(scope="module")
def chip(tmp_path_factory):
    d = tmp_path_factory.mktemp("chip")
    deck = build_netlist(_stable_spec(), "transistor", control="ideal")
    (d / "chip.spice").write_text(deck)
    lay = layout_deck(deck, PDK)
    gds = write_gds(lay.top.comp, d / "chip.gds")
    return d, deck, lay, gds


def test_netlist_view_keeps_cells_and_drops_models_and_instruments():
    deck = build_netlist(_stable_spec(), "transistor", control="sequencer")
    dropped = []
    subs = subckts(netlist_view(deck, PDK, dropped=dropped))
    assert "kchip_core" in subs and "kchip_chip" in subs and "sky130_fd_sc_hd__dfrtp_1" in subs
    assert not [s for s in subs if s.lower().startswith("sky130_fd_pr__")]
    body = "\n".join(subs["kc_relu_diff_p4_4"][1])
    assert "__k" not in body and "sky130_fd_pr__nfet_01v8_lvt w=16" in body
    assert len(dropped) == 9 and all(d.startswith("kchip_core: ") for d in dropped)      # the output S/H


def test_chip_is_drc_clean_and_lvs_matches_the_deck(chip):
    d, deck, lay, gds = chip
    assert lay.counts["kc_relu_diff_p4_4"] == 4 and lay.counts["kc_relu_diff_n4_4"] == 1
    assert lay.stats["floating_pins"] == {"kchip_core": ["dirp", "smp", "out_1", "out_2", "out_3"]}
    drc = run_drc(gds, PDK)
    assert drc.clean, drc.summary()
    lvs = run_lvs(gds, d / "chip.spice", PDK)
    assert lvs.match, lvs.summary()


def test_chip_gds_is_deterministic(chip, tmp_path):
    _, deck, _, gds = chip
    again = write_gds(layout_deck(deck, PDK).top.comp, tmp_path / "again.gds")
    assert hashlib.sha256(gds.read_bytes()).digest() == hashlib.sha256(again.read_bytes()).digest()


def test_chip_with_two_node_nets_swapped_is_caught(chip, tmp_path):
    d, deck, _, gds = chip
    bad = tmp_path / "bad.spice"
    bad.write_text(deck.replace("X_p0_e0_n1_n2 n1 n2 en_0", "X_p0_e0_n1_n2 n2 n1 en_0"))
    rep = run_lvs(gds, bad, PDK)
    assert not rep.match
    assert any("N1" in m.upper() for m in rep.mismatches) and any(" at (" in m for m in rep.mismatches)


def test_chip_with_a_cut_enable_line_is_caught(chip, tmp_path):
    """The via2s of the en_0 spine removed: the enable line falls apart; LVS names it."""
    d, deck, lay, gds = chip
    ly = kdb.Layout()
    ly.read(str(gds))
    top = ly.top_cell()
    lbl = [s for s in top.shapes(ly.layer(*PDK.layer("met2", "label"))).each() if s.text_string == "en_0"]
    assert lbl
    x = lbl[0].text_pos.x
    li = ly.layer(*PDK.layer("via2"))
    for s in [s for s in top.shapes(li).each() if s.bbox().center().x == x]:
        top.shapes(li).erase(s)
    cut = tmp_path / "cut.gds"
    ly.write(str(cut))
    rep = run_lvs(cut, d / "chip.spice", PDK)
    assert not rep.match
    assert any("EN_0" in m.upper() for m in rep.mismatches), rep.mismatches


def test_flow_stages_layout_drc_lvs(chip, tmp_path):
    """The flow's layout / drc / lvs stages on the netlist stage's deck (a FlowContext as kchip.flow builds it)."""
    from kchip.flow import FlowContext, _resolve
    from kchip.flowschema import section
    d, deck, _, _ = chip
    root = tmp_path / "flowchip"
    (root / "03-netlist").mkdir(parents=True)
    (root / "03-netlist" / "chip.spice").write_text(deck)
    ctx = FlowContext("flowchip", root, tmp_path, {"netlist": {"netlist": "03-netlist/chip.spice",
                                                              "level": "transistor"}})
    for i, stage in enumerate(("layout", "drc", "lvs"), start=4):
        ctx.results[stage] = _resolve(stage)(section(stage), ctx, ctx.stage_dir(i, stage))
    assert ctx.results["layout"]["instances"] == 19
    assert ctx.results["drc"]["clean"] and ctx.results["lvs"]["match"], ctx.results
    with pytest.raises(ValueError, match="layout.bogus: unknown key; allowed: aspect"):
        section("layout", {"bogus": 1})
