"""Adaptive redundancy: how many labels a slice needs, decided from its fused soft label.

A slice gets ``min_labels`` answers first. Then its fused posterior decides: when every
lesion candidate (a connected region some rater marked) is clearly a lesion or clearly not
(``uncertainty`` at most ``max_entropy`` bits: 0.5 bits means its highest P(lesion) is below
0.11 or above 0.89), the task retires; otherwise it asks for one more label, up to
``max_labels``, after which the slice goes to the experts' review queue. bench/redundancy.py
compares this with fixed redundancy on a simulated crowd.
"""

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage


class Decision(StrEnum):
    wait = "wait"  # fewer than min_labels answers
    retire = "retire"  # confident: the task is complete
    extend = "extend"  # uncertain: one more label
    escalate = "escalate"  # uncertain at max_labels: for an expert


@dataclass(frozen=True)
class RedundancyPolicy:
    min_labels: int = 3
    max_labels: int = 7
    max_entropy: float = 0.5  # bits, of the least certain lesion candidate (``uncertainty``)

    def __post_init__(self) -> None:
        if not 1 <= self.min_labels <= self.max_labels:
            raise ValueError("need 1 <= min_labels <= max_labels")
        if not 0 < self.max_entropy <= 1:
            raise ValueError("max_entropy is in bits, between 0 and 1")


def binary_entropy(posterior: NDArray[np.floating]) -> NDArray[np.float64]:
    """Entropy in bits of each pixel's P(lesion)."""
    w = np.clip(np.asarray(posterior, dtype=np.float64), 1e-12, 1 - 1e-12)
    entropy: NDArray[np.float64] = -(w * np.log2(w) + (1 - w) * np.log2(1 - w))
    return entropy


def uncertainty(posterior: NDArray[np.float64], marked: NDArray[np.bool_]) -> float:
    """How unsure the fused label is, in bits: the largest, over the lesion candidates (the
    connected components of the pixels any rater marked, 8- or 18-connected), of the entropy
    of the candidate's highest P(lesion). 0 when every candidate is clearly a lesion or
    clearly not, 1 when one is a coin toss; 0.0 when nobody marked anything.

    Per candidate rather than per pixel: raters always differ a little along a lesion's
    outline, and more labels hardly change that, whereas a lesion some raters saw and others
    did not is what another label settles.
    """
    if not marked.any():
        return 0.0
    structure = ndimage.generate_binary_structure(marked.ndim, 2)
    labels, count = ndimage.label(marked, structure=structure)
    highest = ndimage.maximum(posterior, labels, index=np.arange(1, count + 1))
    return float(binary_entropy(np.asarray(highest, dtype=np.float64)).max())


def decide(labels: int, uncertainty: float, policy: RedundancyPolicy) -> Decision:
    """What a slice with ``labels`` answers and this fused uncertainty (``uncertainty()``, in
    bits) needs next."""
    if labels < policy.min_labels:
        return Decision.wait
    if uncertainty <= policy.max_entropy:
        return Decision.retire
    if labels >= policy.max_labels:
        return Decision.escalate
    return Decision.extend
