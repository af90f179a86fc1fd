"""Fusion benchmark: our STAPLE against SimpleITK's STAPLEImageFilter (the anchor), in one
process on the same inputs.

Five raters are derived from a real expert lesion mask (../shared/data/open_ms_data,
lesion_masks_mni, 182 x 218 x 182 voxels): the mask itself, dilated and eroded by one voxel,
and two noisy copies (each voxel flipped with a rater's sensitivity and specificity). Both
implementations get the same boolean arrays; the bench prints their times, the ratio, the
Dice between their hard masks and the largest difference in rater parameters.

    .venv/bin/python bench/fusion.py [--mask patient03] [--repeat 3]

(Crowd mode and crowd-kit's methods beside ours follow with issue 20's crowd mode.)
"""

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.fusion.staple import staple  # noqa: E402
from backend.quality.metrics import dice  # noqa: E402

T = TypeVar("T")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "open_ms_data"


def raters_from(mask: NDArray[np.bool_], seed: int = 0) -> NDArray[np.bool_]:
    """Five raters [5, *shape] derived from an expert mask."""
    rng = np.random.default_rng(seed)
    cross = ndimage.generate_binary_structure(3, 1)

    def noisy(p: float, q: float) -> NDArray[np.bool_]:
        return np.where(mask, rng.random(mask.shape) < p, rng.random(mask.shape) > q)

    return np.array(
        [
            mask,
            ndimage.binary_dilation(mask, cross),
            ndimage.binary_erosion(mask, cross),
            noisy(0.8, 0.9995),
            noisy(0.9, 0.999),
        ]
    )


def best_of(repeat: int, run: Callable[[], T]) -> tuple[float, T]:
    """The fastest of ``repeat`` runs, and the last result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mask", default="patient03", help="a lesion_masks_mni case")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args()
    path = DATA / "lesion_masks_mni" / f"{args.mask}.nii.gz"
    if not path.exists():
        print(f"skipped: {path} not found (the open MS data is needed)")
        return 0
    mask = np.asarray(nib.load(path).dataobj) > 0.5
    votes = raters_from(mask)
    print(f"input: {args.mask}, {mask.shape} voxels, 5 raters, {int(mask.sum())} lesion voxels")

    def reference() -> tuple[NDArray[np.float64], list[float], list[float]]:
        staple_filter = sitk.STAPLEImageFilter()
        images = [sitk.GetImageFromArray(v.astype(np.uint8)) for v in votes]
        posterior = sitk.GetArrayFromImage(staple_filter.Execute(images))
        return posterior, list(staple_filter.GetSensitivity()), list(staple_filter.GetSpecificity())

    sitk_seconds, (sitk_w, sitk_p, sitk_q) = best_of(args.repeat, reference)
    ours_seconds, ours = best_of(args.repeat, lambda: staple(votes))
    hard_dice = dice(sitk_w >= 0.5, ours.posterior >= 0.5)
    rate_diff = max(
        np.abs(np.asarray(sitk_p) - ours.sensitivity).max(),
        np.abs(np.asarray(sitk_q) - ours.specificity).max(),
    )
    print(f"anchor: SimpleITK STAPLEImageFilter  {sitk_seconds * 1000:9.1f} ms")
    print(f"ours:   backend.fusion.staple        {ours_seconds * 1000:9.1f} ms")
    print(f"speed-up {sitk_seconds / ours_seconds:.1f}x (goal at least 30x)")
    print(f"hard masks: Dice {hard_dice:.6f} (must be >= 0.999)")
    print(f"rater parameters differ by at most {rate_diff:.2e} (must be <= 1e-3)")
    return 0 if hard_dice >= 0.999 and rate_diff <= 1e-3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
