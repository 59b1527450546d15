"""The cell library's layouts: DRC-clean and LVS-equal to the subcircuits the netlist stage instantiates,
deterministic, with geometry that matches hand-computed sizes, and broken copies caught where they break."""
from __future__ import annotations

import hashlib

import klayout.db as kdb
import pytest

from kchip.cells.structure import Circuit
from kchip.layout import LayoutError, layout_circuit, write_gds
from kchip.layout.library import CELLS, STDCELLS, build_library, cell_subckt
from kchip.pdk import load_pdk
from kchip.verify.drc import run_drc
from kchip.verify.lvs import run_lvs

PDK = load_pdk()


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    out = tmp_path_factory.mktemp("lib")
    rows = build_library(PDK, out, png=False)
    return out, {r["cell"]: r for r in rows}


@pytest.mark.parametrize("cell", CELLS + STDCELLS)
def test_library_cell_drc_clean_and_lvs_match(library, cell):
    _, rows = library
    r = rows[cell]
    assert r["drc_violations"] == 0, r["drc_failing"]
    assert r["lvs_match"], r["lvs_mismatches"]
    assert r["bbox_area_um2"] > r["gate_area_um2"] > 0 or cell == "node_cap"


def test_structure_renders_the_generator_lines():
    for name in CELLS:
        sub = cell_subckt(name, PDK)
        circ = Circuit.from_subckt(sub, PDK)
        lines = [ln.strip() for ln in sub.text.splitlines() if ln.strip().upper().startswith("X")]
        assert len(lines) == len(circ.devices)
        for ln, d in zip(lines, circ.devices):
            again = Circuit.from_text(f".subckt t a\n{d.line()}\n.ends\n", PDK).devices[0]
            assert (again.nets, again.model, again.w, again.l, again.m) == (d.nets, d.model, d.w, d.l, d.m), ln
            assert ln.split()[:6] == d.line().split()[:6]


def test_ties_become_net_merges(tmp_path):
    """A <= 1 ohm resistor is a tie: one net in the structure and the layout, a short in LVS (reported)."""
    text = (".subckt ktie a b y vdd vss\nMARK\nRtie a b 1\n"
            "XN y b vss vss sky130_fd_pr__nfet_01v8 w=1 l=0.15\nXP y a vdd vdd sky130_fd_pr__pfet_01v8 w=2 l=0.15\n"
            ".ends ktie\n").replace("MARK\n", "")
    circ = Circuit.from_text(text, PDK)
    assert circ.merges == {"b": "a"} and circ.ties == ["Rtie a b 1"] and "b" not in circ.nets
    lay = layout_circuit(circ, PDK)
    gds = write_gds(lay.cell.comp, tmp_path / "ktie.gds")
    sp = tmp_path / "ktie.spice"
    sp.write_text(text + ".end\n")
    rep = run_lvs(gds, sp, PDK)
    assert rep.match, rep.mismatches
    assert rep.ties == ["RTIE (A=B)"]


def test_library_cells_hold_no_ties():
    for name in CELLS:
        assert Circuit.from_subckt(cell_subckt(name, PDK), PDK).ties == [], name


def test_same_inputs_same_gds_bytes(tmp_path):
    sub = cell_subckt("tanh_diff", PDK)
    digests = []
    for k in range(2):
        lay = layout_circuit(Circuit.from_subckt(sub, PDK), PDK)
        digests.append(hashlib.sha256(write_gds(lay.cell.comp, tmp_path / f"a{k}.gds").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    head = (tmp_path / "a0.gds").read_bytes()[:40]
    assert head[6:10] == b"\x00\x1c\x01\x02" and head[10:34] == bytes(24)    # BGNLIB without dates


def test_mos_strip_geometry_by_hand(tmp_path):
    """nfet W/L = 1/0.15 um, one finger: diff = L + 2 source/drain strips of licon 0.17 + 2 x 0.06 (licon.5c) =
    0.73 x 1.0 um; gate poly 0.15 wide, 0.13 past the diff (poly.8); LVS extracts W = 1, L = 0.15."""
    lay = layout_circuit(Circuit.from_subckt(cell_subckt("switch", PDK), PDK), PDK)
    gds = write_gds(lay.cell.comp, tmp_path / "sw.gds")
    ly = kdb.Layout()
    ly.read(str(gds))
    top = ly.top_cell()
    diff = kdb.Region(top.begin_shapes_rec(ly.layer(*PDK.layer("diff"))))
    poly = kdb.Region(top.begin_shapes_rec(ly.layer(*PDK.layer("poly"))))
    b = diff.bbox()
    assert (b.width(), b.height()) == (730, 1000)
    gate = (poly & diff).bbox()
    assert (gate.width(), gate.height()) == (150, 1000)
    fingers = [p.bbox() for p in poly.each() if p.bbox().bottom < b.bottom]
    assert fingers and fingers[0].bottom == b.bottom - 130


def _edit(src, dst, fn):
    ly = kdb.Layout()
    ly.read(str(src))
    fn(ly, ly.top_cell())
    ly.write(str(dst))
    return dst


def _inv(tmp_path):
    sub = cell_subckt("inverter", PDK)
    lay = layout_circuit(Circuit.from_subckt(sub, PDK), PDK)
    gds = write_gds(lay.cell.comp, tmp_path / "inv.gds")
    sp = tmp_path / "inv.spice"
    sp.write_text(sub.text + "\n.end\n")
    return lay, gds, sp


def test_broken_short_between_two_nets(tmp_path):
    lay, gds, sp = _inv(tmp_path)
    (xa, ya), (xy, _) = lay.pins["a"], lay.pins["y"]
    m2 = lambda ly: ly.layer(*PDK.layer("met2"))
    bad = _edit(gds, tmp_path / "short.gds",
                lambda ly, top: top.shapes(m2(ly)).insert(kdb.Box(min(xa, xy), ya - 400, max(xa, xy), ya - 120)))
    rep = run_lvs(bad, sp, PDK)
    assert not rep.match
    assert any(("A" in m.upper() and "Y" in m.upper()) or "a,y" in m.lower() for m in rep.mismatches), rep.mismatches
    assert any(" at (" in m for m in rep.mismatches), rep.mismatches


def test_broken_missing_contact(tmp_path):
    """The via2 that joins the output net's track to its spine removed: y splits; LVS names the net."""
    lay, gds, sp = _inv(tmp_path)
    xs, _ = lay.pins["y"]

    def cut(ly, top):
        li = ly.layer(*PDK.layer("via2"))
        for s in list(top.shapes(li).each()):
            if s.bbox().center().x == xs:
                top.shapes(li).erase(s)
    bad = _edit(gds, tmp_path / "open.gds", cut)
    rep = run_lvs(bad, sp, PDK)
    assert not rep.match
    assert any("Y" in m.upper() for m in rep.mismatches), rep.mismatches


def test_broken_spacing_violation(tmp_path):
    lay, gds, sp = _inv(tmp_path)
    (xa, ya) = lay.pins["a"]
    box = kdb.Box(xa + 140 + 100, ya - 2000, xa + 140 + 400, ya - 1000)   # met2 100 nm beside the 'a' spine
    bad = _edit(gds, tmp_path / "space.gds", lambda ly, top: top.shapes(ly.layer(*PDK.layer("met2"))).insert(box))
    rep = run_drc(bad, PDK)
    failing = {r.name: r for r in rep.failing()}
    assert "m2.2" in failing, rep.summary()
    near = box.enlarged(500, 500)
    assert any(kdb.DBox(*l).overlaps(kdb.DBox(near.left / 1000, near.bottom / 1000, near.right / 1000,
                                               near.top / 1000)) for l in failing["m2.2"].locations), failing["m2.2"]


def test_broken_wrong_transistor_width(tmp_path):
    lay, gds, sp = _inv(tmp_path)
    sp.write_text(sp.read_text().replace("w=2 l=0.15", "w=3 l=0.15"))
    rep = run_lvs(gds, sp, PDK)
    assert not rep.match
    assert any("device" in m and "MP" in m.upper() for m in rep.mismatches), rep.mismatches


def test_isolated_bulk_needs_vdd_for_its_ring():
    circ = Circuit.from_text(".subckt t a b s vss\nXM1 a b s s sky130_fd_pr__nfet_01v8_lvt w=1 l=0.5\n"
                             "XM2 s b vss vss sky130_fd_pr__nfet_01v8 w=1 l=0.5\n.ends\n", PDK)
    with pytest.raises(LayoutError, match="vdd"):
        layout_circuit(circ, PDK)


@pytest.mark.parametrize("cell", CELLS)
def test_committed_golden_gds_is_current(library, cell):
    """layouts/ holds what the generators draw today (regenerate with `kchip layout-cells -o layouts`)."""
    from pathlib import Path
    out, rows = library
    name = rows[cell]["subckt"]
    golden = Path(__file__).resolve().parents[1] / "layouts" / f"{name}.gds"
    assert golden.read_bytes() == (out / f"{name}.gds").read_bytes(), f"{golden} is stale"
