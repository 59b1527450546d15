"""Analytic estimate of a chip from its ChipSpec and cell realization: power, latency, energy, area.

Each block's figure comes from what was characterized about the block alone, scaled by how many the chip has:

* edge cells: the supply current of the cell's code tables (`characterization/<kind>/<corner>.json`, measured per
  code combination at V_cm), fitted linear in the code magnitudes (`cell_supply_fit`) and summed over the
  instantiated cells; a disabled cell draws its enabled figure plus the offset that disabling adds in the table's
  one disabled instance (at full codes, `supply_disabled_A`; none where the table has no such figure);
* bias generator: its supply current per unit of multiplicity measured alone (one ngspice operating point of the
  mult = 1 generator the tables were measured with, `bias_units`) x the chip's multiplicity; the nominal mirror
  ratios are reported beside it;
* sequencer: C V^2 f of half the standard cells' gate capacitance (gate area from layouts/cells.json x the gate
  oxide capacitance of pdk.yaml `estimate`) per clock cycle;
* latency: the schedule (load, the periods, hold; with the sequencer, its clock slots);
* area: the laid-out cells of layouts/cells.json x their counts (the bias generator: its decoupling capacitors plus
  its gate area at the chip's multiplicity over the edge cells' gate density).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from kchip.netlist.schedule import build_schedule
from kchip.quantize.chipspec import ChipSpec


def _combo_codes(key: str) -> Tuple[int, ...]:
    return tuple(int(c) for c in key.split(","))


def cell_supply_fit(table_json: Path) -> Tuple[Callable[[Dict], float], Dict]:
    """(edge report -> supply current [A] of that cell enabled, info): least squares of the table's measured
    supply currents on (1, |code_1|, ..., |code_n|) over its code combinations (relu_diff: gain and offset code;
    the three-parameter cells: |c_s|, |c_d| and the offset code)."""
    full_meta = json.loads(Path(table_json).read_text())["meta"]
    meta = full_meta["summary"]
    raw = meta["supply_current_A"]
    keys = list(raw)
    codes = np.array([[abs(c) for c in _combo_codes(k)] for k in keys], dtype=float)
    i = np.array([raw[k] for k in keys])
    a = np.column_stack([np.ones(len(codes)), codes])
    coef, *_ = np.linalg.lstsq(a, i, rcond=None)
    resid = float(np.max(np.abs(a @ coef - i) / np.abs(i)))
    three = codes.shape[1] == 3

    def supply(e: Dict) -> float:
        c = [abs(e["cs"]), abs(e["cd"]), e["ocode"]] if three else [e["code"], e["ocode"]]
        return float(coef[0] + np.dot(coef[1:], c))
    hi, ohi = 2 ** int(full_meta.get("bits", 4)) - 1, 2 ** int(full_meta.get("obits", 4)) - 1
    full = {"cs": hi, "cd": hi, "ocode": ohi} if three else {"code": hi, "ocode": ohi}
    off = meta.get("supply_disabled_A")
    # the tables hold one disabled instance, at full codes: disabling adds (that - the enabled fit there)
    info = {"combos": len(keys), "coef_A": [float(c) for c in coef], "max_fit_error_rel": resid,
            "disabled_A": off, "disabled_offset_A": None if off is None else float(off - supply(full))}
    return supply, info


def bias_units(kind: str, corner: str = "tt", pdk=None) -> Dict:
    """The bias generator's supply current per unit of multiplicity, in units of its reference current: one
    ngspice operating point of the mult = 1 generator (`kchip.cells.characterize.cell_bias`), and the figure its
    nominal mirror ratios give (`nominal_units`)."""
    from kchip.cells.characterize import KINDS, cell_bias
    from kchip.cells.structure import Circuit
    from kchip.pdk import load_pdk
    from kchip.sim.ngspice import run_deck
    pdk = pdk or load_pdk()
    b = cell_bias(pdk, kind)
    text, _ = pdk.share_models(b.text)
    i_u = KINDS[kind].i_unit
    deck = "\n".join([f"* kchip estimate: {kind} bias generator alone", pdk.model_include(corner), text,
                      f"Vvdd vdd 0 {pdk.vdd}", f"Iref vdd vbn {i_u:.9e}", "XB vbn vcp vcn vk vdd 0 kc_bias", ".op",
                      ".end"])
    res = run_deck(deck + "\n", cell="bias generator", point="operating point (mult 1)")
    units = -float(res.plots[0]["i(vvdd)"][0]) / i_u
    return {"units": units, "nominal_units": nominal_units(Circuit.from_subckt(b, pdk)), "i_unit_A": i_u}


def nominal_units(gen) -> float:
    """The supply current of a bias generator (`kchip.cells.structure.Circuit` of kc_bias) in units of its
    reference current, by its nominal mirror ratios: the reference itself, each pfet diode at vdd carrying the nfet
    copies of the reference diode (gate vbn) on its drain, each other pfet at vdd its gate diode's current x
    their (W/L m) ratio."""
    size = lambda d: d.w / d.l * d.m
    ref = next(d for d in gen.devices if d.is_mos and d.terminal("d") == d.terminal("g") == "vbn")
    pf = [d for d in gen.devices if d.polarity == "p" and d.is_mos and d.terminal("s") == "vdd"]
    copies = lambda net: sum(size(d) / size(ref) for d in gen.devices if d.is_mos and d.polarity == "n"
                             and d.terminal("g") == "vbn" and d.terminal("d") == net)
    diode = {d.terminal("d"): d for d in pf if d.terminal("d") == d.terminal("g")}
    units = 1.0 + sum(copies(n) for n in diode)
    units += sum(copies(diode[d.terminal("g")].terminal("d")) * size(d) / size(diode[d.terminal("g")])
                 for d in pf if d.terminal("d") != d.terminal("g"))
    return units


def enable_windows(spec: ChipSpec, direction: str = "forward", t_clk: Optional[float] = None) -> Dict:
    """Per inference: {"t_end": sample instant, "t_inference": time per inference, "enabled": {period: seconds
    its cells are enabled}, "idle": seconds with no period enabled} from the schedule; with the sequencer's
    clock `t_clk`, from its slots (load, each period rounded up to whole cycles, hold, the start cycle)."""
    sch = build_schedule(spec, direction, len(spec.input_nodes()))
    if t_clk is None:
        on = {k: sch.enable_until[k] - sch.enable_from[k] for k in sch.order}
        t_inf, t_end = sch.t_inference, sch.t_end
    else:
        from kchip.netlist.sequencer import plan
        pl = plan(spec, t_clk)
        cyc = {k: pl.cycles[k] for k in sch.order}
        on = {k: cyc[k] * t_clk for k in sch.order}
        on[sch.order[0]] += pl.load_cycles * t_clk          # the first period's cells are on during the load
        on[sch.order[-1]] += pl.hold_cycles * t_clk         # and the last one's through the hold
        t_end = (pl.load_cycles + sum(cyc.values())) * t_clk
        t_inf = (pl.n_flops + 1) * t_clk
    return {"t_end": t_end, "t_inference": t_inf, "enabled": on, "idle": max(0.0, t_inf - sum(on.values()))}


def analytic_power(spec: ChipSpec, rep: Dict, kind: str, corner: str, vdd: float, bias: Dict,
                   seq: Optional[Dict] = None) -> Dict:
    """Supply current [A] per state of the chip: with period k enabled ("period_<k>") and with none ("idle"),
    by block; `seq` = {"n_flops", "t_clk_s", "gate_area_um2", "gate_cap_f_per_um2", "activity"} adds the
    sequencer."""
    from kchip.netlist.transistor import cell_table_path
    supply, fit = cell_supply_fit(cell_table_path(kind, corner))
    cells = [e for e in rep["edges"] if e["code"]]
    on = {p.index: sum(supply(e) for e in cells if e["period"] == p.index) for p in spec.periods}
    n_per = {p.index: sum(1 for e in cells if e["period"] == p.index) for p in spec.periods}
    delta = fit["disabled_offset_A"]
    off = {k: on[k] + (delta or 0.0) * n_per[k] for k in on}
    i_bias = bias["units"] * rep["i_ref_A"]            # i_ref_A = mult x I_unit
    i_seq = 0.0
    if seq:
        c = seq["activity"] * seq["gate_area_um2"] * seq["gate_cap_f_per_um2"]
        i_seq = c * vdd / seq["t_clk_s"]               # C V^2 f / V
    states = {}
    for k in on:
        cell_i = on[k] + sum(off[j] for j in off if j != k)
        states[f"period_{k}"] = {"cells_A": cell_i, "bias_A": i_bias, "sequencer_A": i_seq,
                                 "total_A": cell_i + i_bias + i_seq}
    idle = sum(off.values())
    states["idle"] = {"cells_A": idle, "bias_A": i_bias, "sequencer_A": i_seq, "total_A": idle + i_bias + i_seq}
    return {"states": states, "cell_fit": fit, "cells": len(cells),
            "disabled_figure": "enabled fit + the table's disabled offset at full codes" if delta is not None
            else "not characterized: the enabled figure"}


def energy(power_by_state: Dict[str, float], windows: Dict, vdd: float) -> Dict:
    """{"power_W": average over an inference, "energy_J": per inference, "forward_power_W": while a period runs,
    "idle_power_W"} from supply currents per state and the enable windows."""
    e_on = sum(power_by_state[f"period_{k}"] * t for k, t in windows["enabled"].items()) * vdd
    e = e_on + power_by_state["idle"] * windows["idle"] * vdd
    t_on = sum(windows["enabled"].values())
    return {"energy_J": e, "power_W": e / windows["t_inference"], "forward_power_W": e_on / max(t_on, 1e-30),
            "idle_power_W": power_by_state["idle"] * vdd}


def cell_areas(layouts: Path) -> Dict[str, Dict]:
    return {d["cell"]: d for d in json.loads(Path(layouts).read_text())}


def analytic_area(spec: ChipSpec, rep: Dict, kind: str, layouts: Path, pdk, seq_cells: Optional[Dict] = None
                  ) -> Dict:
    """Area [um^2] by block from the laid-out cells (module docstring); `seq_cells`: {std cell: count}."""
    from kchip.cells.characterize import cell_bias
    tab = cell_areas(layouts)
    n_cells = rep["instantiated"]
    cap = pdk.device("mimcap")
    c_area = float(cap["c_area_f_per_um2"])
    ref = tab["node_cap"]                               # a laid-out 200 fF MIM cell: its margin over C / c_area
    margin = ref["bbox_area_um2"] / (200e-15 / c_area)
    caps = sum(c / c_area * margin for c in rep["node_cap_mim_f"].values())
    n = spec.num_nodes
    bias_cell = tab["bias_gen"]
    gen = cell_bias(pdk, kind)                          # its line decoupling capacitors, c_dec each
    decap = gen.text.count(f" {cap['name']} ") * gen.params["c_dec"] / c_area * margin
    density = tab[kind]["gate_area_um2"] / tab[kind]["bbox_area_um2"]
    bias = decap + rep["bias_mult"] * bias_cell["gate_area_um2"] / density
    blocks = {"edge_cells": n_cells * tab[kind]["bbox_area_um2"], "node_caps": caps,
              "switches": 2 * n * tab["tgate"]["bbox_area_um2"], "inverters": (n + 1) * tab["inverter"]["bbox_area_um2"],
              "bias": bias}
    if seq_cells:
        blocks["sequencer"] = sum(tab[c.replace("sky130_fd_sc_hd__", "")]["bbox_area_um2"] * k
                                  for c, k in seq_cells.items())
    total = sum(blocks.values())
    return {"blocks_um2": blocks, "total_mm2": total * 1e-6, "per_edge_um2": total / max(n_cells, 1),
            "bias_density": density}


def sequencer_cells(spec: ChipSpec, t_clk: float) -> Dict[str, int]:
    """{standard cell: count} of the chip's sequencer."""
    from kchip.netlist.sequencer import sequencer_subckt
    text, _ = sequencer_subckt(spec, t_clk)
    out: Dict[str, int] = {}
    for ln in text.splitlines():
        tok = ln.split()
        if tok and tok[0].lower().startswith("x") and tok[-1].startswith("sky130_fd_sc_hd__"):
            out[tok[-1]] = out.get(tok[-1], 0) + 1
    return out


def seq_gate_area(counts: Dict[str, int], layouts: Path) -> float:
    tab = cell_areas(layouts)
    return sum(tab[c.replace("sky130_fd_sc_hd__", "")]["gate_area_um2"] * k for c, k in counts.items())


def latency(windows: Dict) -> Dict:
    return {"latency_s": windows["t_end"], "t_inference_s": windows["t_inference"],
            "throughput_per_s": 1.0 / windows["t_inference"]}


__all__: List[str] = ["cell_supply_fit", "bias_units", "enable_windows", "analytic_power", "energy",
                      "analytic_area", "sequencer_cells", "seq_gate_area", "latency"]
