"""The chip's sequencer as sky130_fd_sc_hd standard-cell logic: one clock, one start input.

A token shift register: a `start` pulse (one clock) loads a 1 into flop F0; the token moves one flop per
clock through the slots of an inference: `load_cycles` flops (input load), then for each period in execution
order as many flops as the period lasts in clock cycles, then `hold_cycles` flops. Every control output is the
OR of the flops of the slots in which it is high:

    ld      load slots                      smp     load + period slots (low = hold)
    s_k     slots of the k-th executed period;  en_p = dir ? s_{D-1-p} : s_p   (mux2)
    rst_j   slots in which node j is held at V_cm (the schedule's reset windows), per direction, mux2 by dir

`resetb` (active low) clears every flop and holds every node at V_cm (rst_j = slots OR NOT resetb), so that
the nodes start defined at power-on instead of wherever the floating capacitors settle. `dir` = 0 forward,
1 reverse. The schedule it realizes is
`kchip.netlist.schedule.build_schedule`; `sequencer_windows` returns the same windows in clock cycles so that a
test can check the logic against the schedule.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from kchip.quantize.chipspec import ChipSpec

from .schedule import build_schedule

CELLS = ("dfrtp_1", "or2_1", "or3_1", "or4_1", "mux2_1", "buf_1", "inv_1")
PWR = "VGND VGND VPWR VPWR"          # VGND VNB VPB VPWR


@dataclass
class SeqPlan:
    cycles: Dict[int, int]            # period -> clock cycles
    load_cycles: int
    hold_cycles: int
    slots: Dict[str, List[int]]       # signal -> flop indices where it is high (per direction for en/rst)
    n_flops: int


def default_t_clk(spec: ChipSpec) -> float:
    """The chip's sequencer clock: one cycle = the load phase = the hold phase (the schedule's, 0.05 of the
    shortest period)."""
    return build_schedule(spec, "forward", len(spec.input_nodes())).t_load


def period_cycles(spec: ChipSpec, t_clk: float) -> Dict[int, int]:
    out = {}
    for p in spec.periods:
        t = spec.scaling.period_s[p.index]
        c = round(t / t_clk)
        if c < 1 or abs(c * t_clk - t) > 1e-6 * t:
            raise ValueError(f"periods[{p.index}]: length {t:.6g} s is not a whole number of clock cycles of "
                             f"{t_clk:.6g} s (choose a clock period that divides every period length)")
        out[p.index] = c
    return out


def plan(spec: ChipSpec, t_clk: float, load_cycles: int = 1, hold_cycles: int = 1) -> SeqPlan:
    """Flop indices of every control signal for both directions (reset windows from the schedule, which is
    direction- and input-width-dependent: here the inputs are the first period's nodes, as the ChipSpec says)."""
    cyc = period_cycles(spec, t_clk)
    n_in = len(spec.input_nodes())
    slots: Dict[str, List[int]] = {}
    total = load_cycles + sum(cyc.values()) + hold_cycles
    for direction in ("forward", "reverse"):
        sch = build_schedule(spec, direction, n_in if direction == "forward" else
                             spec.periods[-1].num_nodes)
        start, first = {}, load_cycles
        for k in sch.order:
            start[k] = first
            first += cyc[k]
        to_cycle = {0.0: 0, sch.t_load: load_cycles}
        to_cycle.update({sch.starts[k]: start[k] for k in sch.order})
        to_cycle.update({sch.starts[k] + sch.lengths[k]: start[k] + cyc[k] for k in sch.order})
        to_cycle[sch.t_end + sch.t_hold] = first + hold_cycles
        for pos, k in enumerate(sch.order):     # enable windows of the schedule (first: from the load phase on;
            #                                     last: through the hold slot)
            slots[f"s{pos}_{direction}"] = list(range(_cyc(to_cycle, sch.enable_from[k]),
                                                      _cyc(to_cycle, sch.enable_until[k])))
        for j in range(1, spec.num_nodes + 1):
            fl = []
            for a, b in sch.resets.get(j, []):
                fl += list(range(_cyc(to_cycle, a), _cyc(to_cycle, b)))
            slots[f"rst_{j}_{direction}"] = fl
    slots["ld"] = list(range(load_cycles))
    slots["smp"] = list(range(load_cycles + sum(cyc.values())))
    return SeqPlan(cyc, load_cycles, hold_cycles, slots, total)


def _cyc(table: Dict[float, int], t: float) -> int:
    for k, v in table.items():
        if abs(k - t) <= 1e-9 * max(1.0, abs(t)) or abs(k - t) < 1e-15:
            return v
    raise ValueError(f"sequencer: schedule time {t!r} is not a slot boundary")


class _Net:
    def __init__(self):
        self.lines: List[str] = []
        self.n = 0

    def cell(self, cell: str, pins: Sequence[str], out: str = None) -> str:
        self.n += 1
        out = out or f"w{self.n}"
        self.lines.append(f"X{cell.split('_')[0]}{self.n} {' '.join(pins)} {PWR} {out} sky130_fd_sc_hd__{cell}")
        return out

    def or_tree(self, nets: List[str], out: str) -> str:
        """OR of nets with or4/or3/or2 cells (a buffer for one net, tied low for none)."""
        if not nets:
            # tied low: a direct connection to VGND (a 0 V source in SPICE; conb_1's resistor model
            # sky130_fd_pr__res_generic_po has no ngspice model in the package)
            self.n += 1
            self.lines.append(f"Vtie{self.n} {out} VGND 0")
            return out
        layer = list(nets)
        while len(layer) > 4:
            nxt = []
            for i in range(0, len(layer), 4):
                grp = layer[i:i + 4]
                nxt.append(grp[0] if len(grp) == 1 else self.cell(f"or{len(grp)}_1", grp))
            layer = nxt
        if len(layer) == 1:
            return self.cell("buf_1", layer, out)
        return self.cell(f"or{len(layer)}_1", layer, out)


def sequencer_subckt(spec: ChipSpec, t_clk: float, load_cycles: int = 1, hold_cycles: int = 1) -> Tuple[str, SeqPlan]:
    """`.subckt kchip_seq clk start resetb dir ld smp en_0.. rst_1.. VPWR VGND` (standard cells only)."""
    pl = plan(spec, t_clk, load_cycles, hold_cycles)
    d, n = len(spec.periods), spec.num_nodes
    ports = (["clk", "start", "resetb", "dir", "ld", "smp"] + [f"en_{k}" for k in range(d)]
             + [f"rst_{j}" for j in range(1, n + 1)] + ["VPWR", "VGND"])
    net = _Net()
    por = net.cell("inv_1", ["resetb"], "por")          # power-on reset: high while resetb is low
    q = [f"q{i}" for i in range(pl.n_flops)]
    for i in range(pl.n_flops):
        # dfrtp pins: CLK D RESET_B VGND VNB VPB VPWR Q
        net.lines.append(f"Xff{i} clk {'start' if i == 0 else q[i - 1]} resetb {PWR} {q[i]} "
                         f"sky130_fd_sc_hd__dfrtp_1")
    pick = lambda key: [q[i] for i in pl.slots[key]]
    net.or_tree(pick("ld"), "ld")
    net.or_tree(pick("smp"), "smp")
    for p in range(d):
        # en_p: forward it is slot p, reverse it is slot D-1-p;  mux2 pins A0 A1 S ... X
        f = net.or_tree(pick(f"s{p}_forward"), f"sf{p}")
        r = net.or_tree(pick(f"s{d - 1 - p}_reverse"), f"sr{p}")
        net.cell("mux2_1", [f, r, "dir"], f"en_{p}")
    for j in range(1, n + 1):
        f, r = pick(f"rst_{j}_forward"), pick(f"rst_{j}_reverse")
        if f == r:
            net.or_tree(f + [por], f"rst_{j}")
        else:
            a = net.or_tree(f, f"rf{j}")
            b = net.or_tree(r, f"rr{j}")
            net.cell("or2_1", [net.cell("mux2_1", [a, b, "dir"], f"rm{j}"), por], f"rst_{j}")
    text = "\n".join([f".subckt kchip_seq {' '.join(ports)}",
                      f"* token-chain sequencer: {pl.n_flops} flops; load {pl.load_cycles}, periods "
                      f"{[pl.cycles[p.index] for p in spec.periods]}, hold {pl.hold_cycles} clock cycles of "
                      f"{t_clk:.6g} s", *net.lines, ".ends kchip_seq"])
    return text, pl


def inference_frame(t_clk: float, n_flops: int) -> Tuple[float, float]:
    """(t_edge0, t_inf) of a sequencer driven by `drive_sources`: the rising clock edge that loads inference 0's
    token into flop 0 (the first edge after the power-on reset releases), and the time per inference (its
    n_flops slots plus the idle cycle in which the next start pulse is high)."""
    return 2 * t_clk, (n_flops + 1) * t_clk


def drive_sources(t_clk: float, n_flops: int, inferences: int, hi: float, direction: str = "forward"
                  ) -> Tuple[List[str], List[float]]:
    """Testbench sources of a sequencer: clock (edges t_clk / 100), power-on `resetb` (low for the first half
    cycle), one start pulse per inference (one clock wide, centred on the edge that loads the token), `dir`.
    Returns (SPICE lines, the loading edge of each inference)."""
    tr = t_clk / 100
    t_edge0, t_inf = inference_frame(t_clk, n_flops)
    t0 = [t_edge0 + i * t_inf for i in range(inferences)]
    start = ["0 0"]
    for t in t0:
        a = t - t_clk / 2
        start += [f"{a:.9e} 0", f"{a + tr:.9e} {hi}", f"{a + t_clk:.9e} {hi}", f"{a + t_clk + tr:.9e} 0"]
    return [f"Vclk clk 0 PULSE(0 {hi} {t_clk - tr / 2:.9e} {tr:.6e} {tr:.6e} {t_clk / 2 - tr:.9e} {t_clk:.9e})",
            f"Vstart start 0 PWL({' '.join(start)})",
            f"Vrst resetb 0 PWL(0 0 {t_clk / 2:.9e} 0 {t_clk / 2 + tr:.9e} {hi})",
            f"Vdir dir 0 {hi if direction == 'reverse' else 0}"], t0


def sequencer_deck(spec: ChipSpec, t_clk: float, direction: str = "forward", pdk=None, corner: str = "tt",
                   inferences: int = 1) -> Tuple[str, SeqPlan, Dict]:
    """A transistor-level testbench of the sequencer alone: sky130 models + standard cells, clock, a start
    pulse one clock wide before each inference, power-on reset. Returns (deck, plan, timing) where timing has
    the instant of each rising clock edge that moves the token (`t_edge0`: the edge that loads F0)."""
    from kchip.pdk import load_pdk
    pdk = pdk or load_pdk()
    sub, pl = sequencer_subckt(spec, t_clk)
    vdd = pdk.vdd
    per_inf = pl.n_flops + 1                       # cycles per inference (start cycle included)
    t_edge0, _ = inference_frame(t_clk, pl.n_flops)
    drive, _ = drive_sources(t_clk, pl.n_flops, inferences, vdd, direction)
    d, n = len(spec.periods), spec.num_nodes
    outs = ["ld", "smp"] + [f"en_{k}" for k in range(d)] + [f"rst_{j}" for j in range(1, n + 1)]
    t_stop = t_edge0 + inferences * per_inf * t_clk + t_clk
    lines = ["* kchip sequencer testbench", pdk.model_include(corner, trimmed=False)]
    lines += [f".include {pdk.stdcell_spice(c)}" for c in CELLS]
    lines += [sub, f"Vdd VPWR 0 {vdd}", "Vss VGND 0 0", *drive,
              f"Xseq clk start resetb dir {' '.join(outs)} VPWR VGND kchip_seq",
              f".tran {t_clk / 200:.6e} {t_stop:.6e}",
              ".save " + " ".join(f"v({o})" for o in outs), ".end"]
    return "\n".join(lines) + "\n", pl, {"t_edge0": t_edge0, "per_inf": per_inf, "outputs": outs}


def expected_levels(spec: ChipSpec, pl: SeqPlan, direction: str) -> Dict[str, List[int]]:
    """Per output, the logic level during each flop slot 0..n_flops-1 (what the schedule asks for)."""
    d = len(spec.periods)
    out = {"ld": pl.slots["ld"], "smp": pl.slots["smp"]}
    for p in range(d):
        out[f"en_{p}"] = pl.slots[f"s{p}_forward"] if direction == "forward" else pl.slots[f"s{d - 1 - p}_reverse"]
    for j in range(1, spec.num_nodes + 1):
        out[f"rst_{j}"] = pl.slots[f"rst_{j}_{direction}"]
    return {k: [1 if i in v else 0 for i in range(pl.n_flops)] for k, v in out.items()}


def chip_top(spec: ChipSpec, core_ports: Sequence[str], t_clk: float) -> Tuple[str, Dict]:
    """`.subckt kchip_chip vdd iref vcm clk start resetb dir in_.. out_.. ld smp en_.. rst_..`: the transistor-level
    core driven by the standard-cell sequencer (`sequencer_subckt`). The control nets are also pins (outputs,
    for observation only); the core's `dirp` pin (unused at transistor level) is tied to `dir`.
    Returns (text incl. the kchip_seq subcircuit, timing dict for the testbench / header)."""
    seq, pl = sequencer_subckt(spec, t_clk)
    d, n = len(spec.periods), spec.num_nodes
    ctrl = ["ld", "smp"] + [f"en_{k}" for k in range(d)] + [f"rst_{j}" for j in range(1, n + 1)]
    io = [f"in_{j}" for j in range(1, n + 1)] + [f"out_{j}" for j in range(1, n + 1)]
    ports = ["vdd", "iref", "vcm", "clk", "start", "resetb", "dir"] + io + ctrl
    core = ["dir" if p == "dirp" else p for p in core_ports]
    text = "\n".join([seq, f".subckt kchip_chip {' '.join(ports)}",
                      "* the chip: core (cells, bias, capacitors, switches) + sequencer (sky130_fd_sc_hd)",
                      f"Xseq clk start resetb dir {' '.join(ctrl)} vdd 0 kchip_seq",
                      f"Xcore {' '.join(core)} kchip_core", ".ends kchip_chip"])
    timing = {"t_clk": t_clk, "n_flops": pl.n_flops, "load_cycles": pl.load_cycles, "hold_cycles": pl.hold_cycles,
              "cycles": {str(k): v for k, v in pl.cycles.items()}}
    return text, {"ports": ports, "timing": timing}
