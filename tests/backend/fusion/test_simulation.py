"""The novice simulator: each novice has the Dice asked for, errors are correlated as the
docstring says, the draw is seeded; and on a real expert mask five novices fused by crowd
STAPLE beat the best novice in Dice and majority vote in lesion-wise F1."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from numpy.typing import NDArray

from backend.fusion.crowd import Outline
from backend.fusion.simulation import NoviceModel, fuse_axial, gold_priors, novices
from backend.fusion.staple import majority_vote
from backend.quality.metrics import dice, lesion_detection


def _spheres(seed: int = 0) -> NDArray[np.bool_]:
    """A 64^3 volume with 30 balls of radius 1 to 5 voxels."""
    rng = np.random.default_rng(seed)
    grid = np.ogrid[:64, :64, :64]
    mask = np.zeros((64, 64, 64), dtype=bool)
    for _ in range(30):
        centre, radius = rng.integers(8, 56, size=3), rng.uniform(1.0, 5.0)
        mask |= sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2
    return mask


def test_novices_have_the_dice_asked_for_and_correlated_misses() -> None:
    expert = _spheres()
    crowd = novices(expert, seed=3)
    own = [dice(expert, m) for m in crowd.masks]
    assert own == pytest.approx(list(NoviceModel().target_dice or ()), abs=0.01)
    # Seeded: the same draw again; another seed, another crowd.
    assert np.array_equal(novices(expert, seed=3).masks, crowd.masks)
    assert not np.array_equal(novices(expert, seed=4).masks, crowd.masks)
    # Misses are shared: the lesions missed most are the hard ones (small or faint), and
    # the small lesions are missed more often than the large ones.
    misses = (~crowd.found).sum(axis=0)
    assert np.corrcoef(misses, crowd.difficulty)[0, 1] > 0.5
    small = crowd.lesion_volumes < np.median(crowd.lesion_volumes)
    assert misses[small].mean() > misses[~small].mean()
    # Without a target the outlines are drawn as modelled; an empty mask is refused.
    loose = novices(expert, NoviceModel(target_dice=None), seed=3)
    assert loose.masks.shape == crowd.masks.shape
    with pytest.raises(ValueError, match="empty"):
        novices(np.zeros_like(expert))


def test_five_novices_fused_beat_the_best_novice_and_majority_vote_on_a_real_mask(
    open_ms_data: Path,
) -> None:
    expert = np.asarray(nib.load(open_ms_data / "lesion_masks_mni" / "patient03.nii.gz").dataobj)
    expert = expert > 0.5
    crowd = novices(expert, seed=1)
    own = [dice(expert, m) for m in crowd.masks]
    assert min(own) >= 0.55
    assert max(own) <= 0.75
    # Volunteers label axial slices: fused with rates pooled over all, a tenth of the slices
    # gold (they chose the majority's outline here; STAPLE's own loses 0.04 Dice).
    done = fuse_axial(crowd.masks, expert)
    assert done.outline is Outline.majority
    fused = done.fused
    voted = majority_vote(crowd.masks)
    # Issue 20's acceptance on this mask (bench/novices.py prints it for seven masks).
    assert dice(expert, fused) >= 0.85
    assert dice(expert, fused) > max(own) + 0.1
    assert dice(expert, fused) >= dice(expert, voted) - 0.01
    assert lesion_detection(expert, fused).f1 > lesion_detection(expert, voted).f1 + 0.05
    # With the priors the product builds from gold (specificity over the whole brain), moved
    # onto the near-vote scale: STAPLE's posterior as without priors; taken as they are, it
    # lost 0.11 Dice (bench/fusion_priors.py).
    flair = open_ms_data / "cross_sectional_mni" / "patient07" / "FLAIR.nii.gz"
    brain = np.asarray(nib.load(flair).dataobj) > 0
    priors = gold_priors(crowd.masks, expert, brain)
    assert all(p.specificity.mean > 0.99 for p in priors.values())
    scaled = fuse_axial(crowd.masks, expert, priors=priors, brain=brain)
    assert dice(expert, scaled.posterior) >= dice(expert, done.posterior) - 0.005
    unscaled = fuse_axial(crowd.masks, expert, priors=priors, brain=brain, rescale_priors=False)
    assert dice(expert, unscaled.posterior) < dice(expert, done.posterior) - 0.05
