"""Does the qualification test tell good raters from poor ones? Simulated raters
(``tests/backend/quality/simulated.py``: a spread of true Dice from about 0.2 to 0.98, plus
two spammers) take the product's test (``tutorials.qualification``: its composition, its draw
of fresh slices per attempt, its default pass marks) many times each, on a pool of tutorial
slices cut from real expert lesion masks (``../shared/data/open_ms_data/lesion_masks_mni``;
the demo generator's masks when absent): lesion slices of every load, empty slices, and mimic
slices (no lesion; a rater's false lesions land anywhere, mimics included).

Prints, per profile, its true Dice (pooled over half the lesion slices, never in a test) and
the share of attempts passed, then the confusion table of the acceptance rule: raters with
true Dice >= 0.6 should pass, below 0.4 and spammers should fail.

    .venv/bin/python bench/qualification.py [--attempts 40] [--synthetic]
"""

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.quality import metrics  # noqa: E402
from backend.tutorials.material import load_of  # noqa: E402
from backend.tutorials.models import MaterialKind, TutorialSlice  # noqa: E402
from backend.tutorials.qualification import draw  # noqa: E402
from backend.tutorials.scoring import Limits, judge, score_item  # noqa: E402
from tests.backend.quality.simulated import (  # noqa: E402
    PROFILES,
    SPAMMERS,
    Profile,
    answer,
    brain_of,
    gold_slices,
)

OPEN_MS_DATA = REPO.parent / "shared" / "data" / "open_ms_data"


@dataclass(frozen=True)
class Pool:
    """Tutorial slices (the catalogue rows) and their reference masks by slice id."""

    slices: list[TutorialSlice]
    masks: dict[int, NDArray[np.bool_]]
    held_out: list[NDArray[np.bool_]]  # lesion slices for the true Dice, never in a test


def synthetic_masks(count: int, seed: int) -> list[NDArray[np.bool_]]:
    """Axial lesion slices of the demo generator's cases (when the real masks are absent)."""
    from backend.imaging.synthetic import synthesize_case

    found: list[NDArray[np.bool_]] = []
    case_seed = seed
    while len(found) < count:
        mask = synthesize_case(case_seed, lesion_count=20).lesion_mask.astype(bool)
        for z in np.flatnonzero(mask.sum(axis=(0, 1)) >= 15):
            found.append(mask[10:172, 12:206, z])
        case_seed += 1
    order = np.random.default_rng(seed).permutation(len(found))
    return [found[i] for i in order[:count]]


def build_pool(lesions: Sequence[NDArray[np.bool_]], clean: int, held_out: int) -> Pool:
    """The first ``held_out`` lesion slices measure true Dice; the rest, with ``clean`` empty
    and as many mimic slices, are the tutorial pool."""
    rows: list[TutorialSlice] = []
    masks: dict[int, NDArray[np.bool_]] = {}
    for n, mask in enumerate(lesions[held_out:]):
        rows.append(
            TutorialSlice(
                slice_id=n, case_id=1, kind=MaterialKind.lesion, load=load_of(int(mask.sum()))
            )
        )
        masks[n] = mask
    shape = lesions[0].shape
    mimics = ("perivascular_space", "choroid_plexus", "periventricular_cap", "flow_artefact")
    for k in range(2 * clean):
        slice_id = 10_000 + k
        kind = MaterialKind.empty if k < clean else MaterialKind.mimic
        mimic = None if kind is MaterialKind.empty else mimics[k % len(mimics)]
        rows.append(TutorialSlice(slice_id=slice_id, case_id=1, kind=kind, mimic=mimic))
        masks[slice_id] = np.zeros(shape, dtype=bool)
    return Pool(rows, masks, list(lesions[:held_out]))


def true_dice(profile: Profile, pool: Pool, seed: int) -> float:
    """Pooled Dice over the held-out lesion slices (the rater's quality on real work)."""
    rng = np.random.default_rng(seed)
    tp = fp = fn = 0
    for gold in pool.held_out:
        c = metrics.confusion(gold, answer(gold, brain_of(gold), profile, rng))
        tp, fp, fn = tp + c.tp, fp + c.fp, fn + c.fn
    return 2 * tp / (2 * tp + fp + fn)


def pass_rate(profile: Profile, pool: Pool, attempts: int, seed: int, items: int = 10) -> float:
    """The share of ``attempts`` the rater passes, each drawn as the product draws a retry
    (slices of earlier attempts last)."""
    rng = np.random.default_rng(seed)
    picker = random.Random(seed)
    seen: set[int] = set()
    passed = 0
    for _ in range(attempts):
        chosen = draw(pool.slices, seen, items, picker)
        seen |= {s.slice_id for s in chosen}
        scores = []
        for row in chosen:
            reference = pool.masks[row.slice_id]
            brain = brain_of(reference)
            painted = answer(reference, brain, profile, rng)
            scores.append(score_item(row.kind, row.mimic, reference, painted, brain))
        passed += judge(scores, Limits()).passed
    return passed / attempts


@dataclass(frozen=True)
class Outcome:
    name: str
    dice: float
    passed: float
    spammer: bool

    @property
    def should_pass(self) -> bool | None:
        """The acceptance rule: pass at Dice >= 0.6, fail below 0.4 or as a spammer."""
        if self.spammer or self.dice < 0.4:
            return False
        return True if self.dice >= 0.6 else None


def simulate(pool: Pool, attempts: int) -> list[Outcome]:
    outcomes = []
    everyone = [(n, p, False) for n, p in PROFILES.items()]
    everyone += [(n, p, True) for n, p in SPAMMERS.items()]
    for k, (name, profile, spammer) in enumerate(everyone):
        dice = true_dice(profile, pool, seed=100 + k)
        outcomes.append(
            Outcome(name, dice, pass_rate(profile, pool, attempts, seed=200 + k), spammer)
        )
    return outcomes


def lesion_masks(synthetic: bool, count: int) -> tuple[list[NDArray[np.bool_]], str]:
    if not synthetic and (OPEN_MS_DATA / "lesion_masks_mni").is_dir():
        return gold_slices(OPEN_MS_DATA, count=count, seed=7), "real expert masks"
    return synthetic_masks(count, seed=7), "the demo generator's masks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=40)
    parser.add_argument("--synthetic", action="store_true", help="use generated masks")
    args = parser.parse_args()
    masks, source = lesion_masks(args.synthetic, 300)
    pool = build_pool(masks, clean=30, held_out=len(masks) // 2)
    print(
        f"pool: {len(pool.slices) - 60} lesion slices ({source}), 30 empty, 30 mimic; "
        f"true Dice over {len(pool.held_out)} other lesion slices; "
        f"{args.attempts} attempts per profile; default pass marks {Limits()}"
    )
    outcomes = simulate(pool, args.attempts)
    print(f"{'profile':<20} {'true Dice':>9} {'passed':>7}  expected")
    for o in outcomes:
        expected = {True: "pass", False: "fail", None: "either"}[o.should_pass]
        print(f"{o.name:<20} {o.dice:9.2f} {o.passed:7.0%}  {expected}")
    good = [o for o in outcomes if o.should_pass is True]
    bad = [o for o in outcomes if o.should_pass is False]
    tp = sum(o.passed for o in good) * args.attempts
    fn = len(good) * args.attempts - tp
    fp = sum(o.passed for o in bad) * args.attempts
    tn = len(bad) * args.attempts - fp
    print("confusion over attempts (rows: should, columns: did)")
    print(f"  should pass: passed {tp:.0f}, failed {fn:.0f}")
    print(f"  should fail: passed {fp:.0f}, failed {tn:.0f}")
    print(
        f"pass rate of raters with Dice >= 0.6: {min((o.passed for o in good), default=1):.0%} "
        f"at worst; of raters below 0.4 and spammers: {max((o.passed for o in bad), default=0):.0%}"
        " at worst"
    )


if __name__ == "__main__":
    main()
