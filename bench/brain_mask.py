"""Brain extraction on raw clinical scans against the data providers' brain mask.

open_ms_data's clinical_raw/patient01 comes with a brain mask in a common space
(``brainmask_common_space.nii.gz``); resampled onto each study's FLAIR grid through the inverse
of ``*_FLAIR_to_common_space.tfm`` (nearest neighbour) it is the reference. Per study, Dice
against it of:

- the product's choice: deepbet on the FLAIR (``ml.brain.brain_mask``, what
  ``mscrowd-ml brain-mask`` writes);
- deepbet on the T1W, brought onto the FLAIR grid with the study's own transform;
- the anchor: the product's fallback head mask before this issue (``preprocess.brain_mask``:
  Otsu, largest component, holes filled), which keeps skull and scalp.

Prints each with its time (2 cores, CPU) and the peak memory of the process.

    .venv/bin/python bench/brain_mask.py [--patient patient01]
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.imaging.models import Contrast  # noqa: E402
from backend.imaging.preprocess import brain_mask as head_mask  # noqa: E402
from backend.imaging.register import resample  # noqa: E402
from ml.brain import brain_mask  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "open_ms_data" / "clinical_raw"


def reference(folder: Path, study: str) -> np.ndarray:
    flair = sitk.ReadImage(str(folder / f"{study}_FLAIR.nii.gz"))
    mask = sitk.ReadImage(str(folder / "brainmask_common_space.nii.gz"))
    to_common = sitk.ReadTransform(str(folder / f"{study}_FLAIR_to_common_space.tfm"))
    out = sitk.Resample(mask, flair, to_common.GetInverse(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0) > 0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patient", default="patient01")
    args = parser.parse_args()
    folder = DATA / args.patient
    if not (folder / "brainmask_common_space.nii.gz").exists():
        sys.exit(f"{folder} has no brainmask_common_space.nii.gz: nothing to compare with")
    print(f"{args.patient}: Dice against the providers' brain mask on each FLAIR grid")
    for study in ("study1", "study2"):
        truth = reference(folder, study)
        flair = nib.load(folder / f"{study}_FLAIR.nii.gz")
        t1 = nib.load(folder / f"{study}_T1W.nii.gz")
        start = time.perf_counter()
        on_flair = brain_mask(flair)
        flair_s = time.perf_counter() - start
        start = time.perf_counter()
        t1_mask = brain_mask(t1)
        transform = sitk.ReadTransform(str(folder / f"{study}_T1W_to_FLAIR.tfm"))
        moved = resample(
            nib.Nifti1Image(t1_mask.astype(np.float32), t1.affine), flair, transform, nearest=True
        )
        t1_s = time.perf_counter() - start
        start = time.perf_counter()
        otsu = head_mask({Contrast.flair: np.asarray(flair.dataobj, dtype=np.float32)})
        otsu_s = time.perf_counter() - start
        print(
            f"  {study}: deepbet on FLAIR {dice(on_flair, truth):.4f} ({flair_s:.1f} s)"
            f"  deepbet on T1W {dice(moved > 0.5, truth):.4f} ({t1_s:.1f} s)"
            f"  anchor Otsu head mask {dice(otsu, truth):.4f} ({otsu_s:.1f} s)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
