"""2-D toy data sets (generation) and the potential functions of density matching.

Definitions follow the official KirchhoffNet test benches (ARCHITECTURE §5):
* twomoon    sklearn make_moons(noise=0.1), unscaled
* circle     sklearn make_circles(noise=0.06, factor=0.5)
* swissroll  sklearn make_swiss_roll(noise=1.0), columns (0, 2) divided by 5
* 8gaussians centres at radius 4 on 8 equally spaced angles (multiples of 45 deg), std 0.5, all divided by 1.414
* 2spirals   FFJORD toy generator: r = sqrt(u) * 540 deg (in rad), arm (-cos r * r, sin r * r) + U(0, 0.5) jitter,
             the arm and its point reflection, divided by 3, plus N(0, 0.1^2) noise
* pinwheel   ALOE toy generator: 5 arms, radial std 0.3, tangential std 0.1, rate 0.25, times 2
Every generator takes (n, seed) and is deterministic for a given seed.

Potentials (Rezende & Mohamed 2015, Table 1): target density p(z) proportional to exp(-U(z)).
"""
from __future__ import annotations

import math
from typing import Callable, Dict

import numpy as np
import torch


def _rng(seed) -> np.random.RandomState:
    return np.random.RandomState(int(seed) % (2 ** 32))


def twomoon(n: int, seed: int) -> np.ndarray:
    from sklearn.datasets import make_moons
    return make_moons(n_samples=n, noise=0.1, random_state=_rng(seed))[0]


def circle(n: int, seed: int) -> np.ndarray:
    from sklearn.datasets import make_circles
    return make_circles(n_samples=n, noise=0.06, factor=0.5, random_state=_rng(seed))[0]


def swissroll(n: int, seed: int) -> np.ndarray:
    from sklearn.datasets import make_swiss_roll
    pts = make_swiss_roll(n_samples=n, noise=1.0, random_state=_rng(seed))[0]
    return pts[:, [0, 2]] / 5.0


def eight_gaussians(n: int, seed: int) -> np.ndarray:
    rng = _rng(seed)
    ang = np.arange(8) * (np.pi / 4)
    centres = 4.0 * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    pts = rng.randn(n, 2) * 0.5 + centres[rng.randint(0, 8, size=n)]
    return pts / 1.414


def two_spirals(n: int, seed: int) -> np.ndarray:
    rng = _rng(seed)
    h = n // 2
    r = np.sqrt(rng.rand(h, 1)) * (540.0 * 2 * np.pi / 360.0)
    ax = -np.cos(r) * r + rng.rand(h, 1) * 0.5
    ay = np.sin(r) * r + rng.rand(h, 1) * 0.5
    arm = np.hstack([ax, ay])
    pts = np.vstack([arm, -arm]) / 3.0
    pts = pts + rng.randn(*pts.shape) * 0.1
    if pts.shape[0] < n:                                   # odd n: one more point from the first arm
        pts = np.vstack([pts, pts[:1]])
    return pts


def pinwheel(n: int, seed: int) -> np.ndarray:
    rng = _rng(seed)
    k, radial, tangential, rate = 5, 0.3, 0.1, 0.25
    labels = rng.randint(0, k, size=n)
    feats = rng.randn(n, 2) * np.array([radial, tangential])
    feats[:, 0] += 1.0
    ang = 2 * np.pi * labels / k + rate * np.exp(feats[:, 0])
    c, s = np.cos(ang), np.sin(ang)
    # rotate each feature vector by its angle (row vector times [[c, -s], [s, c]])
    x = feats[:, 0] * c + feats[:, 1] * s
    y = -feats[:, 0] * s + feats[:, 1] * c
    return 2.0 * np.stack([x, y], axis=1)


TOY: Dict[str, Callable[[int, int], np.ndarray]] = {
    "twomoon": twomoon, "8gaussians": eight_gaussians, "2spirals": two_spirals, "circle": circle,
    "pinwheel": pinwheel, "swissroll": swissroll,
}


def sample_toy(name: str, n: int, seed: int) -> torch.Tensor:
    if name not in TOY:
        raise ValueError(f"toy data set {name!r} unknown; known: {', '.join(TOY)}")
    return torch.tensor(np.asarray(TOY[name](int(n), seed), dtype=np.float64), dtype=torch.float32)


# ---- density matching ------------------------------------------------------------------------------------
def u1(z: torch.Tensor) -> torch.Tensor:
    z1 = z[:, 0]
    r = torch.linalg.norm(z, dim=1)
    a = torch.exp(-0.5 * ((z1 - 2) / 0.6) ** 2)
    b = torch.exp(-0.5 * ((z1 + 2) / 0.6) ** 2)
    return 0.5 * ((r - 2) / 0.4) ** 2 - torch.log(a + b)


def u2_raw(z: torch.Tensor) -> torch.Tensor:
    """U2 as published: periodic in z1 and unbounded in extent, so exp(-U2) is not normalizable."""
    w1 = torch.sin(2 * math.pi * z[:, 0] / 4)
    return 0.5 * ((z[:, 1] - w1) / 0.4) ** 2


def u2(z: torch.Tensor) -> torch.Tensor:
    """U2 confined to the plotted window |z1| <= 4 by a steep quadratic wall (width 0.1) outside it: the
    published U2 is not normalizable, and reverse-KL training on it just spreads the flow along z1 forever
    (measured: 1.4 % of the mass left inside [-4, 4]^2). Inside the window it equals U2 exactly."""
    wall = torch.relu(z[:, 0].abs() - 4.0) / 0.1
    return u2_raw(z) + 0.5 * wall ** 2


POTENTIALS = {"u1": u1, "u2": u2}


def log_partition(u: Callable[[torch.Tensor], torch.Tensor], lim: float = 6.0, n: int = 1201) -> float:
    """log Z = log of the integral of exp(-U) over [-lim, lim]^2 (trapezoid grid, float64). U2 is not
    normalizable in z1 (it is periodic and unbounded in extent); like the paper's plots, both targets are
    restricted to the box, and KL figures are relative to the box-normalized target."""
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(g, g, indexing="ij"), dim=-1).reshape(-1, 2)
    f = torch.exp(-u(zz)).reshape(n, n)
    val = torch.trapezoid(torch.trapezoid(f, g, dim=1), g, dim=0)
    return float(torch.log(val))
