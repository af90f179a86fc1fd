"""Choosing the slices for the next round: strategies registered by name, pure numpy.

Every strategy takes the pool of unlabelled slices (``Pool``), a budget and a seeded random
generator, and returns the chosen slice ids in priority order (first = most wanted). The
round then sets the tasks' priorities from that order (``priorities``).

- ``random``: uniform, the plain baseline.
- ``random_fg``: random, but a slice's chance grows with its share of FLAIR-hyperintense
  candidate pixels, so slices that may hold lesions come up far more often. Per nnActive
  (Lüth et al. 2025), plain active learning often fails to beat this baseline in 3-D
  lesion segmentation; our learning curves are measured against it.
- ``entropy``: the highest predictive entropy first.
- ``bald``: the highest BALD (mutual information) first.
- ``bald_diverse``: BALD, greedily, with at most ``case_cap`` slices of one case and no two
  chosen slices of a case within ``gap`` slices of each other (neighbouring slices look
  alike; a round spent on one lesion's ten slices teaches the model one lesion).
- ``cold_start``: the first round, without a model: ``random_fg``.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Pool:
    """The unlabelled slices: per slice its id, case, index along the axis, share of
    FLAIR-hyperintense candidate pixels, and (with a model) its uncertainty scores."""

    ids: NDArray[np.int64]
    cases: NDArray[np.int64]
    indices: NDArray[np.int64]
    foreground: NDArray[np.float64]  # 0..1
    scores: dict[str, NDArray[np.float64]] = field(default_factory=dict)  # "entropy", "bald"

    def __post_init__(self) -> None:
        n = len(self.ids)
        arrays = [self.cases, self.indices, self.foreground, *self.scores.values()]
        if any(len(a) != n for a in arrays):
            raise ValueError("every array of the pool needs one value per slice")
        if len(np.unique(self.ids)) != n:
            raise ValueError("slice ids must be unique")


Strategy = Callable[[Pool, int, np.random.Generator], list[int]]
STRATEGIES: dict[str, Strategy] = {}


def strategy(name: str) -> Callable[[Strategy], Strategy]:
    def register(function: Strategy) -> Strategy:
        STRATEGIES[name] = function
        return function

    return register


def select(name: str, pool: Pool, budget: int, seed: int = 0) -> list[int]:
    """The ids strategy ``name`` chooses, at most ``budget`` of them, most wanted first."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
    if budget < 0:
        raise ValueError("the budget cannot be negative")
    chosen = STRATEGIES[name](pool, min(budget, len(pool.ids)), np.random.default_rng(seed))
    return [int(i) for i in chosen]


def priorities(chosen: list[int], base: float = 1.0) -> dict[int, float]:
    """Task priorities for the chosen slice ids: ``base + 1`` for the first down to just above
    ``base`` for the last, so the queue (highest priority first) serves them in order."""
    n = len(chosen)
    return {slice_id: base + (n - rank) / n for rank, slice_id in enumerate(chosen)}


def _score(pool: Pool, name: str) -> NDArray[np.float64]:
    if name not in pool.scores:
        raise ValueError(f"the pool has no {name!r} scores: score it with a model first")
    return pool.scores[name]


def _top(values: NDArray[np.float64], budget: int, rng: np.random.Generator) -> list[int]:
    """Indices of the ``budget`` highest values; ties in random order."""
    order = np.lexsort((rng.random(len(values)), -values))
    return [int(i) for i in order[:budget]]


@strategy("random")
def _random(pool: Pool, budget: int, rng: np.random.Generator) -> list[int]:
    return [int(pool.ids[i]) for i in rng.permutation(len(pool.ids))[:budget]]


# random_fg: a slice's weight is its candidate share over the pool's 95th percentile of shares
# (capped at 1), plus this floor, which keeps slices without candidates possible (a model
# must see them too) at a twentieth of the chance of the most candidate-rich ones.
FG_FLOOR = 0.05
FG_SCALE_PERCENTILE = 95


@strategy("random_fg")
def _random_fg(pool: Pool, budget: int, rng: np.random.Generator) -> list[int]:
    # Shares are small: a lesion-rich slice has about 1 % of its brain hyperintense. They are
    # scaled to the pool before the floor is added; a floor of 0.01 added to the raw shares
    # (0.001 to 0.016 on the demo's slices) drowned them, sampling was nearly uniform, and the
    # 4-slice cold start drew slices with 0 and 6 lesion pixels on 2 seeds of 3.
    shares = np.clip(pool.foreground, 0.0, 1.0)
    scale = float(np.percentile(shares, FG_SCALE_PERCENTILE)) if len(shares) else 0.0
    weight = (np.clip(shares / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(shares)) + FG_FLOOR
    # Weighted sampling without replacement (Efraimidis-Spirakis keys).
    keys = rng.random(len(weight)) ** (1.0 / weight)
    order = np.argsort(-keys)[:budget]
    return [int(pool.ids[i]) for i in order]


@strategy("cold_start")
def _cold_start(pool: Pool, budget: int, rng: np.random.Generator) -> list[int]:
    return _random_fg(pool, budget, rng)


@strategy("entropy")
def _entropy(pool: Pool, budget: int, rng: np.random.Generator) -> list[int]:
    return [int(pool.ids[i]) for i in _top(_score(pool, "entropy"), budget, rng)]


@strategy("bald")
def _bald(pool: Pool, budget: int, rng: np.random.Generator) -> list[int]:
    return [int(pool.ids[i]) for i in _top(_score(pool, "bald"), budget, rng)]


# bald_diverse: slices of a case between two chosen ones, and a case's share of a round.
GAP = 2
CASE_SHARE = 0.34


@strategy("bald_diverse")
def _bald_diverse(pool: Pool, budget: int, rng: np.random.Generator) -> list[int]:
    bald = _score(pool, "bald")
    cases = np.unique(pool.cases)
    # At most a third of the round from one case, unless there are too few cases to fill it.
    cap = max(math.ceil(budget * CASE_SHARE), math.ceil(budget / len(cases)))
    taken: dict[int, list[int]] = {}
    chosen: list[int] = []
    for i in _top(bald, len(bald), rng):
        case, index = int(pool.cases[i]), int(pool.indices[i])
        near = taken.setdefault(case, [])
        if len(near) >= cap or any(abs(index - j) <= GAP for j in near):
            continue
        near.append(index)
        chosen.append(i)
        if len(chosen) == budget:
            break
    if len(chosen) < budget:  # the rules left too few: fill up by BALD
        used = set(chosen)
        rest = [i for i in _top(bald, len(bald), rng) if i not in used]
        chosen += rest[: budget - len(chosen)]
    return [int(pool.ids[i]) for i in chosen]
