"""Which cell realizes each i-v law, and what physical quantity each of its parameters sets.

Parameter kinds (SW value theta -> physical value, with the `Scaling` V_u, I_u):
    gm      a transconductance multiplying a voltage:       theta * I_u / V_u   [S]
    slope   the slope of a tanh pair per volt of input:      theta / V_u         [1/V]   (tail current = I_u)
    ibias   an additive current (current DAC):               theta * I_u         [A]
    offset  an offset inside a tanh argument (pair imbalance): theta             [1]
    vshift  a voltage shift of a rectifier's knee:           theta * V_u         [V]
Width groups: `gm` and `slope` use the transconductance width (--bits-gm), the others the bias width
(--bits-bias). Rows a law stores but does not read (official ShiftTanh1 row 2) are not realized (set to 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

PARAM_KINDS: Dict[str, Tuple[str, str]] = {   # kind -> (unit, width group)
    "gm": ("S", "gm"),
    "slope": ("1/V", "gm"),
    "ibias": ("A", "bias"),
    "offset": ("1", "bias"),
    "vshift": ("V", "bias"),
}


@dataclass(frozen=True)
class CellKind:
    name: str
    law: str                                   # canonical kchip law the cell realizes
    params: Tuple[Tuple[int, str, str], ...]   # (parameter row, parameter name, parameter kind)

    @property
    def names(self):
        return [p[1] for p in self.params]


CELL_KINDS: Dict[str, CellKind] = {c.name: c for c in (
    CellKind("relu_diff", "relu_diff", ((0, "bias", "ibias"), (1, "gain", "gm"))),
    CellKind("tanh_diff", "tanh_diff", ((0, "offset", "offset"), (1, "slope", "slope"))),
    CellKind("relu_lin", "relu_lin", ((0, "g_s", "gm"), (1, "g_d", "gm"), (2, "bias", "ibias"))),
    CellKind("tanh_lin", "tanh_lin", ((0, "slope_s", "slope"), (1, "slope_d", "slope"), (2, "offset", "offset"))),
    CellKind("leaky_relu_lin", "ShiftLeakyRelu2", ((0, "g_s", "gm"), (1, "g_d", "gm"), (2, "bias", "ibias"))),
    CellKind("shift_relu_diff", "ShiftRelu1", ((0, "shift", "vshift"), (1, "gain", "gm"))),
    CellKind("shift_leaky_relu_diff", "ShiftLeakyRelu1", ((0, "shift", "vshift"), (1, "gain", "gm"))),
    CellKind("conductance", "Conductance", ((0, "g", "gm"),)),
)}

# every law name of kchip.model.laws -> the cell kind that realizes it
LAW_TO_CELL: Dict[str, str] = {
    "relu_diff": "relu_diff", "tanh_diff": "tanh_diff", "ShiftTanh1": "tanh_diff",
    "relu_lin": "relu_lin", "ShiftRelu2": "relu_lin", "tanh_lin": "tanh_lin", "ShiftTanh2": "tanh_lin",
    "ShiftLeakyRelu2": "leaky_relu_lin", "ShiftRelu1": "shift_relu_diff",
    "ShiftLeakyRelu1": "shift_leaky_relu_diff", "Conductance": "conductance",
}


def cell_for_law(law_name: str, where: str = "law") -> CellKind:
    try:
        return CELL_KINDS[LAW_TO_CELL[law_name]]
    except KeyError:
        raise ValueError(f"{where}: no cell realizes law {law_name!r}; known laws: "
                         f"{', '.join(sorted(LAW_TO_CELL))}") from None


def kind_factor(kind: str, v_u: float, i_u: float) -> float:
    """Physical value per SW unit of a parameter of `kind`."""
    return {"gm": i_u / v_u, "slope": 1.0 / v_u, "ibias": i_u, "offset": 1.0, "vshift": v_u}[kind]
