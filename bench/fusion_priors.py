"""Fusion as the product runs it: crowd STAPLE with the gold priors ``quality.service.
rater_priors`` builds, on the novice simulation of bench/novices.py (issue 33).

For each expert mask (lesion_masks_mni, 182 x 218 x 182 voxels of 1 mm) five simulated
novices (``backend.fusion.simulation.novices``, seed 1) label the axial slices anyone marked;
every 10th of those is gold. Each novice's priors are built the way the product builds them
(``simulation.gold_priors``): their gold answers scored against the expert inside the brain
(``quality.scoring.score``: true negatives over the whole brain, here the MNI brain of
cross_sectional_mni/patient07's skull-stripped FLAIR), the totals' Beta posteriors
(``quality.reliability.reliability``). Printed per mask, Dice and MSSEG lesion-wise F1
(sensitivity, PPV) against the expert of:

- crowd mode with product priors (what ``fusion.service.fuse_project`` does: specificity
  priors moved onto the near-vote scale, ``crowd.near_vote_specificity``), both what is stored
  (the outline rule gold chose, ``outlines.outlined``: STAPLE's posterior or each lesion outlined
  by the raters who found it, fragments joined to their lesions) and STAPLE's posterior alone;
- the same priors taken as they are, on the whole-brain scale (the product before issue 33);
- crowd mode without priors;
- the anchors: plain STAPLE slice by slice (whole image, as SimpleITK) and majority vote.

    .venv/bin/python bench/fusion_priors.py [--masks patient01,patient03] [--seed 1]

Ends with a Markdown table of every mask and the means, and the outline rule gold chose.
"""

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from novices import DATA, DEFAULT_MASKS, by_slices, report  # noqa: E402

from backend.fusion.simulation import fuse_axial, gold_priors, novices  # noqa: E402
from backend.fusion.staple import majority_vote, staple  # noqa: E402

BRAIN = DATA / "cross_sectional_mni" / "patient07" / "FLAIR.nii.gz"
STORED = "crowd, product priors (stored)"
COLUMNS = (
    STORED,
    "crowd, product priors (posterior)",
    "crowd, priors on whole-brain scale (stored)",
    "crowd, no priors (stored)",
    "plain STAPLE",
    "majority vote",
)


def _anchors() -> dict[str, Callable[[list[NDArray[np.bool_]]], list[NDArray[np.bool_]]]]:
    return {
        "plain STAPLE": lambda slices: [staple(v).posterior >= 0.5 for v in slices],
        "majority vote": lambda slices: [majority_vote(v) for v in slices],
    }


def bench_mask(
    expert: NDArray[np.bool_], brain: NDArray[np.bool_], seed: int, chosen: list[str]
) -> dict[str, tuple[float, float]]:
    """Every method's (Dice, lesion-wise F1) on one expert mask, printed as they come;
    ``chosen[0]`` set to the outline rule gold chose for the stored label."""
    masks = novices(expert, seed=seed).masks
    priors = gold_priors(masks, expert, brain)
    for k, prior in priors.items():
        print(
            f"  novice {k}: gold sensitivity {prior.sensitivity.mean:.3f}, "
            f"whole-brain specificity {prior.specificity.mean:.5f}"
        )
    scores: dict[str, tuple[float, float]] = {}
    start = time.perf_counter()
    done = fuse_axial(masks, expert, priors=priors, brain=brain)
    seconds = time.perf_counter() - start
    report(scores, STORED, expert, done.fused, seconds)
    print(
        f"    (gold on every 10th slice chose the {done.outline.value} outline: "
        + ", ".join(f"{rule} Dice {score:.3f}" for rule, score in done.scores.items())
        + ")"
    )
    chosen[0] = done.outline.value
    report(scores, COLUMNS[1], expert, done.posterior, seconds)
    runs: dict[str, Callable[[], NDArray[np.bool_]]] = {
        COLUMNS[2]: lambda: (
            fuse_axial(masks, expert, priors=priors, brain=brain, rescale_priors=False).fused
        ),
        COLUMNS[3]: lambda: fuse_axial(masks, expert).fused,
        **{m: partial(by_slices, masks, fuse) for m, fuse in _anchors().items()},
    }
    for method, run in runs.items():
        start = time.perf_counter()
        hard = run()
        report(scores, method, expert, hard, time.perf_counter() - start)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--masks", default=DEFAULT_MASKS, help="comma-separated mask names")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    brain = np.asarray(nib.Nifti1Image.from_filename(BRAIN).dataobj) > 0
    table: dict[str, dict[str, tuple[float, float]]] = {}
    rules: dict[str, str] = {}
    for name in args.masks.split(","):
        path = DATA / "lesion_masks_mni" / f"{name}.nii.gz"
        if not path.exists():
            print(f"skipped {name}: {path} not found (the open MS data is needed)")
            continue
        expert = np.asarray(nib.Nifti1Image.from_filename(path).dataobj) > 0.5
        print(f"\n{name}: {int(expert.sum())} voxels")
        chosen = [""]
        table[name] = bench_mask(expert, brain, args.seed, chosen)
        rules[name] = chosen[0]
    if not table:
        return 1
    print("\n| mask | " + " | ".join(COLUMNS) + " | outline gold chose |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for name, scores in table.items():
        cells = [f"{scores[c][0]:.3f} / {scores[c][1]:.3f}" for c in COLUMNS]
        print(f"| {name} | " + " | ".join(cells) + f" | {rules[name]} |")
    means = [np.mean([s[c] for s in table.values()], axis=0) for c in COLUMNS]
    print("| mean | " + " | ".join(f"{d:.3f} / {f:.3f}" for d, f in means) + " | |")
    plain = [name for name, s in table.items() if s["plain STAPLE"][1] > s[STORED][1]]
    print(
        f"plain STAPLE has the higher lesion-wise F1 than the stored label on {len(plain)} of "
        f"{len(table)} masks" + (f" ({', '.join(plain)})" if plain else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
