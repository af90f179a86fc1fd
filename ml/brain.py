"""Brain extraction for raw clinical scans (issue 38): deepbet's network, whose weights ship
inside its wheel (nothing downloaded), on the CPU or a GPU. Pure: an image in, a mask out.

Chosen over the alternatives checked on this machine kind (../shared/ENVIRONMENT.md): HD-BET,
SynthStrip and antspynet download their models; pydeface needs FSL; registering an atlas
brain mask leaves skull and orbits in. On open_ms_data's clinical_raw patient01 deepbet's
FLAIR masks reach Dice 0.96 against the providers' brain mask (bench/brain_mask.py).
"""

from functools import cache
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt


@cache
def _extractor(gpu: bool) -> Any:
    from deepbet import BrainExtraction  # torch, loaded once per process

    return BrainExtraction(no_gpu=not gpu)


def brain_mask(
    image: nib.spatialimages.SpatialImage, *, gpu: bool = False
) -> npt.NDArray[np.bool_]:
    """The brain of ``image`` (a FLAIR or a T1, skull and face present) on its own grid."""
    import torch

    extractor = _extractor(gpu and torch.cuda.is_available())
    data = np.asarray(image.dataobj, dtype=np.float32)
    plain = nib.Nifti1Image(data, image.affine)  # type: ignore[no-untyped-call]
    _brain, mask, _tiv = extractor.run(plain)
    return np.asarray(mask.dataobj) > 0
