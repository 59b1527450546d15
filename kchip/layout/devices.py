"""Device generators: a MOS strip (nfet / pfet, standard or low-Vt, any number of fingers, with its own
substrate or well tap) and a MIM capacitor (cap_mim_m3_1). Every size comes from `LayoutRules`.

Each generator returns an `Item`: one cell (drawn once per distinct geometry, placed many times), its frame
(x extent that neighbours abut), its y extent, and its terminals. A terminal is a met2 landing pad (on a via1 for
MOS terminals, on a via2 for capacitor plates) from which the cell router runs a vertical met2 riser up to the
net's met3 track; its `role` names the device pin ('s', 'd', 'g', 'b'; 'c0' top plate, 'c1' bottom plate).

MOS strip, in the cell's own coordinates (diff lower-left at the origin, gates vertical):

    tap | gap | S g D g S ... | gate contact        poly fingers joined by a poly bar above the diff,
                                                   contacted once at the right (licon, li, mcon, met1, via1)

Source/drain strips alternate s, d, s, ... from the left; the cell router assigns nets to them. A pfet strip
needs an nwell: the cell router draws one per row of pfets (so that neighbouring wells merge); lvt devices get
their own lvtn rectangle (lvtn.4b).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

from .canvas import Canvas, Library
from .rules import LayoutError, LayoutRules

__all__ = ["Item", "Placed", "Terminal", "mos_strip", "mim_cap", "stack_up"]


@dataclass(frozen=True)
class Terminal:
    role: str      # device pin the terminal belongs to
    x: int         # riser centre x
    y: int         # riser start (bottom of the met2 landing pad)


@dataclass
class Item:
    cell: Canvas
    x0: int                      # frame: neighbours abut at x0 / x1
    x1: int
    y0: int                      # lowest feature (well / implant included)
    y1: int                      # highest feature
    terminals: List[Terminal] = field(default_factory=list)
    well: str = ""               # 'n' for a pfet strip: wants the row's nwell over [x0, x1]
    well_y: Tuple[int, int] = (0, 0)

    @property
    def width(self) -> int:
        return self.x1 - self.x0


@dataclass
class Placed:
    """An item placed in a cell, with the net of each of its terminals."""
    item: Item
    nets: List[str]               # net of each of item.terminals
    device: str                   # instance name of the schematic device (strips share it)
    x: int = 0                    # placement origin
    y: int = 0


def contact_column(n_max_len: int, cut: int, space: int) -> Tuple[int, int]:
    """How many cuts of `cut` at pitch cut + space fit in a length, and the length they use."""
    n = max(1, (n_max_len - cut) // (cut + space) + 1)
    return n, n * cut + (n - 1) * space


def _cuts(n: int, cut: int, space: int, start: int) -> List[int]:
    return [start + i * (cut + space) for i in range(n)]


def stack_up(c: Canvas, R: LayoutRules, xc: int, y_lo: int, y_hi: int) -> Tuple[int, int]:
    """li strip over a licon column spanning [y_lo, y_hi] (cuts drawn by the caller), mcons on it, a met1 strip,
    a via1 at its centre and the met2 landing. Returns (via1 centre y, landing bottom y)."""
    li_lo, li_hi = y_lo - R.li_adj, y_hi + R.li_adj
    need = -(-R.li_area // R.licon)
    if li_hi - li_lo < need:
        grow = R.snap((need - (li_hi - li_lo) + 1) / 2)
        li_lo, li_hi = li_lo - grow, li_hi + grow
    c.box("li", xc - R.licon // 2, li_lo, xc + R.licon - R.licon // 2, li_hi)
    nm = max(1, (li_hi - li_lo - R.mcon) // (R.mcon + R.mcon_sp) + 1)
    used = nm * R.mcon + (nm - 1) * R.mcon_sp
    m0 = li_lo + (li_hi - li_lo - used) // (2 * R.grid) * R.grid
    for y in _cuts(nm, R.mcon, R.mcon_sp, m0):
        c.box("mcon", xc - R.mcon // 2, y, xc + R.mcon - R.mcon // 2, y + R.mcon)
    yv = R.snap((li_lo + li_hi) / 2 - R.via / 2) + R.via // 2
    lo = min(m0 - R.m1_mcon_adj, yv - R.via // 2 - R.m1_via_adj)
    hi = max(m0 + used + R.m1_mcon_adj, yv + R.via // 2 + R.m1_via_adj)
    need = -(-R.m1_area // R.m1_strip)
    if hi - lo < need:
        grow = R.snap((need - (hi - lo) + 1) / 2)
        lo, hi = lo - grow, hi + grow
    c.box("met1", xc - R.m1_strip // 2, lo, xc + R.m1_strip - R.m1_strip // 2, hi)
    return yv, _via1_landing(c, R, xc, yv)


def _landing(c: Canvas, R: LayoutRules, xc: int, yv: int, cut: str, size: int, adj: int) -> int:
    """A via (`cut`, size x size) centred at (xc, yv) and the met2 landing pad above it (a riser's width,
    `adj` past the cut in y). Returns the pad's bottom, where the riser starts."""
    c.cbox(cut, xc, yv, size, size)
    lo = yv - size // 2 - adj
    c.box("met2", xc - R.riser // 2, lo, xc + R.riser - R.riser // 2, lo + size + 2 * adj)
    return lo


def _via1_landing(c: Canvas, R: LayoutRules, xc: int, yv: int) -> int:
    return _landing(c, R, xc, yv, "via", R.via, R.m2_via_adj)


def _via2_landing(c: Canvas, R: LayoutRules, xc: int, yv: int) -> int:
    return _landing(c, R, xc, yv, "via2", R.via2, R.m2_via2_adj)


# Placement margins of the MOS strip (nm). They are not foundry rules; each keeps a rule with room to spare:
GATE_BAR_GAP = 150      # diff top to poly bar: poly.4 (0.075) and, with the bar's licon, licon.14 (0.19)
GATE_CONTACT_DX = 350   # diff right edge to the gate licon centre: licon.9 (0.11) to the psdm corner (0.123)
IMPLANT_OUT = 200       # implant past the diff / tap, where the two implants abut: nsd.5a (0.125), nsd.7 (0.13)
FRAME_PAD = 285         # frame beyond the poly bar: npc (0.1 past the licon) plus licon.14 to a neighbour's tap


def mos_strip(lib: Library, R: LayoutRules, kind: str, w: float, l: float, nf: int) -> Item:
    """A MOS strip of nf fingers of W/L = w/l um (`kind`: nfet, nfet_lvt, pfet, pfet_lvt) with its own tap."""
    if kind not in ("nfet", "nfet_lvt", "pfet", "pfet_lvt"):
        raise LayoutError(f"no MOS generator for a {kind!r} (kchip draws nfet, nfet_lvt, pfet, pfet_lvt)")
    W, L = R.snap(w * 1000), R.snap(l * 1000)
    if W < R.licon + 2 * R.licon_diff:
        raise LayoutError(f"{kind} w={w} um: narrower than one contact row needs "
                          f"({(R.licon + 2 * R.licon_diff) / 1000:g} um)")
    name = f"kc_{kind}_w{W}_l{L}_f{nf}"
    got = lib.items.get(name)
    if got is not None:
        return got
    c = lib.new_cell(name)
    X = nf * L + (nf + 1) * R.sd
    c.box("diff", 0, 0, X, W)
    terms = _sd_contacts(c, R, W, L, nf)
    g_term, bar_r, bar_top = _gate(c, R, W, L, nf, X)
    b_term, TH, tx0, gap = _tap(c, R, W)
    terms += [g_term, b_term]
    pol = "p" if kind.startswith("pfet") else "n"
    sd_imp, tap_imp = ("psdm", "nsdm") if pol == "p" else ("nsdm", "psdm")
    imp = R.implant_diff
    mid = -gap // 2 // R.grid * R.grid
    x0 = tx0 - gap // 2
    c.box(sd_imp, mid, -imp, X + IMPLANT_OUT, W + imp)
    c.box(tap_imp, x0, -imp, mid, TH + imp)
    ylo, yhi = -imp - 100, max(bar_top, TH + imp)
    item = Item(c, x0, bar_r + FRAME_PAD, ylo, yhi, terms)
    if kind.endswith("_lvt"):
        c.box("lvtn", R.sd - R.lvtn_gate, -R.lvtn_gate, X - R.sd + R.lvtn_gate, W + R.lvtn_gate)
    if pol == "p":
        m = max(R.nwell_pdiff, R.lvtn_gate + R.nwell_lvtn if kind.endswith("_lvt") else 0)
        item.well = "n"
        item.well_y = (min(-m, -R.nwell_pdiff), max(W + m, TH + R.nwell_pdiff, yhi + 100))
        item.y0 = min(item.y0, item.well_y[0])
        item.y1 = max(item.y1, item.well_y[1])
    lib.items[name] = item
    return item


def _sd_contacts(c: Canvas, R: LayoutRules, W: int, L: int, nf: int) -> List[Terminal]:
    """Source / drain strips: a licon column each, with li, mcons, met1 and a via1 landing; s, d, s, ..."""
    n, used = contact_column(W - 2 * R.licon_diff, R.licon, R.licon_sp)
    y0 = ((W - used) // 2) // R.grid * R.grid
    terms = []
    for k in range(nf + 1):
        xc = k * (L + R.sd) + R.sd // 2
        xc = xc // R.grid * R.grid if (R.licon // 2) % R.grid == 0 else xc
        xl = xc - R.licon // 2
        for y in _cuts(n, R.licon, R.licon_sp, y0):
            c.box("licon", xl, y, xl + R.licon, y + R.licon)
        _, land = stack_up(c, R, xc, y0, y0 + used)
        terms.append(Terminal("s" if k % 2 == 0 else "d", xc, land))
    return terms


def _gate(c: Canvas, R: LayoutRules, W: int, L: int, nf: int, X: int) -> Tuple[Terminal, int, int]:
    """Poly fingers (poly.8 endcap below), the poly bar above the diff and its one contact right of the diff.
    Returns (gate terminal, right end of the bar, top of the bar)."""
    bar_lo = W + R.snap(max(R.licon_gate, GATE_BAR_GAP))
    bar_h = R.licon + 2 * R.licon_poly_adj
    xg = X + GATE_CONTACT_DX
    for i in range(nf):
        x = R.sd + i * (L + R.sd)
        c.box("poly", x, -R.poly_end, x + L, bar_lo)
    bar_r = xg + R.licon // 2 + R.licon_poly_adj
    c.box("poly", R.sd, bar_lo, bar_r, bar_lo + bar_h)
    yg = bar_lo + bar_h // 2
    c.cbox("licon", xg, yg, R.licon, R.licon)
    c.box("npc", xg - R.licon // 2 - R.npc_licon, yg - R.licon // 2 - R.npc_licon,
          xg + R.licon // 2 + R.npc_licon, yg + R.licon // 2 + R.npc_licon)
    li_x = R.licon // 2 + R.li_adj + R.grid          # li.5 on the x sides, and li.6 area with a margin
    c.box("li", xg - li_x, yg - R.licon // 2, xg + li_x, yg + R.licon // 2)
    c.cbox("mcon", xg, yg, R.mcon, R.mcon)
    pad_h = max(R.mcon + 2 * R.m1_mcon_adj, R.via + 2 * R.m1_via_adj, -(-R.m1_area // R.m1_strip) + 10)
    pad_h = R.snap(pad_h) + (R.snap(pad_h) // R.grid % 2) * R.grid
    c.cbox("met1", xg, yg, R.m1_strip, pad_h)
    return Terminal("g", xg, _via1_landing(c, R, xg, yg)), bar_r, bar_lo + bar_h


def _tap(c: Canvas, R: LayoutRules, W: int) -> Tuple[Terminal, int, int, int]:
    """The strip's own substrate / well tap left of the diff. Returns (terminal, tap height, tap left x, gap)."""
    gap = R.snap(max(R.difftap_sp, 2 * IMPLANT_OUT))
    TW = R.tap_w
    TH = max(W, TW)
    tx1 = -gap
    tx0 = tx1 - TW
    c.box("tap", tx0, 0, tx1, TH)
    nt, used_t = contact_column(TH - 2 * R.licon_diff, R.licon, R.licon_sp)
    ty0 = ((TH - used_t) // 2) // R.grid * R.grid
    txc = (tx0 + tx1) // 2
    for y in _cuts(nt, R.licon, R.licon_sp, ty0):
        c.box("licon", txc - R.licon // 2, y, txc + R.licon - R.licon // 2, y + R.licon)
    _, land = stack_up(c, R, txc, ty0, ty0 + used_t)
    return Terminal("b", txc, land), TH, tx0, gap


def mim_cap(lib: Library, R: LayoutRules, w: float, l: float) -> Item:
    """A cap_mim_m3_1 of capm w x l um: met3 bottom plate (terminal c1) with a tab, via3 array to the met4 top
    plate (terminal c0) whose strip reaches a separate met3 island; each terminal lands a via2 for its riser."""
    Wc, Lc = R.snap(w * 1000), R.snap(l * 1000)
    name = f"kc_mimcap_w{Wc}_l{Lc}"
    got = lib.items.get(name)
    if got is not None:
        return got
    c = lib.new_cell(name)
    e = R.capm_m3
    c.box("capm", 0, 0, Wc, Lc)
    c.box("met3", -e, -e, Wc + e, Lc + e)
    # via3 array on the capm, capm.4 clearance, pitch via3 + via3 spacing
    pitch = R.via3 + R.via3_sp
    inner = lambda L_: (L_ - 2 * R.capm_via3 - R.via3) // pitch + 1
    nx, ny = inner(Wc), inner(Lc)
    if nx < 1 or ny < 1:
        raise LayoutError(f"mimcap {w} x {l} um: too small for one via3 inside capm.4")
    ox = ((Wc - (nx - 1) * pitch - R.via3) // 2) // R.grid * R.grid
    oy = ((Lc - (ny - 1) * pitch - R.via3) // 2) // R.grid * R.grid
    unit = lib.items.get("kc_via3_unit")
    if unit is None:
        unit = lib.new_cell("kc_via3_unit")
        unit.box("via3", 0, 0, R.via3, R.via3)
        lib.items["kc_via3_unit"] = unit
    c.place_array(unit, ox, oy, nx, ny, pitch, pitch)
    T = R.track
    # bottom plate tab (met3) at the left, with its via2 landing
    tab_h = 600
    c.box("met3", -e, Lc + e, -e + T, Lc + e + tab_h)
    xb = -e + T // 2
    yb = Lc + e + tab_h - T // 2
    # top plate: met4 over the capm and a strip up the right side to a met3 island (>= 0.5 um from capm)
    isl_lo = Lc + 1400           # capm.2b_a: other met3 >= 1.2 um from the plate (capm + 0.14 um)
    isl_h = 900
    xi0, xi1 = Wc + e - T, Wc + e
    c.box("met3", xi0, isl_lo, xi1, isl_lo + isl_h)
    yv3 = isl_lo + R.via3 // 2 + R.m3_via3_adj
    c.cbox("via3", (xi0 + xi1) // 2, yv3, R.via3, R.via3)
    c.box("met4", 0, 0, Wc, Lc)
    c.box("met4", xi0, Lc - T, xi1, yv3 + R.via3 // 2 + R.m4_via3)
    yt = isl_lo + isl_h - T // 2
    terms = [Terminal("c1", xb, _via2_landing(c, R, xb, yb)),
             Terminal("c0", (xi0 + xi1) // 2, _via2_landing(c, R, (xi0 + xi1) // 2, yt))]
    item = Item(c, -e - 800, Wc + e + 800, -e, isl_lo + isl_h, terms)
    lib.items[name] = item
    return item




def res_segment(lib: Library, R: LayoutRules, w: float, l: float) -> Item:
    """One segment of a sky130 precision poly resistor (res_xhigh_po): a vertical poly strip of width w, body
    length l between the front ends of its two slot licons (the model's L), under urpm + psdm + npc, body marked
    by polyres. Terminals: 'r1' at the top head, 'r0' at the bottom head (its met1 runs right to a riser clear
    of the top head). Longer resistors are chains of segments (KLayout combines them in series for LVS)."""
    Wn, Ln = R.snap(w * 1000), R.snap(l * 1000)
    name = f"kc_xhigh_w{Wn}_l{Ln}"
    got = lib.items.get(name)
    if got is not None:
        return got
    c = lib.new_cell(name)
    sw, sl = R.slot_w, R.slot_l
    end = R.licon_diff                                # poly enclosure of the slot ends (0.06)
    if Wn < sw + 2 * R.li_adj:
        raise LayoutError(f"res_xhigh_po w={w} um: narrower than a slot licon with its li enclosure")
    y_lo, y_hi = -sl - end, Ln + sl + end
    c.box("poly", 0, y_lo, Wn, y_hi)
    c.box("polyres", 0, 0, Wn, Ln)
    xc = Wn // 2 // R.grid * R.grid
    terms = []
    for role, s0 in (("r0", -sl), ("r1", Ln)):
        c.box("licon", xc - sw // 2, s0, xc + sw - sw // 2, s0 + sl)
        c.box("li", 0, s0, Wn, s0 + sl)
        nm = (sl - R.mcon) // (R.mcon + R.mcon_sp) + 1
        used = nm * R.mcon + (nm - 1) * R.mcon_sp
        m0 = s0 + ((sl - used) // 2) // R.grid * R.grid
        for k in range(nm):
            y = m0 + k * (R.mcon + R.mcon_sp)
            c.box("mcon", xc - R.mcon // 2, y, xc + R.mcon - R.mcon // 2, y + R.mcon)
        lo, hi = m0 - R.m1_mcon_adj, m0 + used + R.m1_mcon_adj
        c.box("met1", xc - R.m1_strip // 2, lo, xc + R.m1_strip - R.m1_strip // 2, hi)
        yv = R.snap((lo + hi) / 2 - R.via / 2) + R.via // 2
        if role == "r1":
            terms.append(Terminal(role, xc, _via1_landing(c, R, xc, yv)))
        else:
            xr = xc + R.riser + 2 * R.m2_sp + R.m1_strip // 2       # clear of the top head's riser
            c.box("met1", xc, yv - R.m1_strip // 2, xr + R.m1_strip // 2, yv + R.m1_strip - R.m1_strip // 2)
            c.box("met1", xr - R.m1_strip // 2, yv - R.m1_strip // 2 - R.m1_via_adj,
                  xr + R.m1_strip - R.m1_strip // 2, yv + R.m1_strip // 2 + R.m1_via_adj)
            terms.append(Terminal(role, xr, _via1_landing(c, R, xr, yv)))
    e_imp, e_npc, e_rpm = R.res_psdm, R.res_npc, R.res_rpm
    c.box("psdm", -e_imp, y_lo - e_imp, Wn + e_imp, y_hi + e_imp)
    c.box("npc", -e_npc, y_lo - e_npc, Wn + e_npc, y_hi + e_npc)
    half = max(Wn // 2 + e_rpm, R.rpm_w // 2 + R.grid)
    c.box("urpm", xc - half, y_lo - e_rpm, xc + half, y_hi + e_rpm)
    margin = R.res_space
    x0 = xc - half - margin
    x1 = max(xc + half, terms[-1].x + R.riser) + margin
    item = Item(c, x0, x1, y_lo - e_rpm - margin, y_hi + e_rpm, terms)
    lib.items[name] = item
    return item
