"""Adaptive redundancy: how many labels a slice needs, decided from its fused soft label.

A slice gets ``min_labels`` answers first. Then its fused posterior decides: when the mean
binary entropy over the pixels any rater marked is at most ``max_entropy`` bits, the raters
agree well enough and the task retires; otherwise it asks for one more label, up to
``max_labels``, after which the slice goes to the experts' review queue. Pixels nobody marked
are left out of the mean: on a large image they would make every slice look certain.
"""

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray


class Decision(StrEnum):
    wait = "wait"  # fewer than min_labels answers
    retire = "retire"  # confident: the task is complete
    extend = "extend"  # uncertain: one more label
    escalate = "escalate"  # uncertain at max_labels: for an expert


@dataclass(frozen=True)
class RedundancyPolicy:
    min_labels: int = 3
    max_labels: int = 7
    max_entropy: float = 0.25  # bits, mean over the pixels any rater marked

    def __post_init__(self) -> None:
        if not 1 <= self.min_labels <= self.max_labels:
            raise ValueError("need 1 <= min_labels <= max_labels")
        if not 0 < self.max_entropy <= 1:
            raise ValueError("max_entropy is in bits, between 0 and 1")


def binary_entropy(posterior: NDArray[np.float64]) -> NDArray[np.float64]:
    """Entropy in bits of each pixel's P(lesion)."""
    w = np.clip(posterior, 1e-12, 1 - 1e-12)
    entropy: NDArray[np.float64] = -(w * np.log2(w) + (1 - w) * np.log2(1 - w))
    return entropy


def uncertainty(posterior: NDArray[np.float64], marked: NDArray[np.bool_]) -> float:
    """Mean entropy (bits) of the posterior over ``marked`` pixels (any rater marked them);
    0.0 when nobody marked anything (every answer said "no lesion")."""
    if not marked.any():
        return 0.0
    return float(binary_entropy(posterior[marked]).mean())


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
