"""`kchip simulate chip.spice --spec chip.json --inputs X.npy [--direction forward|reverse] -o OUT`."""
from __future__ import annotations

import time
from pathlib import Path

from kchip.cliargs import float_in, int_in
from kchip.fsio import save_npy, write_json


def _add(p):
    p.add_argument("deck", help="chip netlist from `kchip netlist`")
    p.add_argument("--spec", required=True, help="the ChipSpec the netlist was built from")
    p.add_argument("--inputs", required=True, help="inputs .npy, shape (batch, n_in), SW units")
    p.add_argument("--direction", default="forward", choices=["forward", "reverse"])
    p.add_argument("--corner", default=None, help="process corner (transistor level; the ideal level has none)")
    p.add_argument("--model", default=None, help="float model (L0) to compare against, kchip model file")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--jobs", type=int_in(1, 1024), default=None, help="parallel ngspice processes (default: CPU count)")
    p.add_argument("--chunk", type=int_in(1), default=16, help="inputs per ngspice run")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the chunks on this dask.distributed cluster instead of local processes")
    p.add_argument("--timeout-per-input", type=float_in(0, lo_open=True), default=None, metavar="S",
                   help="wall seconds allowed per inference (default: 3600 at transistor level)")
    p.add_argument("--no-merge", action="store_true",
                   help="simulate every edge cell as its own instance (default: identical parallel cells of a "
                        "transistor deck run as one scaled instance, kchip.sim.merge)")
    p.add_argument("--no-op-init", action="store_true",
                   help="let ngspice search a transistor deck's operating point from scratch (default: Newton "
                        "starts from the state of the chip without cells and of lone cells, kchip.sim.opinit)")
    p.add_argument("--waves", type=int_in(0), default=0, metavar="N",
                   help="also plot the waveforms of the first N inferences (node voltages, enables)")


def _run(args) -> int:
    import torch
    from kchip.model import load_model
    from kchip.quantize.chipspec import ChipSpec
    from kchip.quantize.core import realized_model
    from .simulate import compare, simulate
    from .waves import plot_waves, wave_names

    from kchip.model.inputs import check_inputs, read_array
    spec = ChipSpec.load(args.spec)
    first = spec.periods[-1] if args.direction == "reverse" else spec.periods[0]
    x = check_inputs(read_array(args.inputs), str(args.inputs), first.num_nodes,
                     what="the last period" if args.direction == "reverse" else "the first period")
    from kchip.netlist import read_header
    head = read_header(Path(args.deck).read_text(), str(args.deck))
    if head.get("level") == "transistor":
        if args.corner and args.corner != head.get("corner"):
            raise ValueError(f"--corner {args.corner}: {args.deck} was built with the {head.get('corner')} models "
                             f"and cell tables; rebuild it with `kchip netlist --level transistor --corner "
                             f"{args.corner}`")
    elif args.corner and args.corner != spec.corner:
        print(f"note: --corner {args.corner} has no effect on an ideal-level deck (ChipSpec corner {spec.corner})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    waves = wave_names(spec, head) if args.waves else ()
    t0 = time.perf_counter()
    y, info = simulate(args.deck, spec, x, args.direction, jobs=args.jobs, chunk=args.chunk, out_dir=out,
                       waves=waves, timeout_per_input=args.timeout_per_input, merge=not args.no_merge,
                       op_init=not args.no_op_init, scheduler=args.scheduler)
    wall = time.perf_counter() - t0
    save_npy(out / f"outputs_{args.direction}.npy", y)
    rev = args.direction == "reverse"
    tight = dict(rtol=1e-9, atol=1e-11)
    result = {"deck": str(args.deck), "spec": str(args.spec), "direction": args.direction, "inputs": len(x),
              "wall_s": wall, "ngspice_wall_s": info["wall_s"], "ngspice_cpu_s": info.get("cpu_s"),
              "jobs": info["jobs"], "merge": info.get("merge"), "op_init": info.get("op_init"), "compare": {}}
    with torch.no_grad():
        l1 = realized_model(spec)(torch.tensor(x, dtype=torch.float64), reverse=rev, **tight).numpy()
        result["compare"]["L1"] = compare(y, l1)
        if args.model:
            l0 = load_model(args.model).double()(torch.tensor(x, dtype=torch.float64), reverse=rev, **tight).numpy()
            result["compare"]["L0"] = compare(y, l0)
    write_json(out / f"compare_{args.direction}.json", result)
    for lvl, c in result["compare"].items():
        print(f"vs {lvl}: RMS {c['rms_pct_fs']:.3f} % FS, max {c['max_pct_fs']:.3f} % FS "
              f"(full scale {c['full_scale']:.3g} SW)")
    if args.waves:
        png = plot_waves(spec, info, args.direction, min(args.waves, args.chunk, len(x)),
                         out / f"waves_{args.direction}.png", head)
        print(f"wrote {png}")
    print(f"wrote {out}/outputs_{args.direction}.npy and compare_{args.direction}.json ({wall:.1f} s)")
    return 0


COMMANDS = {"simulate": ("simulate a chip netlist in ngspice and compare with the software model", _add, _run)}
