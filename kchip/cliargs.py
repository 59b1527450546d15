"""argparse types that refuse an out-of-range number with the allowed range (argparse then exits with code 2
and names the option): `int_in(1)` for a positive integer, `float_in(0, lo_open=True)` for a positive number."""
from __future__ import annotations

import argparse
import math
from typing import Optional


def int_in(lo: Optional[int] = None, hi: Optional[int] = None):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rng = f"in [{lo}, {hi}]" if lo is not None and hi is not None else f">= {lo}" if lo is not None else f"<= {hi}"
            raise argparse.ArgumentTypeError(f"{text!r}: an integer {rng}")
        return v
    return parse


def float_in(lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False, hi_open: bool = False):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        ok = math.isfinite(v) and (lo is None or (v > lo if lo_open else v >= lo)) and \
            (hi is None or (v < hi if hi_open else v <= hi))
        if not ok:
            parts = ([f"{'>' if lo_open else '>='} {lo:g}"] if lo is not None else []) + \
                    ([f"{'<' if hi_open else '<='} {hi:g}"] if hi is not None else [])
            raise argparse.ArgumentTypeError(f"{text!r}: a finite number {' and '.join(parts)}".rstrip())
        return v
    return parse
