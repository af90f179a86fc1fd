"""How unsure the model is, from Monte-Carlo dropout samples: pure numpy, no torch.

The model is run ``T`` times with dropout on (``ml.train`` does that, batched); this module
turns the ``T`` probability maps of each slice into uncertainty maps and then into one score
per slice:

- predictive entropy ``H[mean_t p_t]``: total uncertainty (also high where the model is sure
  a pixel is ambiguous);
- BALD, the mutual information ``H[mean_t p_t] - mean_t H[p_t]``: the part that comes from
  the model's own disagreement with itself, which more labels can reduce (Houlsby et al.
  2011, Gal et al. 2017);
- the variance over samples of the number of lesions (components of ``p_t >= 0.5`` as the
  lesion-wise metric counts them, ``backend.quality.metrics.lesions``): whether the model is
  unsure *how many* lesions a slice holds, the question a volunteer answers best.

Per-slice aggregation: the mean of the ``TOP_PIXELS`` highest values of a pixel map (all of
them on a smaller slice). A plain mean over the slice would rank slices by how much brain
they show, and a sum by how much lesion they hold; the top-k mean ranks them by how unsure the
model is where it is most unsure, at a scale of a few small lesions.
"""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from backend.fusion.redundancy import binary_entropy
from backend.quality.metrics import lesions

# Pixels averaged per slice (a few small lesions' worth at 1 mm).
TOP_PIXELS = 100


def predictive_entropy(samples: NDArray[np.floating]) -> NDArray[np.float64]:
    """``samples`` [T, ...] probabilities -> H[mean p] per pixel, bits."""
    return binary_entropy(np.mean(samples, axis=0))


def mutual_information(samples: NDArray[np.floating]) -> NDArray[np.float64]:
    """``samples`` [T, ...] -> BALD per pixel: H[mean p] - mean H[p], bits (>= 0)."""
    expected = np.mean(binary_entropy(samples), axis=0)
    bald: NDArray[np.float64] = np.maximum(predictive_entropy(samples) - expected, 0.0)
    return bald


def lesion_counts(samples: NDArray[np.floating], threshold: float = 0.5) -> NDArray[np.int64]:
    """``samples`` [T, H, W] -> the number of lesions in each sample's hard mask [T], counted
    as the lesion-wise metric counts them (``quality.metrics.lesions``)."""
    return np.asarray(
        [lesions(sample >= threshold)[1] for sample in np.asarray(samples)], dtype=np.int64
    )


def top_mean(values: NDArray[np.floating], k: int = TOP_PIXELS) -> float:
    """The mean of the ``k`` highest values (of all of them when there are fewer)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0:
        return 0.0
    if flat.size > k:
        flat = np.partition(flat, flat.size - k)[-k:]
    return float(flat.mean())


@dataclass(frozen=True)
class SliceScores:
    """One slice's uncertainty scores (see the module docstring)."""

    entropy: float  # top-k mean of the predictive entropy, bits
    bald: float  # top-k mean of the mutual information, bits
    count_variance: float  # variance over samples of the lesion count
    expected_lesion_pixels: float  # sum of the mean probability (the model's lesion load)


def score_slice(samples: NDArray[np.floating]) -> SliceScores:
    """``samples`` [T, H, W]: the slice's ``T`` Monte-Carlo probability maps."""
    samples = np.asarray(samples)
    if samples.ndim != 3 or samples.shape[0] < 2:
        raise ValueError(f"need [T >= 2, H, W] samples, got shape {samples.shape}")
    counts = lesion_counts(samples)
    return SliceScores(
        entropy=top_mean(predictive_entropy(samples)),
        bald=top_mean(mutual_information(samples)),
        count_variance=float(np.var(counts)),
        expected_lesion_pixels=float(np.mean(samples, axis=0).sum()),
    )
