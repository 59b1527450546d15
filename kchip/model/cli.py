"""Model commands: import-official, forward, info."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


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
    p.add_argument("--rtol", type=float, default=None)
    p.add_argument("--atol", type=float, default=None)


def _run_forward(args) -> int:
    from .io import load_model
    model = load_model(args.model).double()
    x = np.load(args.inputs)
    if x.ndim != 2:
        raise ValueError(f"{args.inputs}: expected a 2-D array (batch, n_in), got shape {x.shape}")
    over = {k: v for k, v in (("rtol", args.rtol), ("atol", args.atol)) if v is not None}
    with torch.no_grad():
        y = model(torch.as_tensor(x, dtype=torch.float64), reverse=args.reverse, **over)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, y.numpy())
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
