"""Device-aware quantization (issue 4): code tables, the realized (L1) model, STE fine-tuning, Monte Carlo
mismatch, and the ChipSpec IR. See docs/quantize.md."""
from .tables import CodeTable
from .chipspec import ChipSpec, EdgeSpec, NodeSpec, PeriodSpec
from .core import (DEFAULT_BITS, QuantResult, attach_ste, build_tables, detach_ste, model_hash, quantize_model,
                   realized_model)

__all__ = ["CodeTable", "ChipSpec", "EdgeSpec", "NodeSpec", "PeriodSpec", "DEFAULT_BITS", "QuantResult",
           "attach_ste", "build_tables", "detach_ste", "model_hash", "quantize_model", "realized_model"]
