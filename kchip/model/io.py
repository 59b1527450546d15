"""kchip model files and the official-checkpoint importer.

A kchip model file is a `torch.save` dict:
    {"format": "kchip.model", "version": 1, "projector": str|None, "fill": "zeros", "solver": {...},
     "meta": {...}, "periods": [{"law": str, "num_nodes": int, "t_len": float,
                                 "edges": LongTensor (E, 2), "param": Tensor (k, E)}, ...]}
Written atomically (temp file + rename). Every error names the file and the field.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Union

import torch

from .laws import official_law_name
from .net import KirchhoffNet, Period
from .topology import generate

FORMAT = "kchip.model"
VERSION = 1
PathLike = Union[str, os.PathLike]


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def model_to_dict(model: KirchhoffNet) -> Dict[str, Any]:
    return {
        "format": FORMAT, "version": VERSION, "projector": model.projector, "fill": model.fill,
        "solver": dict(model.solver), "meta": dict(model.meta),
        "periods": [{"law": p.law.name, "num_nodes": p.num_nodes, "t_len": p.t_len,
                     "edges": p.edges.cpu().clone(), "param": p.param.detach().cpu().clone()}
                    for p in model.periods],
    }


def save_model(model: KirchhoffNet, path: PathLike) -> None:
    atomic_torch_save(model_to_dict(model), path)


def _need(d: Dict, key: str, where: str):
    if not isinstance(d, dict) or key not in d:
        raise ValueError(f"{where}: missing required field {key!r}")
    return d[key]


def model_from_dict(d: Dict[str, Any], where: str = "model") -> KirchhoffNet:
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        got = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"{where}: not a kchip model file (format {got!r}, expected {FORMAT!r}); "
                         f"official checkpoints are imported with `kchip import-official`")
    if d.get("version") != VERSION:
        raise ValueError(f"{where}: version {d.get('version')!r} is not supported (expected {VERSION})")
    periods = []
    for i, p in enumerate(_need(d, "periods", where)):
        w = f"{where}: periods[{i}]"
        periods.append(Period(_need(p, "edges", w), _need(p, "law", w), _need(p, "t_len", w),
                              param=_need(p, "param", w), num_nodes=p.get("num_nodes"), where=w))
    return KirchhoffNet(periods, projector=d.get("projector"), fill=d.get("fill", "zeros"),
                        solver=d.get("solver"), meta=d.get("meta"))


def load_model(path: PathLike) -> KirchhoffNet:
    """Load a kchip model file (see module doc)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        what = " ".join(str(exc).split())[:120]
        raise ValueError(f"{path}: not a kchip model file (torch.load: {type(exc).__name__}"
                         f"{': ' + what if what else ''})") from None
    return model_from_dict(d, where=str(path))


def file_sha256(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- official checkpoints ------------------------------------------------------------------------------------
def _cfg_get(cfg: Dict, dotted: str, where: str):
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"{where}: missing config key {dotted!r}")
        node = node[part]
    return node


def import_official(model_path: PathLike, config_path: PathLike) -> KirchhoffNet:
    """Build a KirchhoffNet from an official KirchhoffNet state dict (`circuit.layer_list.<i>.model.param`) and
    its config.yaml (network.model, network.net_struct, simulation.t_end, network.fill, network.projector)."""
    model_path, config_path = Path(model_path), Path(config_path)
    for p in (model_path, config_path):
        if not p.exists():
            raise FileNotFoundError(f"{p}: file not found")
    from ..schema import load_yaml
    cfg = load_yaml(config_path)              # syntax errors with line and column, repeated keys refused
    cw = str(config_path)
    model_cfg = _cfg_get(cfg, "network.model", cw)
    law = official_law_name(_need(model_cfg, "name", f"{cw}: network.model"), model_cfg.get("args"),
                            f"{cw}: network.model.name")
    structs = _cfg_get(cfg, "network.net_struct", cw)
    t_end = [float(t) for t in _cfg_get(cfg, "simulation.t_end", cw)]
    if not isinstance(structs, list) or not structs:
        raise ValueError(f"{cw}: network.net_struct must be a non-empty list, got {structs!r}")
    if len(t_end) != len(structs) + 1:
        raise ValueError(f"{cw}: simulation.t_end has {len(t_end)} boundaries but network.net_struct has "
                         f"{len(structs)} periods (need {len(structs) + 1})")
    net = cfg["network"]
    for key in ("encoder", "residual"):
        if net.get(key) not in (None, "none"):
            raise ValueError(f"{cw}: network.{key} = {net.get(key)!r} is not supported by kchip (must be null)")
    if net.get("use_augment") or False:
        pass  # augmentation only adds the log-density state; the circuit is the same
    try:
        state = torch.load(model_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        what = " ".join(str(exc).split())[:120]
        raise ValueError(f"{model_path}: cannot read as a torch state dict (torch.load: {type(exc).__name__}"
                         f"{': ' + what if what else ''})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{model_path}: expected a state dict, got {type(state).__name__}")
    periods: List[Period] = []
    for i, st in enumerate(structs):
        sw = f"{cw}: network.net_struct[{i}]"
        edges = generate(_need(st, "name", sw), st.get("args"), sw)
        key = f"circuit.layer_list.{i}.model.param"
        if key not in state:
            raise ValueError(f"{model_path}: missing state-dict key {key!r} for period {i}")
        periods.append(Period(edges[:, :2], law, t_end[i + 1] - t_end[i], param=state[key],
                              where=f"{model_path}: {key}"))
    extra = sorted(k for k in state if not any(k == f"circuit.layer_list.{i}.model.param" for i in range(len(structs))))
    if extra:
        raise ValueError(f"{model_path}: unexpected state-dict keys {extra[:5]} (config has {len(structs)} periods)")
    sim = cfg.get("simulation", {}) or {}
    tol = float(sim.get("tol", 1e-6))
    solver = {"method": str(sim.get("method", "dopri5")), "rtol": tol, "atol": tol}
    meta = {"source": "official", "model_file": model_path.name, "config_file": config_path.name,
            "model_sha256": file_sha256(model_path), "test_bench": cfg.get("test_bench")}
    return KirchhoffNet(periods, projector=net.get("projector"), fill=net.get("fill", "zeros") or "zeros",
                        solver=solver, meta=meta)
