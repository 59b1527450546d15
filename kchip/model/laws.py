"""Edge i-v laws of a KirchhoffNet.

Every law maps (parameters p of shape (k, E), source voltages vs and destination voltages vd of shape
(..., E)) to the edge current i of shape (..., E), vectorized over edges. The parameter layout (which row
means what, and how many rows a checkpoint stores) is the official KirchhoffNet code's, so that imported
state dicts load unchanged.

Paper equations (Gao et al., KirchhoffNet):
    Eq. 10  relu_diff  ReLU(theta1 (vs - vd) + theta2)         rows: p[0] = theta2, p[1] = theta1
    Eq. 11  tanh_diff  tanh(theta1 (vs - vd) + theta2)         rows: p[0] = theta2, p[1] = theta1
    Eq. 12  relu_lin   ReLU(theta1 vs + theta2 vd + theta3)    rows: p[0], p[1], p[2]
    Eq. 13  tanh_lin   tanh(theta1 vs + theta2 vd + theta3)    rows: p[0], p[1], p[2]
(`relu_diff`/`tanh_diff` are the official `Device(negation=True)`; `relu_lin`/`tanh_lin` are
`Device(negation=False)`.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

import torch
import torch.nn.functional as F

LEAKY_SLOPE = 0.01  # torch.nn.functional.leaky_relu default, as in the official code


@dataclass(frozen=True)
class Law:
    name: str
    rows: int            # parameter rows stored per edge (official layout)
    used_rows: int       # rows the law actually reads
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    form: str            # "diff" (depends on vs - vd) or "lin" (vs, vd separately)
    activation: str      # relu | leaky_relu | tanh | linear
    doc: str

    def __call__(self, p: torch.Tensor, vs: torch.Tensor, vd: torch.Tensor) -> torch.Tensor:
        return self.fn(p, vs, vd)


def _relu_diff(p, vs, vd):
    return F.relu(p[1] * (vs - vd) + p[0])


def _tanh_diff(p, vs, vd):
    return torch.tanh(p[1] * (vs - vd) + p[0])


def _relu_lin(p, vs, vd):
    return F.relu(p[0] * vs + p[1] * vd + p[2])


def _tanh_lin(p, vs, vd):
    return torch.tanh(p[0] * vs + p[1] * vd + p[2])


def _leaky_lin(p, vs, vd):
    return F.leaky_relu(p[0] * vs + p[1] * vd + p[2], LEAKY_SLOPE)


def _shift_relu1(p, vs, vd):
    return p[1] * F.relu((vs - vd) - p[0])


def _shift_leaky_relu1(p, vs, vd):
    return p[1] * F.leaky_relu((vs - vd) - p[0], LEAKY_SLOPE)


def _conductance(p, vs, vd):
    return p[0] * (vs - vd)


LAWS: Dict[str, Law] = {}


def _register(law: Law, *aliases: str) -> None:
    for key in (law.name, *aliases):
        LAWS[key] = law


_register(Law("relu_diff", 2, 2, _relu_diff, "diff", "relu", "ReLU(p1 (vs-vd) + p0)  [paper Eq. 10]"), "eq10")
_register(Law("tanh_diff", 2, 2, _tanh_diff, "diff", "tanh", "tanh(p1 (vs-vd) + p0)  [paper Eq. 11]"), "eq11")
_register(Law("relu_lin", 3, 3, _relu_lin, "lin", "relu", "ReLU(p0 vs + p1 vd + p2)  [paper Eq. 12]"), "eq12")
_register(Law("tanh_lin", 3, 3, _tanh_lin, "lin", "tanh", "tanh(p0 vs + p1 vd + p2)  [paper Eq. 13]"), "eq13")
_register(Law("ShiftRelu1", 2, 2, _shift_relu1, "diff", "relu", "p1 ReLU((vs-vd) - p0)"))
_register(Law("ShiftLeakyRelu1", 2, 2, _shift_leaky_relu1, "diff", "leaky_relu", "p1 LeakyReLU((vs-vd) - p0)"))
_register(Law("ShiftRelu2", 3, 3, _relu_lin, "lin", "relu", "ReLU(p0 vs + p1 vd + p2)"))
_register(Law("ShiftLeakyRelu2", 3, 3, _leaky_lin, "lin", "leaky_relu", "LeakyReLU(p0 vs + p1 vd + p2)"))
# The official ShiftTanh1 stores 3 rows but reads only the first two.
_register(Law("ShiftTanh1", 3, 2, _tanh_diff, "diff", "tanh", "tanh(p1 (vs-vd) + p0)"))
_register(Law("ShiftTanh2", 3, 3, _tanh_lin, "lin", "tanh", "tanh(p0 vs + p1 vd + p2)"))
_register(Law("Conductance", 3, 1, _conductance, "diff", "linear", "p0 (vs - vd)"))


def get_law(name: str, where: str = "law") -> Law:
    """Look a law up by name; `where` names the file/field for the error message."""
    try:
        return LAWS[name]
    except KeyError:
        known = ", ".join(sorted({l.name for l in LAWS.values()}))
        raise ValueError(f"{where}: unknown i-v law {name!r}; known laws: {known}") from None


def official_law_name(model_name: str, args: dict | None, where: str) -> str:
    """Map an official config's network.model (name + args) to a kchip law name."""
    args = dict(args or {})
    if model_name == "Device":
        neg = bool(args.get("negation", True))
        act = args.get("activation", None)
        table = {(True, "relu"): "relu_diff", (True, "tanh"): "tanh_diff",
                 (False, "relu"): "relu_lin", (False, "tanh"): "tanh_lin"}
        if (neg, act) not in table:
            raise ValueError(f"{where}: Device with negation={neg!r}, activation={act!r} is not supported "
                             f"(supported activations: relu, tanh)")
        return table[(neg, act)]
    if args:
        raise ValueError(f"{where}: model {model_name!r} takes no args, got {args!r}")
    return get_law(model_name, where).name
