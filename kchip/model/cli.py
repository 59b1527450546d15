"""Model commands: import-official, forward, info."""
from __future__ import annotations

import json

import numpy as np
import torch

from ..cliargs import float_in


def _add_import(p):
    p.add_argument("model", help="official state dict (model.pth)")
    p.add_argument("config", help="official config.yaml")
    p.add_argument("-o", "--out", required=True, help="kchip model file to write")


def _run_import(args) -> int:
    from .io import import_official, save_model
    model = import_official(args.model, args.config)
    save_model(model, args.out)
    print(f"wrote {args.out}: {len(model.periods)} periods, {model.num_params()} parameters, "
          f"law {model.periods[0].law.name}, projector {model.projector}")
    return 0


def _add_forward(p):
    p.add_argument("model", help="kchip model file")
    p.add_argument("--inputs", required=True, help="inputs .npy of shape (batch, n_in)")
    p.add_argument("-o", "--out", required=True, help="outputs .npy")
    p.add_argument("--reverse", action="store_true", help="integrate the periods backwards (sampling)")
    p.add_argument("--rtol", type=float_in(1e-12, 1.0, hi_open=True), default=None, help="solver relative tolerance, in [1e-12, 1)")
    p.add_argument("--atol", type=float_in(1e-14, 1.0, hi_open=True), default=None, help="solver absolute tolerance, in [1e-14, 1)")



def _run_forward(args) -> int:
    from ..errors import RunError
    from ..fsio import save_npy
    from .inputs import load_inputs
    from .io import load_model
    model = load_model(args.model).double()
    x = load_inputs(args.inputs, model, args.reverse)
    over = {k: v for k, v in (("rtol", args.rtol), ("atol", args.atol)) if v is not None}
    with torch.no_grad():
        y = model(torch.as_tensor(x, dtype=torch.float64), reverse=args.reverse, **over).numpy()
    bad = ~np.isfinite(y)
    if bad.any():
        raise RunError(f"{args.model}: the outputs of {int(bad.any(1).sum())} of {len(y)} sample(s) are not "
                       f"finite (first: input row {int(np.argwhere(bad)[0][0])}): the circuit diverged; nothing "
                       f"written to {args.out}")
    save_npy(args.out, y)
    print(f"wrote {args.out}: shape {tuple(y.shape)}")
    return 0


def _add_info(p):
    p.add_argument("model", help="kchip model file")


def _run_info(args) -> int:
    from .io import load_model
    m = load_model(args.model)
    info = {"periods": [{"law": p.law.name, "nodes": p.num_nodes, "edges": p.num_edges, "t_len": p.t_len}
                        for p in m.periods], "projector": m.projector, "params": m.num_params(),
            "solver": m.solver, "meta": m.meta}
    print(json.dumps(info, indent=2))
    return 0


COMMANDS = {
    "import-official": ("import an official KirchhoffNet checkpoint + config.yaml", _add_import, _run_import),
    "forward": ("run a kchip model forward (or reverse) on inputs", _add_forward, _run_forward),
    "info": ("print a kchip model's structure", _add_info, _run_info),
}
