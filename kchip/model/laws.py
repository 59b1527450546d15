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
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

LEAKY_SLOPE = 0.01  # torch.nn.functional.leaky_relu default, as in the official code


@dataclass(frozen=True)
class Law:
    """An i-v law as a small pipeline over the official parameter rows p (k, E):

        z = vs - vd                          (form "diff")   or   p0 vs + p1 vd + p2   (form "lin")
        z = z * p[scale] + p[offset]         (pre = ("affine", scale, offset))
          | z - p[row]                       (pre = ("shift", row))
        i = act(z) [* p[post]]               act in relu | leaky_relu | tanh | linear
    """
    name: str
    rows: int            # parameter rows stored per edge (official layout)
    used_rows: int       # rows the law actually reads
    form: str            # "diff" (depends on vs - vd) or "lin" (vs, vd separately)
    activation: str      # relu | leaky_relu | tanh | linear
    pre: Optional[Tuple] = None
    post: Optional[int] = None
    doc: str = ""

    def __call__(self, p: torch.Tensor, vs: torch.Tensor, vd: torch.Tensor) -> torch.Tensor:
        """Out-of-place evaluation (autograd-safe). p rows broadcast against vs/vd."""
        z = vs - vd if self.form == "diff" else p[0] * vs + p[1] * vd + p[2]
        if self.pre is not None:
            z = z * p[self.pre[1]] + p[self.pre[2]] if self.pre[0] == "affine" else z - p[self.pre[1]]
        z = _ACT[self.activation](z)
        return z * p[self.post] if self.post is not None else z

    def fn(self, p, vs, vd):
        return self(p, vs, vd)

    def with_partials(self, p: torch.Tensor, vs: torch.Tensor, vd: torch.Tensor):
        """(i, di/dvs, di/dvd) in closed form, sharing one evaluation of the pipeline; differentiable (used for
        the exact Jacobian trace of a flow)."""
        z = vs - vd if self.form == "diff" else p[0] * vs + p[1] * vd + p[2]
        k = None
        if self.pre is not None:
            if self.pre[0] == "affine":
                z = z * p[self.pre[1]] + p[self.pre[2]]
                k = p[self.pre[1]]
            else:
                z = z - p[self.pre[1]]
        a = _ACT[self.activation](z)
        da = 1 - a * a if self.activation == "tanh" else _DACT[self.activation](z)
        if k is not None:
            da = da * k
        if self.post is not None:
            a, da = a * p[self.post], da * p[self.post]
        if self.form == "diff":
            return a, da, -da
        return a, da * p[0], da * p[1]

    def inplace(self, p: torch.Tensor, vs: torch.Tensor, vd: torch.Tensor) -> torch.Tensor:
        """Same law, computed in place in `vs` (which it returns) and clobbering nothing else; for inference
        (no autograd) where it avoids allocating edge-sized temporaries on every right-hand-side call."""
        z = vs
        if self.form == "diff":
            z.sub_(vd)
        else:
            z.mul_(p[0]).addcmul_(vd, p[1]).add_(p[2])
        if self.pre is not None:
            if self.pre[0] == "affine":
                z.mul_(p[self.pre[1]]).add_(p[self.pre[2]])
            else:
                z.sub_(p[self.pre[1]])
        _ACT_INPLACE[self.activation](z)
        if self.post is not None:
            z.mul_(p[self.post])
        return z


_ACT = {"relu": F.relu, "tanh": torch.tanh, "linear": lambda z: z,
        "leaky_relu": lambda z: F.leaky_relu(z, LEAKY_SLOPE)}
_DACT = {"relu": lambda z: (z > 0).to(z.dtype), "tanh": lambda z: 1 - torch.tanh(z) ** 2,
         "linear": lambda z: torch.ones_like(z),
         "leaky_relu": lambda z: torch.where(z > 0, torch.ones_like(z), torch.full_like(z, LEAKY_SLOPE))}
_ACT_INPLACE = {"relu": torch.relu_, "tanh": torch.tanh_, "linear": lambda z: z,
                "leaky_relu": lambda z: F.leaky_relu_(z, LEAKY_SLOPE)}

LAWS: Dict[str, Law] = {}


def _register(law: Law, *aliases: str) -> None:
    for key in (law.name, *aliases):
        LAWS[key] = law


_AFF = ("affine", 1, 0)      # z * p1 + p0
_register(Law("relu_diff", 2, 2, "diff", "relu", _AFF, doc="ReLU(p1 (vs-vd) + p0)  [paper Eq. 10]"), "eq10")
_register(Law("tanh_diff", 2, 2, "diff", "tanh", _AFF, doc="tanh(p1 (vs-vd) + p0)  [paper Eq. 11]"), "eq11")
_register(Law("relu_lin", 3, 3, "lin", "relu", doc="ReLU(p0 vs + p1 vd + p2)  [paper Eq. 12]"), "eq12")
_register(Law("tanh_lin", 3, 3, "lin", "tanh", doc="tanh(p0 vs + p1 vd + p2)  [paper Eq. 13]"), "eq13")
_register(Law("ShiftRelu1", 2, 2, "diff", "relu", ("shift", 0), post=1, doc="p1 ReLU((vs-vd) - p0)"))
_register(Law("ShiftLeakyRelu1", 2, 2, "diff", "leaky_relu", ("shift", 0), post=1,
              doc="p1 LeakyReLU((vs-vd) - p0)"))
_register(Law("ShiftRelu2", 3, 3, "lin", "relu", doc="ReLU(p0 vs + p1 vd + p2)"))
_register(Law("ShiftLeakyRelu2", 3, 3, "lin", "leaky_relu", doc="LeakyReLU(p0 vs + p1 vd + p2)"))
# The official ShiftTanh1 and Conductance store 3 rows but read fewer.
_register(Law("ShiftTanh1", 3, 2, "diff", "tanh", _AFF, doc="tanh(p1 (vs-vd) + p0)"))
_register(Law("ShiftTanh2", 3, 3, "lin", "tanh", doc="tanh(p0 vs + p1 vd + p2)"))
_register(Law("Conductance", 3, 1, "diff", "linear", post=0, doc="p0 (vs - vd)"))


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
