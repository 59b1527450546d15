"""Verification (kchip.verify): DRC and LVS on KLayout's engine."""
