"""`kchip quantize MODEL -o chip.json [--bits-gm N --bits-bias N --strict --finetune E --mc N --task T]`.

Maps the model (kchip.hw.mapping), quantizes it to codes (kchip.quantize), optionally fine-tunes it with the
straight-through estimator and evaluates Monte Carlo mismatch, writes the ChipSpec JSON and prints a summary
(a `<out>.report.json` next to it carries the mapping and quantization reports and the measured figures).
"""
from __future__ import annotations

import json
from pathlib import Path

from kchip.cliargs import float_in, int_in


def _add(p):
    p.add_argument("model", help="kchip model file (kchip import-official / kchip train)")
    p.add_argument("-o", "--out", required=True, help="ChipSpec JSON to write")
    p.add_argument("--bits-gm", type=int_in(1, 16), default=6, help="transconductance/slope code width (+ sign), default 6")
    p.add_argument("--bits-bias", type=int_in(1, 16), default=6, help="bias/offset code width (+ sign), default 6")
    p.add_argument("--strict", action="store_true", help="refuse values outside the realizable range (no clip)")
    p.add_argument("--ideal-cells", action="store_true",
                   help="ignore the cells' limits (table full scale = the model's range): isolates the code width")
    p.add_argument("--finetune", type=int_in(0), default=0, metavar="EPOCHS",
                   help="quantization-aware fine-tuning (straight-through estimator) for EPOCHS epochs")
    p.add_argument("--lr", type=float_in(0, lo_open=True), default=1e-3, help="fine-tuning learning rate")
    p.add_argument("--mismatch-aware", action="store_true",
                   help="fine-tune on a fresh mismatch draw (--sigma-gm, --sigma-offset) every step")
    p.add_argument("--task", default="auto", help="twomoon | regression:<dataset> | auto (from the model) | none")
    p.add_argument("--calib", default=None, help="calibration inputs .npy (forward direction) when --task none")
    p.add_argument("--mc", type=int_in(0, 100000), default=0, metavar="DRAWS", help="Monte Carlo mismatch draws (>= 50 advised)")
    p.add_argument("--sigma-gm", type=float_in(0), default=0.02, help="relative sigma of each transconductance")
    p.add_argument("--sigma-offset", type=float_in(0), default=0.01, help="offset current sigma, fraction of I_u")
    p.add_argument("--target", default="latency=1e-6",
                   help="latency=<s> | power=<W> | area=<um^2 per node capacitor>, default latency=1e-6")
    p.add_argument("--node-speed", choices=("enforce", "warn"), default="enforce",
                   help="enforce (default): slow the chip until every node time constant is >= 5 cell lags "
                        "(docs/quantize.md); warn: keep the target's tau and only warn")
    p.add_argument("--pdk", default="sky130")
    p.add_argument("--corner", default="tt")
    p.add_argument("--tables", default=None,
                   help="measured code tables used unchanged: comma-separated JSON files, each either "
                        "{'<cell>.<param>': CodeTable dict} or a kchip.cells characterized table "
                        "(characterization/<cell>/<corner>.json)")


def _target(s: str):
    kind, sep, val = s.partition("=")
    if not sep:
        raise ValueError(f"--target: expected kind=value, got {s!r}")
    try:
        return {"kind": kind, "value": float(val)}
    except ValueError:
        raise ValueError(f"--target: value {val!r} is not a number") from None


def _run(args) -> int:
    import numpy as np
    import torch

    from kchip.hw import map_model
    from kchip.hw.limits import load_limits
    from kchip.model import load_model
    from kchip.model.io import file_sha256

    from .core import quantize_model
    from .evaluate import finetune, get_task, monte_carlo, output_error
    from .tables import CodeTable

    torch.set_num_threads(1)
    for b, n in ((args.bits_gm, "--bits-gm"), (args.bits_bias, "--bits-bias")):
        if not 1 <= b <= 20:
            raise ValueError(f"{n}: {b} bits is outside 1..20")
    model = load_model(args.model).double()
    lim = load_limits(args.pdk)
    task = None
    if args.task != "none":
        task = get_task(args.task, model)
        calib, n_in = task.calib(), task.num_inputs
    else:
        if not args.calib:
            raise ValueError("--calib: calibration inputs are needed with --task none")
        if not Path(args.calib).exists():
            raise FileNotFoundError(f"{args.calib}: calibration file not found")
        try:
            x = torch.as_tensor(np.load(args.calib), dtype=torch.float64)
        except Exception as exc:  # noqa: BLE001 - re-raised naming the file
            raise ValueError(f"{args.calib}: cannot read as a .npy array: {exc}") from None
        if x.ndim != 2:
            raise ValueError(f"{args.calib}: expected (batch, n_in), got shape {tuple(x.shape)}")
        calib, n_in = {"forward": x}, x.shape[1]
    tables = None
    if args.tables:
        tables = {}
        for f in args.tables.split(","):
            if not Path(f).exists():
                raise FileNotFoundError(f"{f}: code table file not found")
            raw = json.loads(Path(f).read_text())
            if "cell" in raw and "params" in raw:             # a kchip.cells characterized table
                from kchip.cells.tables import CodeTable as CellsCodeTable
                from .tables import from_cells_table
                ignored = []
                got = from_cells_table(CellsCodeTable.from_dict(raw), ignored=ignored)
                if not got:
                    raise ValueError(f"{f}: none of its parameters ({', '.join(ignored)}) has a counterpart in the "
                                     f"KirchhoffNet laws' parameters (see docs/quantize.md, code tables)")
                print(f"{f}: measured tables {', '.join(got)}; not used: {', '.join(ignored) or '-'}")
                tables.update(got)
            else:
                tables.update({k: CodeTable.from_dict(v, f"{f}: {k}") for k, v in raw.items()})
    scaling = map_model(model, calib, lim, dict(_target(args.target), node_speed=args.node_speed), tables=tables)
    bits = {"gm": args.bits_gm, "bias": args.bits_bias}
    prov = {"source_file": str(args.model), "source_file_sha256": file_sha256(args.model)}
    res = quantize_model(model, scaling, lim, bits, tables, strict=args.strict, num_inputs=n_in,
                         name=Path(args.model).stem, corner=args.corner, provenance=prov,
                         respect_limits=not args.ideal_cells)
    summary = {"scaling": {k: getattr(scaling, k) for k in ("v_cm", "v_u", "i_u", "c_f", "tau_s")},
               "warnings": scaling.report["warnings"], "clipped": res.report["clipped_total"]}
    for key, t in res.report["tables"].items():
        if t["clipped"]:
            print(f"clipped {t['clipped']} of {t['count']} {key} values (worst error {t['worst_clip_error_sw']:.4g} "
                  f"SW units at {t['worst_clip_edge']})")
    for w in scaling.report["warnings"]:
        print("warning:", w)
    if task is not None:
        ref = task.outputs(model)
        summary["L0_metric"] = task.metric(model)
        summary["L1_metric"] = task.metric(res.model)
        summary["L1_output_error"] = output_error(ref, task.outputs(res.model))
        print(f"{task.metric_name}: float {summary['L0_metric']:.5g}, quantized {summary['L1_metric']:.5g}; "
              f"output error RMS {summary['L1_output_error']['rms_pct_fs']:.3f} % FS, "
              f"max {summary['L1_output_error']['max_pct_fs']:.3f} % FS")
        if args.finetune > 0:
            ft = finetune(model, scaling, res.spec.tables, task, args.finetune, lr=args.lr, log=print,
                          mismatch=(args.sigma_gm, args.sigma_offset) if args.mismatch_aware else None)
            res = quantize_model(ft, scaling, lim, bits, res.spec.tables, strict=args.strict, num_inputs=n_in,
                                 name=Path(args.model).stem, corner=args.corner,
                                 provenance=dict(prov, finetune_epochs=args.finetune, finetune_lr=args.lr,
                                                 mismatch_aware=bool(args.mismatch_aware)),
                                 respect_limits=not args.ideal_cells)
            summary["finetuned_metric"] = task.metric(res.model)
            print(f"{task.metric_name} after {args.finetune} fine-tuning epochs: {summary['finetuned_metric']:.5g}")
        if args.mc > 0:
            mc = monte_carlo(res.model, task, args.mc, args.sigma_gm, args.sigma_offset, ref_outputs=ref)
            summary["monte_carlo"] = mc
            print(f"Monte Carlo ({args.mc} draws, sigma_gm {args.sigma_gm}, sigma_offset {args.sigma_offset} I_u): "
                  f"{task.metric_name} {mc['metric_mean']:.5g} +- {mc['metric_std']:.5g}")
    elif args.finetune or args.mc:
        raise ValueError("--finetune/--mc need a task (--task)")
    res.spec.save(args.out)
    rep = Path(str(args.out) + ".report.json")
    rep.write_text(json.dumps({"summary": summary, "mapping": scaling.report, "quantization": res.report},
                              indent=1, default=str))
    print(f"wrote {args.out}: {len(res.spec.nodes)} nodes, {len(res.spec.periods)} periods, {len(res.spec.edges)} "
          f"edges; V_u {scaling.v_u * 1e3:.4g} mV, I_u {scaling.i_u:.4g} A, C {scaling.c_f:.4g} F, "
          f"tau {scaling.tau_s:.4g} s; report {rep}")
    return 0


COMMANDS = {
    "quantize": ("map a model to hardware scaling, quantize it to cell codes, write the ChipSpec", _add, _run),
}
