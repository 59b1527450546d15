"""Shared training machinery for every task family: seeding, the epoch loop with a tqdm progress bar, atomic
checkpoints (model + optimizer + RNG state + history), resume, and the per-run metrics.json.

Reproducibility contract (CPU): the same seed gives the same initial parameters (torch global RNG seeded
before the model is built), the same batch order and the same per-epoch random draws (one `torch.Generator`
owned by the loop, its state saved in every checkpoint), hence the same loss curve. A resumed run restores the
model, the optimizer, the generator and the history, so it continues the curve it would have drawn unbroken.
"""
from __future__ import annotations

import json
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional

import numpy as np
import torch

from kchip.model import KirchhoffNet, atomic_torch_save, model_from_dict, model_to_dict

CKPT_FORMAT = "kchip.train"


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch's global RNG (model initialization draws from torch's)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def limit_threads(n: int = 1) -> None:
    """The build machine is shared: training runs single-threaded unless told otherwise."""
    try:
        torch.set_num_threads(int(os.environ.get("KCHIP_THREADS", n)))
    except RuntimeError:
        pass


def write_json_atomic(obj: Any, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, default=_json_default)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return str(o)


def save_checkpoint(path, model: KirchhoffNet, optimizer, epoch: int, history: Dict, gen: torch.Generator,
                    config: Dict, scheduler=None) -> None:
    atomic_torch_save({
        "format": CKPT_FORMAT, "epoch": int(epoch), "model": model_to_dict(model),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
        "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "history": history,
        "config": config,
    }, path)


def load_checkpoint(path) -> Dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{path}: cannot read checkpoint: {exc}") from None
    if not isinstance(ck, dict) or ck.get("format") != CKPT_FORMAT:
        raise ValueError(f"{path}: not a kchip training checkpoint")
    return ck


def model_from_checkpoint(path) -> KirchhoffNet:
    return model_from_dict(load_checkpoint(path)["model"], where=str(path))


def fit(model: KirchhoffNet, loss_fn: Callable[[KirchhoffNet, Any], torch.Tensor],
        batches: Callable[[torch.Generator, int], Iterable], epochs: int, lr: float, seed: int,
        run_dir=None, resume: bool = False, progress: bool = True, weight_decay: float = 0.01,
        config: Optional[Dict] = None, scheduler: Optional[str] = None, desc: str = "train",
        eval_fn: Optional[Callable[[KirchhoffNet], Dict]] = None, eval_every: int = 0,
        grad_clip: Optional[float] = None) -> Dict:
    """Generic AdamW loop. `batches(gen, epoch)` yields the epoch's batches (drawing any randomness from `gen`);
    `loss_fn(model, batch)` returns a scalar loss (mean over the batch) and the batch size is taken from it as
    the first dimension of the first tensor in the batch. Checkpoints `run_dir/checkpoint.pt` after every epoch
    (atomically); `resume=True` continues from it. Returns the history dict (per-epoch mean loss, times)."""
    from tqdm import tqdm

    config = dict(config or {})
    grad_clip = grad_clip or config.get("clip")
    run_dir = Path(run_dir) if run_dir else None
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = None
    if scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs), eta_min=lr * 0.01)
    gen = torch.Generator().manual_seed(int(seed))
    history: Dict[str, list] = {"loss": [], "epoch_s": [], "eval": []}
    start = 0
    ckpt = run_dir / "checkpoint.pt" if run_dir else None
    if resume:
        if ckpt is None or not ckpt.exists():
            raise FileNotFoundError(f"{ckpt}: nothing to resume (no checkpoint)")
        ck = load_checkpoint(ckpt)
        saved = model_from_dict(ck["model"], where=str(ckpt))
        model.load_state_dict(saved.state_dict())
        opt.load_state_dict(ck["optimizer"])
        if sched is not None and ck.get("scheduler"):
            sched.load_state_dict(ck["scheduler"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        history = ck["history"]
        start = int(ck["epoch"])
    bar = tqdm(range(start, epochs), desc=desc, disable=not progress, dynamic_ncols=True, initial=start,
               total=epochs)
    for epoch in bar:
        model.train()
        t0 = time.time()
        tot, n = 0.0, 0
        for batch in batches(gen, epoch):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise ValueError(f"{desc}: loss became {loss.item()} at epoch {epoch + 1}")
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            bs = _batch_size(batch)
            tot += loss.item() * bs
            n += bs
        if sched is not None:
            sched.step()
        history["loss"].append(tot / max(n, 1))
        history["epoch_s"].append(time.time() - t0)
        if eval_fn is not None and eval_every and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
            model.eval()
            history["eval"].append(dict(epoch=epoch + 1, **eval_fn(model)))
        bar.set_postfix(loss=f"{history['loss'][-1]:.4g}")
        if ckpt is not None:
            save_checkpoint(ckpt, model, opt, epoch + 1, history, gen, config, sched)
    model.eval()
    return history


def _batch_size(batch) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return int(batch[0].shape[0])
    if isinstance(batch, int):
        return batch
    return 1


def shuffled_batches(n: int, batch: int, gen: torch.Generator):
    """Index batches of a random permutation of range(n) (last batch may be short, like a DataLoader)."""
    perm = torch.randperm(n, generator=gen)
    return [perm[i:i + batch] for i in range(0, n, batch)]


def xy_batches(x: torch.Tensor, y: torch.Tensor, batch: int, gen: torch.Generator):
    """(x, y) mini-batches in the order of `shuffled_batches` (one random permutation per call)."""
    for idx in shuffled_batches(x.shape[0], batch, gen):
        yield x[idx], y[idx]


def summarize_times(history: Dict) -> Dict:
    t = history.get("epoch_s") or []
    return {"epochs_run": len(t), "epoch_s_mean": float(np.mean(t)) if t else math.nan,
            "train_s_total": float(np.sum(t)) if t else 0.0}
