"""Test helper: how far a three-parameter cell surrogate is from the characterized surfaces."""
import numpy as np
import torch


def worst_per_combo(sur, combos, vs, vd, i_d):
    """Max |sur.current_hw - measured| (A) per characterized (cs, cd, o) combo over the (vd, vs) grid;
    i_d[j] is combo j's measured surface in (vd, vs) layout."""
    VS, VD = (torch.tensor(a) for a in np.meshgrid(vs, vd))
    return np.array([float(np.max(np.abs(sur.current_hw(torch.tensor(cs), torch.tensor(cd), torch.tensor(o), VS,
                                                         VD).numpy() - i_d[j])))
                     for j, (cs, cd, o) in enumerate(combos)])
