"""Transistor-level chip netlist (sky130): the cells of `kchip.cells`, the bias generator, MIM node capacitors and
CMOS transmission-gate switches, from the ChipSpec and the measured code tables of the cell at one corner.

Each edge's realized SW parameters (ChipSpec) become the cell's own codes: for the Eq. 10 law
relu(theta1 (vs - vd) + theta0) the relu_diff cell realizes relu(G[c] dv + (c/15) B[o]) (hardware units,
G / B = measured `gain` / `bias` tables at the corner, docs/cells.md), so

    G[c] = I_u |theta1| / V_u,   (c/15) B[o] = I_u theta0,   sign(theta1) -> input swap (cell sign).

The pair (c, o) that minimizes the current error over the mapped input range is chosen; every edge whose target
lies outside what the cell can realize is counted and reported (`report["clipped"]`), never clipped silently.
I_u is re-chosen so that the largest |theta1| lands on the cell's full gain (V_u and tau are kept, so the node
capacitors scale with I_u: C' = tau I_u' / V_u); from C' the netlister subtracts the cells' own pin capacitance
(measured, `PIN_CAP_F`) so that every node has C' in total.

Control pins (ld, smp, en_k, rst_j) are 1.8 V logic; `vdd` and `iref` (the bias reference current) are ports;
the output sample-and-hold is the instrument of the ideal level (unity buffer, ideal switch, hold capacitor):
the node capacitors hold the result themselves once the last period's edges are disabled.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from kchip.quantize.chipspec import ChipSpec
from kchip.cells.tables import CodeTable

# law -> transistor cell kind (ShiftRelu2 / ShiftTanh2: the official names of the Eq. 12 / 13 laws)
SUPPORTED_LAWS = {"relu_diff": "relu_diff", "relu_lin": "relu_lin", "ShiftRelu2": "relu_lin",
                  "tanh_lin": "tanh_lin", "ShiftTanh2": "tanh_lin"}
# measured passive pin capacitance of a relu_diff cell at V_cm (tt, .ac at 1 kHz, cell disabled,
# `kchip.cells.relu_transient.pin_caps`): s pin 35 fF, d pin 28 fF (was 16 fF, 25 fF re-measured, before the
# keep-alive sink and the wider pfet cascodes at d)
PIN_CAP_F = {"relu_diff": {"s": 35e-15, "d": 28e-15},
             # relu_lin (enable by output steering), the same measurement (`kchip.cells.relu_lin.pin_caps_lin`,
             # codes (15, 15, 8), tt): s 11.4 fF, d 11.5 fF
             "relu_lin": {"s": 11.4e-15, "d": 11.5e-15},
             # tanh_lin, the same measurement (codes (15, 15, 8), disabled, tt): s 132.1 fF, d 132.1 fF since
             # session 12 (its input pairs grew from W/L 16/1 to 128/4; 11.1 fF before)
             "tanh_lin": {"s": 132.1e-15, "d": 132.1e-15}}
LOGIC_HIGH = 1.8
# bias generator copies per instantiated cell (`kchip.cells.library.bias_gen` mult): the shared lines carry
# ~15 pF of gates per relu_diff cell; measured on a 5-cell chip whose cells switch on (docs/netlist.md)
BIAS_PER_CELL = 16


def cell_table_path(cell: str, corner: str) -> Path:
    from kchip.cells.characterize import REPO
    return REPO / "characterization" / cell / f"{corner}.json"


@dataclass
class ReluCellModel:
    """What the relu_diff cell realizes per code pair, from its measured code tables."""
    gain: np.ndarray      # (2^bits,) A/V per magnitude code
    bias: np.ndarray      # (2^obits,) A per offset code at full magnitude
    bits: int = 4
    obits: int = 4
    product: bool = True  # True: bias scaled by code/full (output DAC after the rectifier); False: independent

    @classmethod
    def from_table(cls, t: CodeTable) -> "ReluCellModel":
        bits, obits = int(t.meta.get("bits", 4)), int(t.meta.get("obits", 4))
        g, b = t.params["gain"], t.params["bias"]
        codes = np.arange(2 ** bits)
        gain = np.interp(codes, np.asarray(g.codes, float), np.asarray(g.values, float))
        oc = np.arange(2 ** obits)
        bias = np.interp(oc, np.asarray(b.codes, float), np.asarray(b.values, float))
        return cls(gain, bias, bits, obits)

    @property
    def full(self) -> int:
        return 2 ** self.bits - 1

    def grid(self) -> Tuple[np.ndarray, np.ndarray]:
        """Every code pair's (gm [A/V], ib [A]) as two (2^bits, 2^obits) arrays, indexed [c, o]."""
        c = np.arange(self.full + 1)[:, None]
        ib = (c / self.full if self.product else np.ones_like(c)) * self.bias[None, :]
        return np.repeat(self.gain[:, None], ib.shape[1], axis=1), ib

    def realized(self, c: int, o: int) -> Tuple[float, float]:
        """(gm [A/V], ib [A]) of code pair (c, o)."""
        g, b = self.grid()
        return float(g[c, o]), float(b[c, o])

    def choose(self, gm: float, ib: float, dv_range: float) -> Tuple[int, int, float, float, float]:
        """Best (c, o) for a target |gm| >= 0 and ib: least current error over |dv| <= dv_range. Returns
        (c, o, gm', ib', error [A] = |gm - gm'| dv_range + |ib - ib'|)."""
        g, b = self.grid()
        err = np.abs(g - gm) * dv_range + np.abs(b - ib)
        ci, oi = divmod(int(np.argmin(err)), err.shape[1])
        return ci, oi, float(g[ci, oi]), float(b[ci, oi]), float(err[ci, oi])


def full_gain_unit_current(model: ReluCellModel, v_u: float, theta1_abs_max: float) -> float:
    """I_u that puts the largest |theta1| on the cell's full gain: I_u = G[full] V_u / max|theta1|."""
    return float(model.gain[-1] * v_u / max(theta1_abs_max, 1e-30))


def chip_cell_kind(spec: ChipSpec) -> str:
    """The transistor cell kind of a spec's law (one law per chip); a clear error for a law without a cell."""
    laws = sorted({p.law for p in spec.periods})
    bad = [x for x in laws if x not in SUPPORTED_LAWS]
    if bad:
        raise ValueError(f"transistor level: law {bad[0]!r} has no transistor cell yet (available: "
                         f"{', '.join(SUPPORTED_LAWS)}); the tanh_diff cell realizes a fixed slope "
                         f"(docs/cells.md)")
    if len(laws) > 1:
        raise ValueError(f"transistor level: one law per chip, the spec's periods use {laws}")
    return SUPPORTED_LAWS[laws[0]]


def realize(spec: ChipSpec, model: ReluCellModel, dv_range: float, i_u: Optional[float] = None) -> Dict:
    """Cell codes for every edge; returns {"i_u", "c_f", "edges": [...], "clipped", "max_err_A"}."""
    chip_cell_kind(spec)
    s = spec.scaling
    th1 = np.array([e.values[1] for e in spec.edges])
    th0 = np.array([e.values[0] for e in spec.edges])
    if i_u is None:
        i_u = full_gain_unit_current(model, s.v_u, float(np.max(np.abs(th1))))
    c_f = s.tau_s * i_u / s.v_u
    edges, clipped, worst = [], 0, 0.0
    for e, t1, t0 in zip(spec.edges, th1, th0):
        gm, ib = i_u * abs(t1) / s.v_u, i_u * t0
        c, o, gm2, ib2, err = model.choose(gm, ib, dv_range)
        sign = 1 if t1 >= 0 else -1
        full_err = err / max(model.gain[-1] * dv_range, 1e-30)
        flag = full_err > 0.5 / model.full          # worse than half an LSB of the full-scale gain current
        clipped += int(flag)
        worst = max(worst, full_err)
        edges.append({"id": e.id, "period": e.period, "src": e.src, "dst": e.dst, "sign": sign, "code": c,
                      "ocode": o, "theta_sw": [float(t0), float(t1)],
                      "realized_sw": [ib2 / i_u, sign * gm2 * s.v_u / i_u], "err_pct_fs": 100 * full_err,
                      "clipped": bool(flag)})
    return {"i_u": i_u, "c_f": c_f, "v_u": s.v_u, "tau_s": s.tau_s, "edges": edges, "clipped": clipped,
            "max_err_pct_fs": 100 * worst, "dv_range_V": dv_range,
            "rule": "I_u = G[15] V_u / max|theta1|; C = tau I_u / V_u; codes minimize |dG| dv_range + |dI_b|"}


def core_ports(spec: ChipSpec) -> List[str]:
    from .ideal import core_ports as ideal_ports
    return ["vdd", "iref"] + ideal_ports(spec)


def transistor_netlist(spec: ChipSpec, pdk=None, corner: str = "tt", table: Optional[CodeTable] = None,
                       span: float = 0.3, stdcells: Sequence[str] = (), bias_per_cell: int = BIAS_PER_CELL
                       ) -> Tuple[str, Dict]:
    """(core text, realization report). The text holds the model include, the cells and `kchip_core`;
    with `stdcells` (sky130_fd_sc_hd cell names) also their SPICE, and then the full model library (the
    standard cells use devices that the trimmed include leaves out)."""
    from kchip.cells import library as L
    from kchip.pdk import load_pdk
    pdk = pdk or load_pdk()
    pdk.check_corner(corner)
    kind = chip_cell_kind(spec)
    table = table or CodeTable.from_json(cell_table_path(kind, corner))
    rep, cell_texts, instance = _cells(spec, kind, table, pdk, span)
    i_unit = float(table.meta.get("summary", {}).get("i_unit_A", 1e-6 / 15))
    n_cells = sum(1 for e in rep["edges"] if e["code"])
    k_bias = max(1, bias_per_cell * n_cells)      # bias generator drive scales with the cells on its lines
    rep.update(corner=corner, cell=kind, i_ref_A=k_bias * i_unit, bias_mult=k_bias,
               cell_table=str(cell_table_path(kind, corner)))
    from kchip.cells.characterize import cell_bias
    bias = cell_bias(pdk, kind, mult=k_bias)   # the generator the tables were measured with, K-fold
    # load/reset switches sized for the node capacitor: R_on (~10 kOhm um at V_GS - V_th ~ 0.6 V) x C stays
    # below 1 % of the load phase (0.05 T)
    w_sw, l_sw = load_switch_size(spec, rep)
    sw = L.tgate(pdk, w=w_sw, l=l_sw)
    rep["load_switch"] = {"w_um": w_sw, "l_um": l_sw}
    inv = L.inverter(pdk)
    lines = [f".subckt kchip_core {' '.join(core_ports(spec))}",
             f"* {spec.name}: {spec.num_nodes} nodes, {len(spec.periods)} periods, {len(spec.edges)} edges; "
             f"V_u={rep['v_u']:.6g} V, I_u={rep['i_u']:.6g} A, C={rep['c_f']:.6g} F, tau={rep['tau_s']:.6g} s",
             "* the reference current (port iref) enters the bias line itself: the cells' vbn is the chip net iref",
             "XBIAS iref vcp vcn vk vdd 0 kc_bias",
             "* complements of the switch controls (transmission gates)",
             f"XIld ld ldb vdd 0 {inv.name}", *[f"XIrst{n.index} rst_{n.index} rstb_{n.index} vdd 0 {inv.name}"
                                               for n in spec.nodes],
             "* node capacitors (MIM, minus the cells' pin capacitance), load and reset switches, output S/H",
             *_node_lines(spec, rep, pdk, sw.name, PIN_CAP_F[kind])]
    skipped = []
    for e in rep["edges"]:
        tag = f"X_p{e['period']}_e{e['id']}_n{e['src']}_n{e['dst']}"
        if e["code"] == 0:
            skipped.append(tag)
            continue
        s_, d_ = ("vcm" if e["src"] == 0 else f"n{e['src']}"), ("vcm" if e["dst"] == 0 else f"n{e['dst']}")
        lines.append(f"{tag} {s_} {d_} en_{e['period']} {instance(e)}")
    if skipped:
        lines.append(f"* {len(skipped)} edges realize code 0 (no current) and are not instantiated: "
                     + " ".join(skipped))
    lines.append(".ends kchip_core")
    rep["instantiated"] = len(rep["edges"]) - len(skipped)
    includes = [pdk.model_include(corner, trimmed=not stdcells)] + [f".include {pdk.stdcell_spice(c)}" for c in stdcells]
    circuit, rep["shared_models"] = pdk.share_models("\n".join(
        ["* ---- cells ----", bias.text, sw.text, inv.text, *cell_texts,
         ".model sw_ideal sw vt=0.9 vh=0.1 ron=100 roff=1e16", "* ---- the chip ----", *lines]))
    body = "\n".join([*includes, f".temp {pdk.temperature_c}", circuit]) + "\n"
    return body, rep


# the chip net of each bias line a cell takes: the bias generator's vbn is the reference-current port iref
CHIP_BIAS_NETS = {"vbn": "iref"}


def chip_bias_nets(pins) -> List[str]:
    return [CHIP_BIAS_NETS.get(p, p) for p in pins]


def _cells(spec: ChipSpec, kind: str, table: CodeTable, pdk, span: float):
    """(realization report, subcircuit texts, instance(edge) -> the pins after s d en and the subcircuit name)
    for the chip's cell kind."""
    from kchip.cells import library as L
    if kind == "relu_diff":
        from kchip.cells.relu import relu_diff_subckt
        model = ReluCellModel.from_table(table)
        rep = realize(spec, model, dv_range=2 * span)
        cells = {sg: relu_diff_subckt(pdk, sign=sg) for sg in (1, -1)}
        bits = lambda c, n: ["vdd" if (c >> k) & 1 else "0" for k in range(n)]
        return rep, [cells[1].text, cells[-1].text], lambda e: " ".join(
            bits(e["code"], model.bits) + bits(e["ocode"], model.obits) + chip_bias_nets(L.bias_pins(model.obits))
            + ["vdd", "0", cells[e["sign"]].name])
    from .lincell import LinCellModel, lin_code_pins, realize_lin
    model = LinCellModel.from_table(table)
    rep = realize_lin(spec, model, span)
    if kind == "tanh_lin":
        from kchip.cells.tanh_lin import BIAS_PINS, tanh_lin_subckt
        sub, bias_pins = tanh_lin_subckt(pdk), BIAS_PINS
    else:
        from kchip.cells.relu_lin import relu_lin_subckt
        sub, bias_pins = relu_lin_subckt(pdk), L.bias_pins(model.obits)
    return rep, [sub.text], lambda e: " ".join(
        lin_code_pins(e, model.bits, model.obits) + chip_bias_nets(bias_pins) + ["vcm", "vdd", "0", sub.name])


def _node_lines(spec: ChipSpec, rep: Dict, pdk, switch: str, pins: Dict[str, float]) -> List[str]:
    """Per node: its MIM capacitor (C minus the pin capacitance of the instantiated cells on it, recorded in
    rep["node_cap_mim_f"]), load and reset transmission gates, and the sample-and-hold instrument."""
    from kchip.cells import library as L
    n_s: Dict[int, int] = {}
    n_d: Dict[int, int] = {}
    for e in rep["edges"]:
        if e["code"]:
            n_s[e["src"]] = n_s.get(e["src"], 0) + 1
            n_d[e["dst"]] = n_d.get(e["dst"], 0) + 1
    lines, caps = [], {}
    for n in spec.nodes:
        j = n.index
        c_par = n_s.get(j, 0) * pins["s"] + n_d.get(j, 0) * pins["d"]
        c_mim = rep["c_f"] - c_par
        if c_mim <= 0:
            raise ValueError(f"node {j}: the cells' pin capacitance {c_par:.3g} F exceeds C = {rep['c_f']:.3g} F; "
                             f"raise the latency target")
        caps[j] = c_mim
        cap = L.node_cap(pdk, c_mim, name=f"kc_cap_n{j}")
        lines += [cap.text, f"XC{j} n{j} 0 {cap.name}",
                  f"XSL{j} n{j} in_{j} ld ldb vdd 0 {switch}", f"XSR{j} n{j} vcm rst_{j} rstb_{j} vdd 0 {switch}",
                  f"E_buf{j} buf{j} 0 n{j} 0 1", f"S_sample{j} buf{j} out_{j} smp 0 sw_ideal",
                  f"C_hold{j} out_{j} 0 100f"]
    rep["node_cap_mim_f"] = caps
    return lines


def cell_level_spec(spec: ChipSpec, rep: Dict) -> ChipSpec:
    """A copy of `spec` whose edge values are what the transistor cells' codes realize (measured tables):
    `kchip.quantize.core.realized_model` of it is the L2 model of the transistor-level chip."""
    out = ChipSpec.from_json(spec.to_json())
    by_id = {e["id"]: e for e in rep["edges"]}
    for e in out.edges:
        e.values = [float(v) for v in by_id[e.id]["realized_sw"]]
    return out


def load_switch_size(spec: ChipSpec, rep: Dict) -> Tuple[float, float]:
    """(nfet width, length) [um] of the load / reset transmission gates: the report's, else the sizing rule
    (`_switch_width` for a load phase of 0.05 of the shortest period)."""
    sw = rep.get("load_switch")
    if sw:
        return float(sw["w_um"]), float(sw["l_um"])
    return _switch_width(rep["c_f"], 0.05 * min(spec.scaling.period_s)), 0.15


def _switch_width(c_f: float, t_load: float, r_on_um: float = 1.0e4) -> float:
    """Transmission-gate nfet width [um] (the pfet is 2x) so that R_on C <= t_load / 8 (r_on_um: on-resistance
    x width, ohm um, at the worst input level; ~10 kOhm um for sky130 nfet_01v8 at V_GS = 0.6 V, the pfet
    taking over above V_cm)."""
    return float(min(50.0, max(1.0, round(8 * r_on_um * c_f / t_load, 1))))
