"""`kchip train --task NAME ...` and `kchip sample MODEL ...`.

Tasks: friedman, diabetes (regression, Table I), twomoon, 8gaussians, 2spirals, circle, pinwheel, swissroll
(2-D generation, CNF), u1, u2 (density matching), digits (classification, NE/Proj only).
A run writes into --out (default build/train/<task>[-<size>]-s<seed>/): checkpoint.pt (atomic, every epoch,
with optimizer + RNG state, used by --resume), metrics.json, model.pt (kchip model file) and, for the 2-D
tasks, a PNG plot.
"""
from __future__ import annotations

import json
from pathlib import Path

from kchip.cliargs import float_in, int_in

from .toy2d import POTENTIALS, TOY

REGRESSION = ("friedman", "diabetes")
TASKS = REGRESSION + tuple(TOY) + tuple(POTENTIALS) + ("digits",)

# per-family defaults: the paper's settings where it gives them (regression), else what converges on a CPU
DEFAULTS = {
    "regression": dict(epochs=400, batch=64, lr=5e-4),
    "generation": dict(epochs=150, batch=512, lr=5e-3, iters=8, periods=4, t_len=0.5, repeat=25),
    "density": dict(epochs=25, batch=512, lr=5e-3, iters=20, periods=8, t_len=0.2, repeat=10, anneal=12),
    "digits": dict(epochs=30, batch=64, lr=5e-3),
}


def family(task: str) -> str:
    if task in REGRESSION:
        return "regression"
    if task in TOY:
        return "generation"
    if task in POTENTIALS:
        return "density"
    if task == "digits":
        return "digits"
    raise ValueError(f"--task {task!r} unknown; known: {', '.join(TASKS)}")


def _add_train(p):
    p.add_argument("--task", required=True, help="one of: " + ", ".join(TASKS))
    p.add_argument("--size", default="small", help="regression model size: small | medium | large")
    p.add_argument("--seed", type=int_in(0, 2 ** 32 - 1), default=0,
                   help="training seed (init, batch order, sampling)")
    p.add_argument("--epochs", type=int_in(1), default=None)
    p.add_argument("--batch", type=int_in(1), default=None)
    p.add_argument("--lr", type=float_in(0, lo_open=True), default=None)
    p.add_argument("--iters", type=int_in(1), default=None, help="iterations per epoch (generation / density)")
    p.add_argument("--periods", type=int_in(1), default=None, help="number of FC periods D (generation / density)")
    p.add_argument("--t-len", type=float_in(0, lo_open=True), default=None,
                   help="period length T (generation / density)")
    p.add_argument("--repeat", type=int_in(1), default=None, help="FC repeat r (generation / density)")
    p.add_argument("--layers", type=int_in(1), default=2, help="digits: number of Proj periods")
    p.add_argument("--extra", type=int_in(0), default=20, help="digits: extra (fully joined) nodes per Proj layer")
    p.add_argument("--kernel", type=int_in(1), default=3, help="digits: NE/Proj kernel size")
    p.add_argument("--tol", type=float_in(0, 1, lo_open=True, hi_open=True), default=None,
                   help="training ODE solver rtol = atol (default per task)")
    p.add_argument("--init", default=None, help="start from this trained model (model.pt / checkpoint.pt) "
                   "of the same structure: fine-tuning")
    p.add_argument("--anneal", type=int_in(0), default=None,
                   help="density: epochs of potential annealing (0 = off; default 12)")
    p.add_argument("--clip", type=float_in(0, lo_open=True), default=None,
                   help="clip the gradient norm to this value")
    p.add_argument("--eval-every", type=int_in(0), default=0, help="evaluate the test metric every N epochs")
    p.add_argument("-o", "--out", default=None, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--threads", type=int_in(1, 1024), default=1, help="torch threads (default 1: shared machine)")


def _init_from(model, path):
    """Copy the parameters of a trained model of the same structure into `model` (fine-tuning start)."""
    src = _load_any(path)
    if len(src.periods) != len(model.periods) or any(
            a.param.shape != b.param.shape or not (a.src.equal(b.src) and a.dst.equal(b.dst))
            for a, b in zip(src.periods, model.periods)):
        raise ValueError(f"--init {path}: structure differs from the model this task builds")
    model.load_state_dict(src.state_dict())
    return model


def _run_train(args) -> int:
    import torch
    from kchip.model import save_model
    from .common import set_seed
    fam = family(args.task)
    torch.set_num_threads(max(1, args.threads))
    d = dict(DEFAULTS[fam])
    for k in ("epochs", "batch", "lr", "iters", "periods", "t_len", "repeat", "anneal"):
        v = getattr(args, k, None)
        if v is not None:
            d[k] = v
    name = args.task + (f"-{args.size}" if fam == "regression" else "") + f"-s{args.seed}"
    out = Path(args.out or f"build/train/{name}")
    if not args.resume and (out / "checkpoint.pt").exists():
        raise ValueError(f"{out}: a run is already there (use --resume to continue it, or another --out)")
    set_seed(args.seed)
    prog = not args.no_progress
    sol = {"rtol": args.tol, "atol": args.tol} if args.tol else None
    cfg = {"name": name, "dataset": args.task, "init": args.init, "clip": args.clip}
    plot = None
    if fam == "regression":
        from . import regression as R
        data = R.load_data(args.task)
        model = R.build_regression_model(data[0].shape[1], args.size)
        if args.init:
            _init_from(model, args.init)
        m = R.train(model, data, d["epochs"], d["batch"], d["lr"], args.seed, run_dir=out, resume=args.resume,
                    progress=prog, config=dict(cfg, size=args.size), eval_every=args.eval_every, solver=sol)
        summary = {k: m[k] for k in ("params", "test_mse", "train_mse", "epoch_s_mean")}
    elif fam == "generation":
        from . import generation as G
        model = G.build_flow_model(2, d["periods"], d["t_len"], d["repeat"])
        if args.init:
            _init_from(model, args.init)
        m = G.train(model, args.task, d["iters"], d["epochs"], d["batch"], d["lr"], args.seed, run_dir=out,
                    resume=args.resume, progress=prog, eval_every=args.eval_every, solver=sol,
                    config=dict(cfg, periods=d["periods"], t_len=d["t_len"], repeat=d["repeat"]))
        summary = {k: m[k] for k in ("params", "test_nll", "epoch_s_mean")}
        plot = out / "samples.png"
        G.plot_samples(model, plot, data_name=args.task, title=f"kchip D={d['periods']}")
    elif fam == "density":
        from . import density as Dm
        model = Dm.build_density_model(d["periods"], d["t_len"], d["repeat"])
        if args.init:
            _init_from(model, args.init)
        m = Dm.train(model, args.task, d["epochs"], d["iters"], d["batch"], d["lr"], args.seed, run_dir=out,
                     resume=args.resume, progress=prog, solver=sol, anneal=d["anneal"],
                     config=dict(cfg, periods=d["periods"], t_len=d["t_len"], repeat=d["repeat"]))
        summary = {k: m[k] for k in ("params", "kl", "mass_in_box", "epoch_s_mean")}
        plot = out / "density.png"
        Dm.plot_density(model, args.task, plot)
    else:
        from . import classify as C
        data = C.load_digits_data()
        model = C.build_classifier(args.layers, args.kernel, args.extra)
        if args.init:
            _init_from(model, args.init)
        m = C.train(model, data, d["epochs"], d["batch"], d["lr"], args.seed, run_dir=out, resume=args.resume,
                    progress=prog, eval_every=args.eval_every, solver=sol,
                    config=dict(cfg, layers=args.layers, kernel=args.kernel, extra=args.extra))
        summary = {k: m[k] for k in ("params", "test_top1", "train_top1", "epoch_s_mean")}
    save_model(model, out / "model.pt")
    print(json.dumps({"run": str(out), **summary, **({"plot": str(plot)} if plot else {})}, indent=2))
    return 0


def _add_sample(p):
    p.add_argument("model", help="kchip model file (model.pt) or training checkpoint (checkpoint.pt)")
    p.add_argument("-n", "--num", type=int_in(1, 10 ** 7), default=20000, help="number of samples")
    p.add_argument("--seed", type=int_in(0, 2 ** 32 - 1), default=0)
    p.add_argument("-o", "--out", default="samples.png", help="plot to write (PNG)")
    p.add_argument("--npy", default=None, help="also save the samples as .npy")
    p.add_argument("--data", default=None, help="toy data set to plot next to the samples")
    p.add_argument("--lim", type=float_in(0, lo_open=True), default=None, help="plot half-width")


def _load_any(path):
    import torch
    from kchip.model import load_model
    from .common import CKPT_FORMAT, model_from_checkpoint
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: not found")
    try:
        head = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file: named, with torch's reason
        raise ValueError(f"{p}: not a kchip model or checkpoint file (torch.load: {type(exc).__name__})") from None
    if isinstance(head, dict) and head.get("format") == CKPT_FORMAT:
        return model_from_checkpoint(p)
    return load_model(p)


def _run_sample(args) -> int:
    import numpy as np
    import torch
    from . import generation as G
    torch.set_num_threads(1)
    model = _load_any(args.model)
    if model.projector is not None or model.periods[0].num_nodes != 2:
        raise ValueError(f"{args.model}: `kchip sample` needs a 2-D flow model (2 nodes, no projector)")
    if args.data is not None and args.data not in TOY:
        raise ValueError(f"--data {args.data!r} unknown; known: {', '.join(TOY)}")
    G.plot_samples(model, args.out, n=args.num, seed=args.seed, data_name=args.data, lim=args.lim)
    if args.npy:
        np.save(args.npy, G.sample(model, args.num, args.seed).numpy())
    print(f"wrote {args.out}" + (f" and {args.npy}" if args.npy else ""))
    return 0


COMMANDS = {
    "train": ("train a KirchhoffNet on one of the paper's tasks", _add_train, _run_train),
    "sample": ("draw samples from a trained 2-D flow (reverse direction from N(0, I)) and plot them",
               _add_sample, _run_sample),
}
