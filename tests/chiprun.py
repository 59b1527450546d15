"""Test helper: build a transistor-level chip deck, simulate inputs in ngspice and evaluate its L2 models
(shared by the slow chip-vs-L2 tests of every cell kind)."""
import numpy as np
import torch

from kchip.netlist import build_netlist
from kchip.netlist.transistor import cell_level_spec
from kchip.quantize.core import realized_model
from kchip.sim.l2 import surrogate_model
from kchip.sim.simulate import simulate

X2 = np.array([[0.5, -0.5], [-0.8, 0.3]])


def chip_and_l2(spec, tmp_path, x=X2, control=None, codelaw=True):
    """(chip outputs, L2 surrogate model outputs, L2 per-code-law outputs or None, netlist report, sim info)
    for inputs x, all inferences in one ngspice run at tt."""
    rep = {}
    deck = tmp_path / "chip.spice"
    deck.write_text(build_netlist(spec, "transistor", "tt", report=rep, control=control))
    y, info = simulate(deck, spec, x, "forward", jobs=1, chunk=len(x))
    tight = dict(rtol=1e-9, atol=1e-11)
    with torch.no_grad():
        l2 = surrogate_model(spec, rep)(torch.tensor(x), **tight).numpy()
        l2c = realized_model(cell_level_spec(spec, rep))(torch.tensor(x), **tight).numpy() if codelaw else None
    print("chip", y.ravel(), "L2 surrogate", l2.ravel(), "L2 per-code law", None if l2c is None else l2c.ravel(),
          "ngspice s", info.get("wall_s"), info.get("cpu_s"))
    return y, l2, l2c, rep, info
