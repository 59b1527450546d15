"""`kchip characterize`: characterize cell kinds at corners with ngspice (tables in characterization/)."""
from __future__ import annotations

import json
import time

from kchip.cliargs import int_in


def _add(p):
    p.add_argument("--cell", required=True, help="cell kind(s), comma separated (tanh_diff)")
    p.add_argument("--corner", default="tt", help="corners, comma separated (tt,ss,ff,sf,fs)")
    p.add_argument("--mc", type=int_in(0, 1000), default=8, help="mismatch Monte Carlo copies per code (0: skip)")
    p.add_argument("--out", default=None, help="output folder (default characterization/<cell>/)")
    p.add_argument("--reanalyze", action="store_true", help="recompute fits/plots from saved tables, no SPICE")
    p.add_argument("--jobs", type=int_in(1, 1024), default=2, help="ngspice processes side by side (default 2)")
    p.add_argument("--pdk", default="sky130")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the characterization decks on this dask.distributed cluster (its workers must see "
                        "the same paths)")


def _run(args) -> int:
    from pathlib import Path

    from ..pdk import load_pdk
    from .characterize import KINDS, characterize, reanalyze
    pdk = load_pdk(args.pdk)
    if args.scheduler:                 # every run_decks of the characterization goes to the cluster
        import os
        os.environ["KCHIP_SCHEDULER"] = args.scheduler
    cells = [c.strip() for c in args.cell.split(",") if c.strip()]
    corners = [c.strip() for c in args.corner.split(",") if c.strip()]
    for c in cells:
        if c not in KINDS:
            raise ValueError(f"unknown cell kind {c!r}; known: {', '.join(KINDS)}")
    for k in corners:
        pdk.check_corner(k)
    for c in cells:
        for k in corners:
            t0 = time.perf_counter()
            out = Path(args.out) / c if args.out else None
            if args.reanalyze:
                from .relu import reanalyze_relu
                from .relu_lin_analysis import reanalyze_relu_lin
                from .tanh_lin_analysis import reanalyze_tanh_lin
                fam = KINDS[c].family
                s = (reanalyze_relu(k, out) if fam == "relu" else reanalyze_relu_lin(k, out) if fam == "relu_lin"
                     else reanalyze_tanh_lin(k, out) if fam == "tanh_lin" else reanalyze(c, k, out))
            else:
                s = characterize(c, k, pdk, out, n_mc=args.mc, jobs=args.jobs)
            keys = ("max_dev_pct_fs", "max_dev_percode_fit_pct_fs", "kcl_mismatch_pct_fs", "slope_per_V",
                    "leakage_pct_of_i_unit", "max_dev_table_soft_pct_fs",
                    "max_dev_surrogate_pct_fs", "max_dev_surrogate_heldout_mixed_pct_fs", "theta1_max_per_V")
            print(json.dumps({"cell": c, "corner": k, **{x: round(s[x], 4) for x in keys if x in s},
                              "wall_s": round(time.perf_counter() - t0, 1)}))
    return 0


COMMANDS = {"characterize": ("characterize cell kinds at PDK corners (ngspice); writes characterization/",
                             _add, _run)}
