"""Cell subcircuit generators (parameterized SPICE text from sky130_fd_pr devices).

Every generator takes a `Pdk` (device names come from pdk.yaml, never hard-coded) and keyword design
parameters, and returns a `Subckt` (name, pins, text). Pin conventions:

  edge cells   s d en b0 .. b{n-1} [o0 .. o{m-1}] vbn vcp vcn [vk] vdd vss   (vk: ReLU cells only)
               sink I from node s, source the same I into node d (ARCHITECTURE §3);
               en = 1 (vdd) enables; en = 0: zero current into s / d (tanh_diff steers its outputs into
               the rails by default, relu_diff gates its tails/bias).
               b* = magnitude code bits (LSB first), o* = offset code bits (ReLU only).
  bias_gen     vbn vcp vcn vk vdd vss : unit diode (vbn; the reference current flows into vbn) + cascode bias
                                        lines vcp, vcn + ReLU clamp gate vk
  node_cap     n vss                  : sky130 MIM capacitor (cap_mim_m3_1) from node to vss
  switch       a b g vss              : nfet pass switch (reset to V_cm / input load), on when g = vdd

The ideal behaviour each edge cell targets (docs/cells.md):
  tanh_diff   i = A(code) * tanh(k * (vs - vd))             A = code * I_unit, k = cell slope [1/V]
  relu_diff   i = a(code) * relu(g * (vs - vd) + b(ocode))  (current-domain rectifier; see relu_diff)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

from ..pdk import Pdk

__all__ = ["Subckt", "bias_gen", "tanh_diff", "relu_diff", "node_cap", "switch", "DEFAULTS", "edge_pins"]


@dataclass
class Subckt:
    name: str
    pins: List[str]
    text: str
    params: Dict[str, float] = field(default_factory=dict)


# design defaults (docs/cells.md explains each choice)
DEFAULTS = {
    "tanh_diff": dict(bits=4, pair="nfet_lvt", pair_bulk="tail", w_in=16.0, l_in=0.5, w_u=2.0, l_u=8.0,
                      w_udac=2.045, pfet="pfet_lvt", w_p=2.0, l_p=1.0, w_n=1.0, l_n=2.0, w_sw=0.42, l_sw=0.5,
                      cascode=True, w_pc=4.0, l_pc=1.0, w_nc=2.0, l_nc=1.0, ncasc_dev="nfet_lvt",
                      dac_cascode="leg", w_dc=1.0, l_dc=1.0, enable="output"),
    "relu_diff": dict(bits=4, obits=4, w_in=1.0, l_in=1.0, w_u=1.0, l_u=4.0, w_p=2.0, l_p=4.0, w_n=1.0,
                      l_n=4.0, w_sw=1.0, l_sw=0.15, gain_tail=4),
}


def _fet(pdk: Pdk, kind: str, name: str, d: str, g: str, s: str, b: str, w: float, l: float, m: int = 1) -> str:
    """One sky130_fd_pr transistor. m > 1 = m parallel unit devices (ngspice instance multiplier `m`, and
    `mult` so that the sky130 mismatch sigma scales as 1/sqrt(m) like m real copies). Use m, not a wider W,
    for current ratios: the sky130 models are binned by W (a W=8 nfet carries 1.25x four W=2 units, measured)."""
    dev = pdk.device(kind)["name"]
    mm = f" m={int(m)} mult={int(m)}" if m != 1 else ""
    return f"X{name} {d} {g} {s} {b} {dev} w={w:g} l={l:g}{mm}"


def edge_pins(bits: int, obits: int = 0) -> List[str]:
    return ["s", "d", "en"] + [f"b{k}" for k in range(bits)] + [f"o{k}" for k in range(obits)] + \
           bias_pins(obits) + ["vdd", "vss"]


def bias_pins(obits: int = 0) -> List[str]:
    """Bias lines an edge cell takes from kc_bias: ReLU cells (obits > 0) also take the clamp gate vk."""
    return ["vbn", "vcp", "vcn"] + (["vk"] if obits else [])


BIAS_GEN_PINS = ("vbn", "vcp", "vcn", "vk", "vdd", "vss")


def bias_gen(pdk: Pdk, w_u: float = 1.0, l_u: float = 4.0, name: str = "kc_bias",
             w_cn: float = 0.42, l_cn: float = 8.0, w_cp: float = 5.0, l_cp: float = 1.0,
             c_dec: float = 2e-12, w_k: float = 4.0, l_k: float = 1.0, m_kf: int = 16, w_kr: float = 1.0,
             l_kr: float = 2.0, m_kr: int = 64, mult: int = 1) -> Subckt:
    """Bias generator shared by the cells. The reference (unit) current flows into vbn, the node of a
    diode-connected unit nfet whose gate is the bias line (every DAC leg copies it). Two more unit copies bias the
    cascode lines: vcn = V_GS of a long, narrow diode nfet at 4 I_unit (~0.7 V) and vcp = vdd - V_SG
    of a wide pfet_01v8 diode (~0.9 V); they hold the mirror devices' drains ~0.2 V inside the rails.
    vk (ReLU rectifier clamp gate): a unit pfet copy of iref through two stacked nfet diodes, m_kf units
    w_k/l_k (replica of the cell's clamp follower) on m_kr units w_kr/l_kr (replica of the rectifier diode
    units). In the cell the follower (1 unit w_k/l_k, source at X) and the rectifier (15 units 1/2) close the
    same translinear loop, so at zero net current both carry I_q ~ iref sqrt(S_F S_R / (S_Fr S_Rr)) with S = W/L
    of each side (weak inversion, same body effect): iref sqrt(4 * 7.5 / (64 * 32)) ~ 0.12 iref ~ 8 nA.

    mult = K builds every device of the generator from K parallel copies (iref must then carry K I_unit): the
    line voltages stay the same (same current densities) and the lines' drive (g_m) grows K-fold. A chip needs
    this: its bias lines carry the gates of every cell (~15 pF per relu_diff cell), and a unit-current diode
    (g_m ~ 2 uS) would take tens of microseconds to recover from the kick of cells switching on."""
    f = lambda *a: _fet(pdk, *a, m=mult)
    lines = [f".subckt {name} {' '.join(BIAS_GEN_PINS)}",
             "* the reference current enters vbn itself: the unit diode's node is the bias line",
             f("nfet", "MREF", "vbn", "vbn", "vss", "vss", w_u, l_u),
             "* vcp: unit copy sinks I from a long pfet diode",
             f("nfet", "MCP1", "vcp", "vbn", "vss", "vss", w_u, l_u),
             f("pfet", "MCP", "vcp", "vcp", "vdd", "vdd", w_cp, l_cp),
             "* vcn: unit copy mirrored up (pfet mirror) into a long nfet diode",
             f("nfet", "MCN1", "pm", "vbn", "vss", "vss", w_u, l_u),
             f("pfet_lvt", "MCN2", "pm", "pm", "vdd", "vdd", 2.0, 2.0),
             f("pfet_lvt", "MCN3", "vcn", "pm", "vdd", "vdd", 8.0, 2.0),
             f("nfet", "MCN", "vcn", "vcn", "vss", "vss", w_cn, l_cn),
             "* vk: unit pfet copy (iref) into the clamp-follower replica on the rectifier replica",
             f("pfet_lvt", "MK3", "vk", "pm", "vdd", "vdd", 2.0, 2.0),
             _fet(pdk, "nfet", "MKF", "vk", "vk", "kr", "vss", w_k, l_k, m=m_kf * mult),
             _fet(pdk, "nfet", "MKR", "kr", "kr", "vss", "vss", w_kr, l_kr, m=m_kr * mult),
             "* decoupling of the shared bias lines (MIM), so that cells switching on do not kick them"]
    if c_dec > 0:
        cap = pdk.device("mimcap")
        side = (c_dec / float(cap["c_area_f_per_um2"])) ** 0.5 - float(cap.get("dw_um", 0))
        for net, rail in (("vbn", "vss"), ("vcn", "vss"), ("vcp", "vdd"), ("vk", "vss")):
            lines.append(f"XD{net} {net} {rail} {cap['name']} w={side:.3f} l={side:.3f}")
    lines += [f".ends {name}"]
    return Subckt(name, list(BIAS_GEN_PINS), "\n".join(lines),
                  dict(w_u=w_u, l_u=l_u, c_dec=c_dec, mult=mult))


def _dac(pdk: Pdk, p: dict, out: str, bits: List[str], prefix: str, cascode: bool = False) -> List[str]:
    """Binary-weighted nfet current DAC: leg k = 2^k unit devices (gate vbn) behind a series switch
    driven by bit k; all legs join at `out`. cascode=True puts a per-leg cascode (gate vcn, device
    p['dac_casc_dev'], W = p['w_dc'] * 2^k, L = p['l_dc']) between the unit devices and the bit switch, so
    that every leg's unit drains sit at the same voltage whatever the code."""
    lines = []
    for k, b in enumerate(bits):
        top = f"{prefix}l{k}"
        if cascode:
            top = f"{prefix}c{k}"
            lines.append(_fet(pdk, p.get("dac_casc_dev", "nfet"), f"{prefix}C{k}", top, "vcn", f"{prefix}l{k}",
                              "vss", p["w_dc"] * 2 ** k, p["l_dc"]))
        lines.append(_fet(pdk, "nfet", f"{prefix}S{k}", out, b, top, "vss", p["w_sw"] * 2 ** k,
                          p["l_sw"]))
        for j in range(2 ** k):
            lines.append(_fet(pdk, "nfet", f"{prefix}U{k}_{j}", f"{prefix}l{k}", "vbn", "vss", "vss",
                              p.get("w_udac") or p["w_u"], p["l_u"]))
    return lines


def _mirror(pdk: Pdk, p: dict, kind: str, name: str, out: str, gate: str, rail: str, diode: bool) -> List[str]:
    """One mirror branch. kind 'pfet' (source at vdd) or 'nfet' (source at vss). With p['cascode'], a
    low-voltage cascode (gate vcp / vcn) sits on top of the main device; for a diode branch the main
    gate joins the cascode drain (`out` = gate node)."""
    w, l = (p["w_p"], p["l_p"]) if kind == "pfet" else (p["w_n"], p["l_n"])
    dev = p.get("pfet", "pfet") if kind == "pfet" else "nfet"
    if not p.get("cascode"):
        return [_fet(pdk, dev, name, out, gate, rail, rail, w, l)]
    wc, lc = (p["w_pc"], p["l_pc"]) if kind == "pfet" else (p["w_nc"], p["l_nc"])
    vc = "vcp" if kind == "pfet" else "vcn"
    mid = f"x{name.lower()}"
    cdev = p.get("pcasc_dev" if kind == "pfet" else "ncasc_dev") or dev    # cascode device (default: same)
    return [_fet(pdk, dev, name, mid, gate, rail, rail, w, l),
            _fet(pdk, cdev, name + "C", out, vc, mid, mid if p.get("casc_bulk") == "source" else rail, wc, lc)]


def _steer(pdk: Pdk, p: dict, kind: str, name: str, x: str, out: str) -> List[str]:
    """Output current steering of one mirror branch whose (cascode) drain is x: en = 1 connects x to the
    output node `out`; en = 0 (enb = 1) dumps the branch current into the opposite rail instead, so the
    branch keeps its bias (drain voltages stay put) and the output sees only an off switch.
    pfet branches (sourcing) use pfet_lvt switches and dump into vss; nfet branches (sinking) use nfet
    switches and take their current from vdd."""
    if kind == "pfet":
        w, l = p.get("w_swp", 1.0), p.get("l_swp", 0.35)
        return [_fet(pdk, "pfet_lvt", f"{name}SO", out, "enb", x, "vdd", w, l),
                _fet(pdk, "pfet_lvt", f"{name}SD", "vss", "en", x, "vdd", w, l)]
    w, l = p.get("w_swn", 1.0), p.get("l_swn", 0.15)
    return [_fet(pdk, "nfet", f"{name}SO", out, "en", x, "vss", w, l),
            _fet(pdk, "nfet", f"{name}SD", "vdd", "enb", x, "vss", w, l)]


def _outputs(pdk: Pdk, p: dict, na: str, nb: str, steer: bool = False, pre: str = "") -> List[str]:
    """Given pfet diode nodes na (carries I_A) and nb (carries I_B), build the symmetric output:
    into d: I_A - I_B ; out of s: I_A - I_B (matched pfet source and nfet sink mirrors).
    steer=True: each of the four output branches reaches d / s through an enable switch and is dumped
    into the opposite rail when en = 0 (`_steer`; needs the internal node enb = not en).
    pre: prefix of the instance names and internal nodes (a cell that holds this stage next to other blocks,
    e.g. tanh_lin, uses "T" so that they do not collide); "" = tanh_diff's names."""
    m = lambda kind, name, out, gate, rail, diode: _mirror(pdk, p, kind, pre + name, out, gate, rail, diode)
    nbx, nax = pre.lower() + "nbx", pre.lower() + "nax"
    if steer:
        o = {k: f"{pre.lower()}o{k.lower()}" for k in ("PAD", "NBD", "NAS", "PBS")}
        st = lambda kind, name, out: _steer(pdk, p, kind, pre + name, o[name], out)
        sw = [*st("pfet", "PAD", "d"), *st("nfet", "NBD", "d"), *st("nfet", "NAS", "s"), *st("pfet", "PBS", "s")]
    else:
        o = {"PAD": "d", "NBD": "d", "NAS": "s", "PBS": "s"}
        sw = []
    return [
        "* pfet diodes of the pair currents",
        *m("pfet", "PA", na, na, "vdd", True), *m("pfet", "PB", nb, nb, "vdd", True),
        "* output into d: source I_A (pfet copy of A), sink I_B (pfet copy of B -> nfet mirror)",
        *m("pfet", "PAD", o["PAD"], na, "vdd", False),
        *m("pfet", "PBX", nbx, nb, "vdd", False),
        *m("nfet", "NBX", nbx, nbx, "vss", True),
        *m("nfet", "NBD", o["NBD"], nbx, "vss", False),
        "* output from s: sink I_A (pfet copy of A -> nfet mirror), source I_B (pfet copy of B)",
        *m("pfet", "PAX", nax, na, "vdd", False),
        *m("nfet", "NAX", nax, nax, "vss", True),
        *m("nfet", "NAS", o["NAS"], nax, "vss", False),
        *m("pfet", "PBS", o["PBS"], nb, "vdd", False),
        *(["* enable: output current steering (en = 0 dumps every output branch into a rail)"] + sw if sw else []),
    ]


def tanh_diff(pdk: Pdk, sign: int = 1, name: str | None = None, **kw) -> Subckt:
    """tanh edge cell, difference form: i(s->d) = sign * I_unit*code * tanh(k (vs - vd)).

    nfet differential pair (p['pair'], W/L w_in/l_in, bulk = common source) in weak inversion; tail =
    binary-weighted DAC of unit nfets mirrored from the bias line vbn (magnitude code b*), with a cascode per
    leg (dac_cascode="leg"), one shared cascode (True) or none (False). Pair currents I_A (gate vs) and I_B
    (gate vd) go to pfet diodes; matched pfet/nfet mirrors put I_A - I_B = I_tail tanh(kappa (vs - vd) / 2U_T)
    into d and take it from s. Enable: enable="output" (default) steers the four output branches into the
    rails when en = 0 (the cell keeps its bias, so enabling it is a switch event); enable="tail" puts a series
    switch in the tail (en = 0: every node of the cell collapses). Either way no current reaches s or d when
    off. sign = -1 swaps the pair's gate connections (a wiring choice made at netlist time)."""
    p = dict(DEFAULTS["tanh_diff"]); p.update(kw)
    n = int(p["bits"])
    name = name or f"kc_tanh_diff_{'p' if sign > 0 else 'n'}{n}"
    ga, gb = ("s", "d") if sign > 0 else ("d", "s")
    bits = [f"b{k}" for k in range(n)]
    steer = p.get("enable", "tail") == "output"
    casc = p["dac_cascode"] is True          # one shared cascode above the bit switches
    leg = p["dac_cascode"] == "leg"          # a cascode per DAC leg (below the bit switches)
    # the tail current's node above the DAC (and its shared cascode, if any); with output steering the tail
    # always runs, so that node is the pair's tail itself (no tie)
    top = "tail" if steer else "dacc" if casc else "dac"
    lines = [f".subckt {name} {' '.join(edge_pins(n))}",
             f"* kchip tanh_diff edge cell, sign {sign:+d}, {n}-bit tail DAC",
             _fet(pdk, p["pair"], "M1", "na", ga, "tail", p["pair_bulk"], p["w_in"], p["l_in"]),
             _fet(pdk, p["pair"], "M2", "nb", gb, "tail", p["pair_bulk"], p["w_in"], p["l_in"])]
    if steer:
        lines += ["* enable acts on the outputs (current steering); the tail always runs: en -> enb inverter",
                  _fet(pdk, "pfet", "MIP", "enb", "en", "vdd", "vdd", 0.42, 0.15),
                  _fet(pdk, "nfet", "MIN", "enb", "en", "vss", "vss", 0.42, 0.15)]
    else:
        lines += ["* enable: series switch in the tail",
                  _fet(pdk, "nfet", "SEN", "tail", "en", top, "vss", p["w_sw"] * 2 ** n, p["l_sw"])]
    if casc:
        lines.append(_fet(pdk, p.get("dac_casc_dev", "nfet"), "MDC", top, "vcn", "dac", "vss",
                          p.get("w_dc") or p["w_nc"] * 2, p.get("l_dc") or p["l_nc"]))
    lines += [*_dac(pdk, p, "dac" if casc else top, bits, "D", cascode=leg),
              *_outputs(pdk, p, "na", "nb", steer=steer),
              f".ends {name}"]
    return Subckt(name, edge_pins(n), "\n".join(lines), p)


def relu_diff(pdk: Pdk, sign: int = 1, name: str | None = None, **kw) -> Subckt:
    """ReLU edge cell, difference form: i(s->d) = relu(g (vs - vd) * A(code) + I_unit*ocode) rectified.

    See docs/cells.md. (Implemented in kchip.cells.relu when available.)"""
    from .relu import relu_diff_subckt
    return relu_diff_subckt(pdk, sign=sign, name=name, **kw)


def node_cap(pdk: Pdk, c_farad: float = 200e-15, name: str | None = None) -> Subckt:
    """Node capacitor: square sky130 MIM cap (cap_mim_m3_1) of about c_farad from node n to vss."""
    dev = pdk.device("mimcap")
    ca = float(dev["c_area_f_per_um2"]); dw = float(dev.get("dw_um", 0.0))
    side = max(float(dev.get("w_min_um", 2.0)), (c_farad / ca) ** 0.5 - dw)
    name = name or f"kc_cap_{int(round(c_farad * 1e15))}f"
    lines = [f".subckt {name} n vss", f"XC n vss {dev['name']} w={side:.3f} l={side:.3f}", f".ends {name}"]
    return Subckt(name, ["n", "vss"], "\n".join(lines), dict(w=side, l=side, c=ca * (side + dw) ** 2))


def switch(pdk: Pdk, w: float = 1.0, l: float = 0.15, name: str = "kc_switch") -> Subckt:
    """nfet pass switch a<->b, on when g = vdd (reset to V_cm, input load). V_cm = 0.9 V leaves
    V_GS - V_th ~ 0.35 V of overdrive at vdd = 1.8 V (on-resistance measured in docs/cells.md)."""
    lines = [f".subckt {name} a b g vss", _fet(pdk, "nfet", "MS", "a", "g", "b", "vss", w, l), f".ends {name}"]
    return Subckt(name, ["a", "b", "g", "vss"], "\n".join(lines), dict(w=w, l=l))


def tgate(pdk: Pdk, w: float = 1.0, l: float = 0.15, name: str = "kc_tgate") -> Subckt:
    """CMOS transmission gate a<->b, on when g = vdd and gb = 0: the nfet passes the low half of the node range,
    the pfet (2x wider, for its lower mobility) the high half. An nfet alone has V_GS - V_th of only ~0.1-0.2 V
    (body effect included) at V_cm + 0.3 V = 1.2 V, and loads such a node far too slowly (measured: a 3-node
    chip loaded its 1.17 V input to 1.02 V in a 0.2 us load phase)."""
    lines = [f".subckt {name} a b g gb vdd vss", _fet(pdk, "nfet", "MN", "a", "g", "b", "vss", w, l),
             _fet(pdk, "pfet", "MP", "a", "gb", "b", "vdd", 2 * w, l), f".ends {name}"]
    return Subckt(name, ["a", "b", "g", "gb", "vdd", "vss"], "\n".join(lines), dict(w=w, l=l))


def inverter(pdk: Pdk, wn: float = 1.0, wp: float = 2.0, l: float = 0.15, name: str = "kc_inv") -> Subckt:
    """Static CMOS inverter a -> y (the complement of a switch control line)."""
    lines = [f".subckt {name} a y vdd vss", _fet(pdk, "nfet", "MN", "y", "a", "vss", "vss", wn, l),
             _fet(pdk, "pfet", "MP", "y", "a", "vdd", "vdd", wp, l), f".ends {name}"]
    return Subckt(name, ["a", "y", "vdd", "vss"], "\n".join(lines), dict(wn=wn, wp=wp, l=l))
