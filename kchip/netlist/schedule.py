"""The control schedule of one inference: load phase, period slots in execution order, resets, sample strobe.

This is what the chip's sequencer produces from its clock and start input. All times are in seconds relative
to the start of an inference:

    [0, t_load)                 ld high: input nodes connect to the input drivers; every other node of the
                                first executed period is reset to V_cm
    [t_k, t_k + T_k)            en_k high for the k-th executed period (edges of that period biased); the first
                                period's en rises already at 0: its nodes are all held during the load phase,
                                so its cells settle before the nodes are released
    node resets                 a node that an executed period uses but the previous one did not is held at
                                V_cm from the end of its last use (or from 0) until that period starts
                                (official semantics: new nodes start at 0)
    smp                         high (track) from 0 to the end of the last period, then low (hold); the last
                                period's en_k stays high through the hold window, so that the cells switch
                                off after the sample, not into it
    [t_end, t_end + t_hold)     outputs held; read at the end of this window
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from kchip.quantize.chipspec import ChipSpec


@dataclass
class Schedule:
    direction: str
    order: List[int]                          # period indices in execution order
    t_load: float
    starts: Dict[int, float]                  # period index -> start time
    lengths: Dict[int, float]
    t_end: float                              # end of the last period (sample instant)
    t_hold: float
    inputs: List[int]                         # nodes loaded from the input drivers
    outputs: List[int]                        # nodes read out (after the projector)
    resets: Dict[int, List[Tuple[float, float]]] = field(default_factory=dict)   # node -> [(from, to)]
    enable_from: Dict[int, float] = field(default_factory=dict)  # period -> time its en_k rises
    enable_until: Dict[int, float] = field(default_factory=dict)  # period -> time its en_k falls

    @property
    def t_inference(self) -> float:
        return self.t_end + self.t_hold


def _projected(nodes: List[int], projector) -> List[int]:
    if not projector:
        return nodes
    n = int(projector[4:]) if projector.startswith("last") else int(projector[5:])
    return nodes[-n:] if projector.startswith("last") else nodes[:n]


def build_schedule(spec: ChipSpec, direction: str, n_inputs: int, t_load: float = None,
                   t_hold: float = None) -> Schedule:
    if direction not in ("forward", "reverse"):
        raise ValueError(f"direction: {direction!r} is not forward or reverse")
    periods = {p.index: p for p in spec.periods}
    order = sorted(periods)
    if direction == "reverse":
        order = order[::-1]
    lengths = {k: spec.scaling.period_s[k] for k in order}
    T = min(lengths.values())
    t_load = t_load if t_load is not None else 0.05 * T
    t_hold = t_hold if t_hold is not None else 0.05 * T
    first = periods[order[0]]
    if n_inputs > first.num_nodes:
        raise ValueError(f"inputs: {n_inputs} values per sample but the first executed period "
                         f"(periods[{first.index}], {direction}) has {first.num_nodes} nodes")
    starts, t = {}, t_load
    for k in order:
        starts[k] = t
        t += lengths[k]
    t_end = t
    inputs = list(range(1, n_inputs + 1))
    resets: Dict[int, List[Tuple[float, float]]] = {}
    last_use_end: Dict[int, float] = {}
    prev_nodes = set(inputs)
    for pos, k in enumerate(order):
        nodes = set(range(1, periods[k].num_nodes + 1))
        for j in sorted(nodes - prev_nodes):
            resets.setdefault(j, []).append((last_use_end.get(j, 0.0), starts[k]))
        for j in nodes:
            last_use_end[j] = starts[k] + lengths[k]
        prev_nodes = nodes
    last = periods[order[-1]]
    outputs = _projected(list(range(1, last.num_nodes + 1)), spec.projector)
    # the first executed period's edges are enabled already during the load phase: every node of that period
    # is then held (loaded or reset), so the cells settle (bias, mirrors, turn-on charge) into held nodes and
    # the period starts with settled cells when ld / rst release the nodes at t_load
    enable_from = {k: starts[k] for k in order}
    enable_from[order[0]] = 0.0
    # the last executed period's edges stay enabled through the hold window: the outputs are sampled (smp falls)
    # at t_end while the cells still run, so the cells' turn-off charge never lands in the sample
    enable_until = {k: starts[k] + lengths[k] for k in order}
    enable_until[order[-1]] = t_end + t_hold
    return Schedule(direction, order, t_load, starts, lengths, t_end, t_hold, inputs, outputs, resets, enable_from,
                    enable_until)
