"""Active learning against its baselines: learning curves of ``random``, ``random_fg``,
``entropy`` and ``bald_diverse`` with equal label budgets, over several seeds (issue 21).

Data: the demo generator's synthetic cases (``backend.imaging.synthetic``), prepared exactly
as the import prepares them; ``--cases`` of them form the pool of unlabelled axial slices
(the slices the import turns into tasks), ``--holdout`` more are the held-out cases every
round's model is evaluated on (Dice and MSSEG lesion-wise F1 from
``backend.quality.metrics``, through ``ml.train.evaluate``). A labelled slice gets its
reference mask (an oracle crowd: what the fusion would give in the best case).

Rounds: round 1 is the cold start (``random_fg`` on FLAIR-hyperintense candidates), shared by
every strategy for a seed, so the curves start from the same model. Each later round, every
strategy picks ``--budget`` more slices from the pool: ``entropy`` and ``bald_diverse`` from
Monte-Carlo dropout scores (T = 10) of the previous round's model (``ml.train.score_slices``,
the code ``ml.score_pool`` runs). Each round's model is trained from scratch for ``--steps``
steps (``bench_config``: the same training whatever the machine's load), with the seed.

Printed: per strategy and round, the mean held-out Dice and lesion F1 over seeds; the mean
over rounds 2.. (area under the learning curve) with each strategy's per-seed difference to
``random_fg``. Plotted to ``--png``; the table goes to bench/RESULTS.md.

    .venv/bin/python bench/active_learning.py [--seeds 0,1] [--rounds 5] [--budget 16]
"""

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch
from mlbench import (
    ROOT,
    BenchCase,
    bench_config,
    device_name,
    only_slices,
    synthetic_cases,
    write_section,
)

from backend.rounds.selection import Pool, select
from ml.train import evaluate, score_slices, train

STRATEGIES = ("random", "random_fg", "entropy", "bald_diverse")
SCORED = {"entropy", "bald_diverse"}


@dataclass
class Point:
    labels: int
    dice: float
    f1: float


def _pool(cases: list[BenchCase], labelled: list[set[int]]) -> tuple[Pool, list[tuple[int, int]]]:
    where = [(n, z) for n, c in enumerate(cases) for z in c.slices if z not in labelled[n]]
    pool = Pool(
        ids=np.arange(len(where), dtype=np.int64),
        cases=np.array([n for n, _ in where], dtype=np.int64),
        indices=np.array([z for _, z in where], dtype=np.int64),
        foreground=np.array([cases[n].candidates[z] for n, z in where]),
    )
    return pool, where


def _scores(model, cases, where, config, device) -> dict[str, np.ndarray]:
    found = {"entropy": np.zeros(len(where)), "bald": np.zeros(len(where))}
    for n, case in enumerate(cases):
        rows = [k for k, (m, _) in enumerate(where) if m == n]
        scored = score_slices(
            model, case.arrays, [(where[k][1], case.box) for k in rows], config, device
        )
        for k, s in zip(rows, scored, strict=True):
            found["entropy"][k], found["bald"][k] = s.entropy, s.bald
    return found


def _train_eval(cases, labelled, held, config, device):
    training = [only_slices(c.arrays, zs) for c, zs in zip(cases, labelled, strict=True) if zs]
    model = train(training, config, device).model
    scores = evaluate(model, [h.arrays for h in held], config, device)
    point = Point(
        sum(len(zs) for zs in labelled),
        float(np.mean([s.dice for s in scores])),
        float(np.mean([s.lesion_f1 for s in scores])),
    )
    return model, point


def _subset(pool: Pool, keep: np.ndarray) -> Pool:
    ids = np.arange(len(keep), dtype=np.int64)
    return Pool(ids, pool.cases[keep], pool.indices[keep], pool.foreground[keep])


def run_seed(
    cases, held, seed, rounds, budget, steps, pool_sample, device, log
) -> dict[str, list[Point]]:
    config = bench_config(steps, seed)
    empty: list[set[int]] = [set() for _ in cases]
    pool, where = _pool(cases, empty)
    first = select("cold_start", pool, budget, seed=seed)
    labelled0 = [set() for _ in cases]
    for k in first:
        n, z = where[k]
        labelled0[n].add(z)
    model0, point0 = _train_eval(cases, labelled0, held, config, device)
    log(f"seed {seed} round 1 (cold start, shared): {point0}")
    curves: dict[str, list[Point]] = {}
    for strategy in STRATEGIES:
        labelled = [set(s) for s in labelled0]
        model, curve = model0, [point0]
        for number in range(2, rounds + 1):
            pool, where = _pool(cases, labelled)
            if strategy in SCORED:
                # A seeded random subset of the pool is scored (a common economy of active
                # learning; the full pool's MC scoring would dominate the bench's time).
                rng = np.random.default_rng(seed * 1000 + number)
                keep = np.sort(rng.permutation(len(where))[:pool_sample])
                where = [where[k] for k in keep]
                pool, where = _subset(pool, keep), where
                scored = _scores(model, cases, where, config, device)
                pool = Pool(pool.ids, pool.cases, pool.indices, pool.foreground, scored)
            for k in select(strategy, pool, budget, seed=seed * 100 + number):
                n, z = where[k]
                labelled[n].add(z)
            model, point = _train_eval(cases, labelled, held, config, device)
            curve.append(point)
            log(f"seed {seed} {strategy} round {number}: {point}")
        curves[strategy] = curve
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--holdout", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--budget", type=int, default=10)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--pool-sample", type=int, default=150, help="slices scored per round")
    parser.add_argument("--png", default=str(ROOT / "bench" / "results" / "active_learning.png"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    began = time.perf_counter()
    everything = synthetic_cases(list(range(100, 100 + args.cases + args.holdout)))
    cases, held = everything[: args.cases], everything[args.cases :]
    pool_size = sum(len(c.slices) for c in cases)
    print(
        f"{len(cases)} pool cases ({pool_size} task slices), {len(held)} held out; "
        f"{args.rounds} rounds of {args.budget} slices; {args.steps} steps per model; "
        f"seeds {seeds}; {device_name(device)}",
        flush=True,
    )
    runs = [
        run_seed(
            cases,
            held,
            s,
            args.rounds,
            args.budget,
            args.steps,
            args.pool_sample,
            device,
            lambda m: print(f"  [{time.perf_counter() - began:6.0f} s] {m}", flush=True),
        )
        for s in seeds
    ]
    lines = [
        f"Active learning on synthetic cases ({len(cases)} pool cases, {pool_size} task slices; "
        f"{len(held)} held out), {args.rounds} rounds of {args.budget} slices, "
        f"{args.steps} training steps per model, {args.pool_sample} pool slices scored per "
        f"round (T = 10), seeds {seeds}; {device_name(device)}; "
        f"{time.perf_counter() - began:.0f} s.",
        "",
        "| strategy | "
        + " | ".join(f"round {r} Dice / F1" for r in range(1, args.rounds + 1))
        + " | mean Dice, rounds 2.. | vs random_fg per seed |",
        "|---" * (args.rounds + 3) + "|",
    ]
    area = {
        s: np.array([np.mean([p.dice for p in run[s][1:]]) for run in runs]) for s in STRATEGIES
    }
    for strategy in STRATEGIES:
        cells = []
        for r in range(args.rounds):
            dice = np.mean([run[strategy][r].dice for run in runs])
            f1 = np.mean([run[strategy][r].f1 for run in runs])
            cells.append(f"{dice:.3f} / {f1:.3f}")
        diff = area[strategy] - area["random_fg"]
        lines.append(
            f"| {strategy} | "
            + " | ".join(cells)
            + f" | {area[strategy].mean():.3f} | "
            + ", ".join(f"{d:+.3f}" for d in diff)
            + " |"
        )
    best = max(("entropy", "bald_diverse"), key=lambda s: area[s].mean())
    beats = bool(np.all(area[best] > area["random_fg"]))
    lines += [
        "",
        f"Active learning ({best}, the better of entropy and bald_diverse) "
        + ("beats" if beats else "does not beat")
        + f" random_fg on every seed: mean Dice over rounds 2.. {area[best].mean():.3f} vs "
        f"{area['random_fg'].mean():.3f} (random: {area['random'].mean():.3f}).",
    ]
    print("\n".join(lines))
    _plot(runs, args, seeds)
    write_section(
        "active-learning",
        "\n".join(lines) + f"\n\n![learning curves](results/{_png_name(args.png)})",
    )


def _png_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _plot(runs, args, seeds) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for strategy in STRATEGIES:
        labels = [p.labels for p in runs[0][strategy]]
        for axis, what in zip(axes, ("dice", "f1"), strict=True):
            values = np.array([[getattr(p, what) for p in run[strategy]] for run in runs])
            mean, sd = values.mean(axis=0), values.std(axis=0)
            axis.plot(labels, mean, marker="o", label=strategy)
            axis.fill_between(labels, mean - sd, mean + sd, alpha=0.15)
    axes[0].set_ylabel("held-out Dice")
    axes[1].set_ylabel("held-out lesion-wise F1")
    for axis in axes:
        axis.set_xlabel("labelled slices")
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle(f"Learning curves, mean ± SD over seeds {seeds}")
    figure.tight_layout()
    figure.savefig(args.png, dpi=120)
    print(f"Wrote {args.png}")


if __name__ == "__main__":
    main()
