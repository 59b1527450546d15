"""argparse types that refuse an out-of-range number with the allowed range (argparse then exits with code 2
and names the option): `int_in(1)` for a positive integer, `float_in(0, lo_open=True)` for a positive number.
The ranges and their wording are the flow.yaml schema's own fields (`kchip.schema.Int`, `Float`)."""
from __future__ import annotations

import argparse
from typing import Optional

from .errors import UsageError
from .schema import Field, Float, Int, Where


def _parser(field: Field, convert, what: str):
    def parse(text: str):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        try:
            return field.check(v, "", Where(""))
        except UsageError:
            raise argparse.ArgumentTypeError(f"{text!r}: {field.allowed()}") from None
    return parse


def int_in(lo: Optional[int] = None, hi: Optional[int] = None):
    return _parser(Int(lo, hi), int, "an integer")


def float_in(lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False, hi_open: bool = False):
    return _parser(Float(lo, hi, lo_open, hi_open), float, "a number")
