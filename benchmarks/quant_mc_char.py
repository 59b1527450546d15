"""Monte Carlo of the realizable twomoon chip (6 bit, sky130 limits, STE fine-tuned: build/quant/twomoon_limits_ft6.json
from benchmarks/quant_extra.py) with the issue-4 sigmas (2 % gm, 1 % I_u offset) and with sigmas taken from the
tanh_diff characterization (characterization/tanh_diff/tt.json: sigma_amp 3.7 % of full scale at code 15, input
offset sigma ~5 mV -> ~ 11.9 /V * 5 mV = 6 % of I_u as a current offset). Needs build/quant/twomoon.pt
(kchip import-official). Writes build/quant/mc_char.json."""
import json, time, torch
torch.set_num_threads(1)
from kchip.model import load_model
from kchip.quantize import ChipSpec, realized_model
from kchip.quantize.evaluate import get_task, monte_carlo
m = load_model('build/quant/twomoon.pt').double()
task = get_task('twomoon')
ref = task.outputs(m)
spec = ChipSpec.load('build/quant/twomoon_limits_ft6.json')
rm = realized_model(spec)
out = {"chip": "twomoon, 6 bit, sky130 limits, STE fine-tuned 10 epochs", "L1": task.metric(rm)}
for sg, so in ((0.02, 0.01), (0.037, 0.06)):
    t0 = time.time()
    mc = monte_carlo(rm, task, 50, sg, so, seed=0, ref_outputs=ref)
    mc.pop("values")
    mc["seconds"] = time.time() - t0
    out[f"sg{sg}_so{so}"] = mc
    print(sg, so, mc, flush=True)
json.dump(out, open('build/quant/mc_char.json', 'w'), indent=1)
