"""Adaptive redundancy against fixed redundancy on a simulated crowd (issue 20's acceptance:
fewer labels per retired slice than the fixed redundancy that reaches the same fused Dice).

Slices of 128 x 128 pixels with 1 to 5 round lesions; a third are hard (their lesions are
faint: every volunteer's chance to miss one rises by 0.4, so misses are shared). A pool of 40
volunteers, each with their own miss rate, outline shift and false-blob rate; every slice
can get answers from 7 different volunteers, drawn at random.

As on the platform: a project-wide crowd STAPLE over the first ``min_labels`` answers of
every slice gives each volunteer's rates; then each slice is fused with those rates
(``fuse_task``) after ``min_labels`` answers and gets one more while its mean posterior
entropy over marked pixels is above ``max_uncertainty``, up to ``max_labels`` (then it would
go to the experts). Fixed redundancy k fuses the first k answers of every slice.

    .venv/bin/python bench/redundancy.py [--slices 3000] [--seed 0]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.fusion.crowd import CrowdSlice, crowd_staple  # noqa: E402
from backend.fusion.redundancy import Decision, RedundancyPolicy, decide, uncertainty  # noqa: E402
from backend.fusion.staple import posterior_from_rates  # noqa: E402
from backend.quality.metrics import dice  # noqa: E402

SIDE, POOL, MOST = 128, 40, 7


def simulate(
    count: int, seed: int
) -> tuple[list[NDArray[np.bool_]], list[list[int]], list[NDArray[np.bool_]]]:
    """Truths, and per slice 7 volunteers with their masks [7, H, W]."""
    rng = np.random.default_rng(seed)
    miss = rng.uniform(0.05, 0.3, POOL)
    shift = rng.integers(-1, 2, POOL)
    blobs = rng.uniform(0.0, 0.8, POOL)
    yy, xx = np.ogrid[:SIDE, :SIDE]
    truths, raters, answers = [], [], []
    for n in range(count):
        hard = n % 3 == 0
        lesions = [
            (int(rng.integers(15, SIDE - 15)), int(rng.integers(15, SIDE - 15)), int(r))
            for r in rng.integers(2, 7, size=rng.integers(1, 6))
        ]
        truths.append(
            np.any([(yy - y) ** 2 + (xx - x) ** 2 <= r * r for y, x, r in lesions], axis=0)
        )
        who = rng.choice(POOL, size=MOST, replace=False)
        votes = np.zeros((MOST, SIDE, SIDE), dtype=bool)
        for k, v in enumerate(who):
            drawn = [(y, x, r) for y, x, r in lesions if rng.random() >= miss[v] + 0.4 * hard]
            for _ in range(rng.poisson(blobs[v])):
                drawn.append((*rng.integers(10, SIDE - 10, size=2), int(rng.integers(2, 4))))
            for y, x, r in drawn:
                votes[k] |= (yy - y) ** 2 + (xx - x) ** 2 <= max(1, r + shift[v]) ** 2
        raters.append([int(v) for v in who])
        answers.append(votes)
    return truths, raters, answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    policy = RedundancyPolicy()  # the projects' defaults
    truths, raters, answers = simulate(args.slices, args.seed)
    first = policy.min_labels
    fit = crowd_staple(
        [CrowdSlice(r[:first], a[:first]) for r, a in zip(raters, answers, strict=True)]
    )

    def fused(n: int, k: int) -> NDArray[np.float64]:
        p = [fit.sensitivity.get(r, 0.8) for r in raters[n][:k]]
        q = [fit.specificity.get(r, 0.99) for r in raters[n][:k]]
        return posterior_from_rates(answers[n][:k], p, q, fit.prior)

    used, adaptive, escalated = [], [], 0
    for n in range(args.slices):
        k = first
        while True:
            posterior = fused(n, k)
            decision = decide(k, uncertainty(posterior, answers[n][:k].any(axis=0)), policy)
            if decision is not Decision.extend:
                break
            k += 1
        escalated += decision is Decision.escalate
        if decision is Decision.retire:
            used.append(k)
        adaptive.append(dice(truths[n], posterior >= 0.5))
    target = float(np.mean(adaptive))
    print(
        f"{args.slices} slices, a third hard; volunteers' rates from crowd STAPLE over the "
        f"first {first} answers of every slice"
    )
    overall = (sum(used) + escalated * policy.max_labels) / args.slices
    print(
        f"adaptive ({policy.min_labels} to {policy.max_labels} labels, "
        f"{policy.max_entropy} bits): {np.mean(used):.2f} labels per retired slice "
        f"({len(used)} retired, {escalated} to the experts with {policy.max_labels} each: "
        f"{overall:.2f} per slice overall), mean fused Dice {target:.4f}"
    )
    reached = None
    for k in range(first, MOST + 1):
        score = float(np.mean([dice(truths[n], fused(n, k) >= 0.5) for n in range(args.slices)]))
        print(f"fixed redundancy {k}: mean fused Dice {score:.4f}")
        if reached is None and score >= target:
            reached = k
    if reached is None:
        print(f"no fixed redundancy up to {MOST} reaches the adaptive Dice")
        return 0
    print(
        f"the smallest fixed redundancy reaching the adaptive Dice is {reached} labels per "
        f"slice; adaptive used {np.mean(used):.2f} per retired slice and {overall:.2f} per "
        f"slice overall ({overall / reached:.0%} of it)"
    )
    return 0 if np.mean(used) < reached and overall < reached else 1


if __name__ == "__main__":
    raise SystemExit(main())
