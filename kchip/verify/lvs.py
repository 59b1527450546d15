"""`kchip lvs`: extract devices and connectivity from a GDS and compare them with a SPICE schematic.

Extraction (klayout.db LayoutVsSchematic, hierarchical):
  * MOS4 devices per class: n-type diff (diff & nsdm outside nwell) or p-type (diff & psdm in nwell) under poly,
    split by the lvtn implant into nfet_01v8 / nfet_01v8_lvt / pfet_01v8 / pfet_01v8_lvt (W, L per finger);
    bulk: the substrate (the cell boundary less the n-wells) for n-type, the n-well for p-type;
  * MIM capacitors (cap_mim_m3_1): capm over met3, C from the area (pdk.yaml devices.mimcap.c_area_f_per_um2);
  * connectivity poly/diff/tap -> licon -> li -> mcon -> met1 -> via -> met2 -> via2 -> met3 -> via3 -> met4
    (a via3 on capm joins the top plate to met4, elsewhere met3 to met4); labels name the nets.
Schematic: the SPICE text read by KLayout's reader, the PDK device subcircuit calls (X... sky130_fd_pr__...)
turned into devices (W of an m-fold device = m W), and resistors of at most kchip.cells.structure.TIE_OHMS
read as shorts (the cells' ties, listed in the report). Parallel devices are combined on both sides (fingers and
multipliers). The report says match, or names each mismatched net, device and pin with its location.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import klayout.db as kdb

from ..cells.structure import TIE_OHMS
from ..fsio import write_json
from ..pdk import Pdk

__all__ = ["LvsReport", "run_lvs", "LvsError"]

MOS_KINDS = ("nfet", "nfet_lvt", "pfet", "pfet_lvt", "pfet_hvt", "nfet_special")
# Schematic devices that no layer tells apart from another device: read as that device's class.
SAME_AS = {"nfet_special": "nfet"}
# Relative tolerance on a MOS W (after combining fingers and copies): a schematic width off the 5 nm grid is drawn
# at the nearest grid width (the layout lists it as snapped): tanh_lin's w_tt = 1.022 um is drawn 1.020 (0.2 %).
W_REL_TOL = 5e-3


class LvsError(ValueError):
    """A bad LVS input (file, top cell, subcircuit)."""


@dataclass
class LvsReport:
    gds: str
    schematic: str
    circuit: str
    match: bool
    layout_devices: int
    schematic_devices: int
    layout_nets: int
    schematic_nets: int
    mismatches: List[str] = field(default_factory=list)
    ties: List[str] = field(default_factory=list)
    seconds: float = 0.0
    ideal_elements: List[str] = field(default_factory=list)     # schematic elements with no layout (instruments)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def summary(self) -> str:
        head = (f"LVS {self.circuit}: {'MATCH' if self.match else 'MISMATCH'} (layout {self.layout_devices} devices "
                f"/ {self.layout_nets} nets, schematic {self.schematic_devices} / {self.schematic_nets})")
        tie = [f"  ties read as shorts: {', '.join(self.ties)}"] if self.ties else []
        if self.ideal_elements:
            tie.append(f"  {len(self.ideal_elements)} ideal schematic elements have no layout (instruments), e.g. "
                       f"{'; '.join(self.ideal_elements[:3])}")
        return "\n".join([head] + tie + ["  " + m for m in self.mismatches])


class _Reader(kdb.NetlistSpiceReaderDelegate):
    """PDK device calls -> devices; ties -> shorts."""

    def __init__(self, pdk: Pdk):
        super().__init__()
        self.pdk = pdk
        self.kinds = {pdk.device(k)["name"].upper(): k for k in pdk.data["devices"]}   # the reader upper-cases
        self.ties: List[str] = []
        self.joins: List[tuple] = []
        self.classes: Dict[str, object] = {}

    def wants_subcircuit(self, name):
        return name.upper() in self.kinds

    def _class(self, circuit, model: str, kind: str):
        # one class per model (the netlist's own lookup does not see classes added while reading)
        dc = self.classes.get(model)
        if dc is None:
            dc = kdb.DeviceClassMOS4Transistor() if kind in MOS_KINDS else \
                kdb.DeviceClassResistorWithBulk() if kind.startswith("res") else kdb.DeviceClassCapacitor()
            dc.name = model
            circuit.netlist().add(dc)
            self.classes[model] = dc
        return dc

    def element(self, circuit, el, name, model, value, nets, params):
        if ((el == "R" and value is not None and abs(value) <= TIE_OHMS) or (el == "V" and not value)) \
                and len(nets) == 2:
            self.ties.append(f"R{name} ({nets[0].name}={nets[1].name})")
            self.joins.append((circuit, nets[0], nets[1]))
            return True
        if el != "X" or model.upper() not in self.kinds:
            return False
        kind = self.kinds[model.upper()]
        kind = SAME_AS.get(kind, kind)
        model = self.pdk.device(kind)["name"]
        p = {k.upper(): v for k, v in params.items()}
        m = float(p.get("M", p.get("MULT", 1.0)) or 1.0)
        if kind in MOS_KINDS:
            if len(nets) != 4:
                raise LvsError(f"schematic: X{name} ({model}): {len(nets)} terminals, expected 4 (d g s b)")
            dc = self._class(circuit, model, kind)
            dev = circuit.create_device(dc, name)
            for term, net in zip(("D", "G", "S", "B"), nets):
                dev.connect_terminal(term, net)
            dev.set_parameter("W", float(p["W"]) * m)
            dev.set_parameter("L", float(p["L"]))
            return True
        if kind == "mimcap":
            dc = self._class(circuit, model, kind)
            dev = circuit.create_device(dc, name)
            dev.connect_terminal("A", nets[0])
            dev.connect_terminal("B", nets[1])
            area = float(p["W"]) * float(p["L"])
            ca = float(self.pdk.device("mimcap")["c_area_f_per_um2"])
            dev.set_parameter("C", ca * area * m)
            dev.set_parameter("A", area * m)
            return True
        if kind == "res_xhigh":
            if m != 1:
                raise LvsError(f"schematic: X{name} ({model}): m={m:g} parallel precision resistors not supported")
            dc = self._class(circuit, model, kind)
            dev = circuit.create_device(dc, name)
            for term, net in zip(("A", "B", "W"), nets):
                dev.connect_terminal(term, net)
            w, l = float(p["W"]), float(p["L"])
            dev.set_parameter("W", w)
            dev.set_parameter("L", l)
            dev.set_parameter("R", float(self.pdk.device(kind)["rs_ohm_per_sq"]) * l / w)
            return True
        raise LvsError(f"schematic: X{name} ({model}): kchip's LVS has no extraction for a {kind!r}")


def read_schematic(path: Path, pdk: Pdk, circuit: Optional[str] = None, dropped: Optional[List[str]] = None):
    """(netlist, ties) of a SPICE file (or a netlist-stage deck: kchip.verify.deck.netlist_view); keeps only
    `circuit` (and what it instantiates) when given. Ideal elements left out are appended to `dropped`."""
    import tempfile
    from .deck import DeckError, netlist_view
    rd = _Reader(pdk)
    nl = kdb.Netlist()
    try:
        view = netlist_view(Path(path).read_text(errors="replace"), pdk, Path(path).parent, dropped=dropped)
    except DeckError as e:
        raise LvsError(f"{path}: {e}") from None
    with tempfile.TemporaryDirectory() as d:
        plain = Path(d) / "schematic.spice"
        plain.write_text(view)
        try:
            nl.read(str(plain), kdb.NetlistSpiceReader(rd))
        except RuntimeError as e:
            raise LvsError(f"{path}: SPICE read failed: {e}") from None
    for c, a, b in rd.joins:
        c.join_nets(a, b)
    for c in {id(c): c for c, _, _ in rd.joins}.values():
        _one_pin_per_net(c)
    if circuit is not None:
        top = nl.circuit_by_name(circuit)
        if top is None:
            names = ", ".join(c.name for c in nl.each_circuit())
            raise LvsError(f"{path}: no subcircuit {circuit!r} (has: {names})")
        keep = {top.name} | {c.name for c in _children(top)}
        for c in [c for c in nl.each_circuit() if c.name not in keep]:
            nl.remove(c)
    return nl, rd.ties


def _one_pin_per_net(c) -> None:
    """A tie between two pins leaves two pins on one net: keep the first (the layout has one net, one pin)."""
    seen = set()
    for pin in list(c.each_pin()):
        net = c.net_for_pin(pin)
        key = net.cluster_id if net is not None else None
        if net is not None and key in seen:
            c.remove_pin(pin.id())
        elif net is not None:
            seen.add(key)


def _children(c):
    out = []
    for sc in c.each_subcircuit():
        ref = sc.circuit_ref()
        out.append(ref)
        out += _children(ref)
    return out


def _extract(layout: kdb.Layout, top: kdb.Cell, pdk: Pdk) -> kdb.LayoutVsSchematic:
    lvs = kdb.LayoutVsSchematic(kdb.RecursiveShapeIterator(layout, top, []))
    P = lambda n: lvs.make_polygon_layer(layout.layer(*pdk.layer(n)), n)
    T = lambda n: lvs.make_text_layer(layout.layer(*pdk.layer(n, "label")), n + "_lbl")
    nwell, diff, tap, poly = P("nwell"), P("diff"), P("tap"), P("poly")
    nsdm, psdm, lvtn, hvtp, bnd = P("nsdm"), P("psdm"), P("lvtn"), P("hvtp"), P("prbndry")
    licon, li, mcon, m1, via, m2, via2, m3, via3, m4 = (P(n) for n in
                                                       ("licon", "li", "mcon", "met1", "via", "met2", "via2",
                                                        "met3", "via3", "met4"))
    capm, polyres = P("capm"), P("polyres")
    res_body = poly & polyres
    poly_c = poly - polyres            # conducting poly: the resistor body is a device, not a wire
    ndiff = (diff & nsdm) - nwell
    pdiff = (diff & psdm) & nwell
    ngate, pgate = ndiff & poly, pdiff & poly
    nsd, psd = ndiff - poly, pdiff - poly
    ptap = (tap & psdm) - nwell
    ntap = (tap & nsdm) & nwell
    sub = bnd - nwell
    via3_cap = via3 & capm
    via3_m = via3 - capm
    regs = dict(nsd=nsd, psd=psd, ptap=ptap, ntap=ntap, sub=sub, via3_cap=via3_cap, via3_m=via3_m,
                res_body=res_body, poly_c=poly_c)
    for k, r in regs.items():
        lvs.register(r, k)
    classes = {"nfet": (ngate - lvtn, nsd, sub), "nfet_lvt": (ngate & lvtn, nsd, sub),
               "pfet": (pgate - lvtn - hvtp, psd, nwell), "pfet_lvt": (pgate & lvtn, psd, nwell),
               "pfet_hvt": (pgate & hvtp, psd, nwell)}
    for kind, (g, sd, w) in classes.items():
        lvs.register(g, f"gate_{kind}")
        ex = kdb.DeviceExtractorMOS4Transistor(pdk.device(kind)["name"])
        lvs.extract_devices(ex, {"SD": sd, "G": g, "P": poly_c, "W": w})
    cap = pdk.device("mimcap")
    ex = kdb.DeviceExtractorCapacitor(cap["name"], float(cap["c_area_f_per_um2"]))
    lvs.extract_devices(ex, {"P1": capm, "P2": m3})
    res = pdk.device("res_xhigh")
    ex = kdb.DeviceExtractorResistorWithBulk(res["name"], float(res["rs_ohm_per_sq"]))
    lvs.extract_devices(ex, {"R": res_body, "C": poly_c, "W": sub})
    for a, b in ((poly_c, licon), (nsd, licon), (psd, licon), (ptap, licon), (ntap, licon), (licon, li),
                 (li, mcon), (mcon, m1), (m1, via), (via, m2), (m2, via2), (via2, m3), (m3, via3_m),
                 (via3_m, m4), (capm, via3_cap), (via3_cap, m4), (sub, ptap), (nwell, ntap)):
        lvs.connect(a, b)
    for n, lay in (("li", li), ("met1", m1), ("met2", m2), ("met3", m3), ("met4", m4), ("nwell", nwell),
                   ("pwell", sub)):
        lvs.connect(lay, T(n))
    for lay in (nwell, diff, tap, poly_c, li, m1, m2, m3, m4, capm, sub, nsd, psd):
        lvs.connect(lay)
    lvs.extract_netlist()
    return lvs


def _ensure_boundary(layout: kdb.Layout, cell: kdb.Cell, pdk: Pdk) -> None:
    """The substrate is the cell boundary less the n-wells: a GDS without a prBoundary (e.g. a standard cell)
    gets its bounding box as the boundary (in memory only)."""
    li = layout.layer(*pdk.layer("prbndry"))
    if kdb.Region(cell.begin_shapes_rec(li)).is_empty():
        cell.shapes(li).insert(cell.bbox().enlarged(500, 500))


def _prepare(nl: kdb.Netlist, pdk: Pdk) -> None:
    for kind in MOS_KINDS:
        dc = nl.device_class_by_name(pdk.device(kind)["name"])
        if dc is not None:
            eq = kdb.EqualDeviceParameters(kdb.DeviceClassMOS4Transistor.PARAM_W, 0.0, W_REL_TOL) + \
                 kdb.EqualDeviceParameters(kdb.DeviceClassMOS4Transistor.PARAM_L, 0.0, 1e-3)
            dc.equal_parameters = eq
    dc = nl.device_class_by_name(pdk.device("res_xhigh")["name"])
    if dc is not None:
        dc.equal_parameters = kdb.EqualDeviceParameters(kdb.DeviceClassResistor.PARAM_W, 0.0, 1e-3) + \
            kdb.EqualDeviceParameters(kdb.DeviceClassResistor.PARAM_L, 0.0, 1e-3)
    dc = nl.device_class_by_name(pdk.device("mimcap")["name"])
    if dc is not None:
        dc.equal_parameters = kdb.EqualDeviceParameters(kdb.DeviceClassCapacitor.PARAM_C, 0.0, 1e-3)
    nl.combine_devices()
    nl.make_top_level_pins()
    nl.purge()


def run_lvs(gds: Path, schematic: Path, pdk: Pdk, top: Optional[str] = None, circuit: Optional[str] = None,
            lvsdb: Optional[Path] = None, json_out: Optional[Path] = None) -> LvsReport:
    """Compare the top cell of `gds` with subcircuit `circuit` (default: the cell's name) of `schematic`."""
    t0 = time.perf_counter()
    gds, schematic = Path(gds), Path(schematic)
    for f in (gds, schematic):
        if not f.is_file():
            raise LvsError(f"{f}: no such file")
    layout = kdb.Layout()
    try:
        layout.read(str(gds))
    except RuntimeError as e:
        raise LvsError(f"{gds}: not a readable GDS/OASIS file: {e}") from None
    from .drc import DrcError, _top_cell
    try:
        cell = _top_cell(layout, top, gds)
    except DrcError as e:
        raise LvsError(str(e)) from None
    _ensure_boundary(layout, cell, pdk)
    name = circuit or cell.name
    dropped: List[str] = []
    schem, ties = read_schematic(schematic, pdk, name, dropped)
    lvs = _extract(layout, cell, pdk)
    lnl = lvs.netlist()
    lnl.circuit_by_name(cell.name).name = name
    # layout cells that are not schematic subcircuits (device strips, wells) dissolve into their parents; the
    # cells that are (a chip's kc_* cells) stay, so a chip compares hierarchically, cell by cell
    known = {c.name.upper() for c in schem.each_circuit()}
    for c in list(lnl.each_circuit_bottom_up()):
        if c.name.upper() not in known and c.name != name:
            lnl.flatten_circuit(c)
    _prepare(lnl, pdk)
    _prepare(schem, pdk)
    lvs.reference = schem
    comp = kdb.NetlistComparer()
    ok = bool(lvs.compare(comp))
    mism = [] if ok else _mismatches(lvs, layout.dbu)
    lc, sc = lnl.circuit_by_name(name), schem.circuit_by_name(name)
    count = lambda c, what: len(list(getattr(c, what)())) if c is not None else 0
    rep = LvsReport(str(gds), str(schematic), name, ok, count(lc, "each_device"), count(sc, "each_device"),
                    count(lc, "each_net"), count(sc, "each_net"), mism, ties, time.perf_counter() - t0,
                    ideal_elements=dropped)
    if lvsdb is not None:
        Path(lvsdb).parent.mkdir(parents=True, exist_ok=True)
        lvs.write(str(lvsdb))
    if json_out is not None:
        write_json(json_out, rep.to_dict(), indent=1)
    return rep


def _where(lvs, net, dbu) -> str:
    if net is None:
        return ""
    b = kdb.Box()
    for name in ("met1", "met2", "met3", "li", "poly"):
        lay = lvs.layer_by_name(name)
        if lay is not None:
            b += lvs.shapes_of_net(net, lay, True).bbox()
    if b.empty():
        return ""
    return f" at ({b.left * dbu:.3f}, {b.bottom * dbu:.3f})-({b.right * dbu:.3f}, {b.top * dbu:.3f}) um"


def _where_dev(lvs, dev, dbu) -> str:
    """Location of an extracted device (its reference point, um)."""
    if dev is None:
        return ""
    try:
        d = dev.trans.disp
    except AttributeError:
        return ""
    return f" at ({d.x:.3f}, {d.y:.3f}) um"


def _mismatches(lvs, dbu) -> List[str]:
    xref = lvs.xref()
    X = kdb.NetlistCrossReference
    bad = (X.Mismatch, X.NoMatch)
    out: List[str] = []
    for cp in xref.each_circuit_pair():
        for npair in xref.each_net_pair(cp):
            if npair.status() in bad:
                a, b = npair.first(), npair.second()
                out.append(f"net: layout {a.expanded_name() if a else '-'} / schematic "
                           f"{b.expanded_name() if b else '-'}{_where(lvs, a, dbu)}")
        for dp in xref.each_device_pair(cp):
            if dp.status() in bad + (X.MatchWithWarning,):      # a warning here = parameters differ
                a, b = dp.first(), dp.second()
                desc = lambda d: (f"{d.expanded_name()} {d.device_class().name} "
                                  f"W={d.parameter('W'):.4g} L={d.parameter('L'):.4g}"
                                  if d is not None and d.device_class().name.find("cap") < 0 else
                                  (f"{d.expanded_name()} {d.device_class().name}" if d is not None else "-"))
                what = "parameters differ" if dp.status() == X.MatchWithWarning else "no match"
                out.append(f"device ({what}): layout {desc(a)} / schematic {desc(b)}{_where_dev(lvs, a, dbu)}")
        for pp in xref.each_pin_pair(cp):
            if pp.status() in bad:
                a, b = pp.first(), pp.second()
                out.append(f"pin: layout {a.expanded_name() if a else '-'} / schematic "
                           f"{b.expanded_name() if b else '-'}")
    if not out:
        out.append("circuits differ (no net, device or pin pair flagged; see the .lvsdb)")
    return out
