"""crowd-kit's image-segmentation aggregators as baselines, on our slices.

crowd-kit (Toloka's library) fits each image on its own: SegmentationMajorityVote,
SegmentationRASA (weights raters by agreement with the aggregate) and SegmentationEM (an
EM of the pixel labels per image). Installed with ``pip install -e ".[bench]"``; without it
``crowdkit_methods`` returns nothing and the benches say so.
"""

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

Aggregate = Callable[[Sequence[NDArray[np.bool_]]], list[NDArray[np.bool_]]]


def crowdkit_methods() -> dict[str, Aggregate]:
    """{name: aggregate(slices' votes [K, H, W]) -> hard masks}, empty without crowd-kit."""
    try:
        import pandas as pd
        from crowdkit.aggregation import (
            SegmentationEM,
            SegmentationMajorityVote,
            SegmentationRASA,
        )
    except ImportError:
        return {}

    def run(make: Callable[[], object]) -> Aggregate:
        def aggregate(slices: Sequence[NDArray[np.bool_]]) -> list[NDArray[np.bool_]]:
            rows = [
                {"task": n, "worker": k, "segmentation": np.asarray(vote, dtype=bool)}
                for n, votes in enumerate(slices)
                for k, vote in enumerate(votes)
            ]
            with warnings.catch_warnings():  # its divisions by zero on empty slices
                warnings.simplefilter("ignore", RuntimeWarning)
                fitted = make().fit_predict(pd.DataFrame(rows))  # type: ignore[attr-defined]
            return [np.asarray(fitted.loc[n], dtype=bool) for n in range(len(slices))]

        return aggregate

    return {
        "crowd-kit SegmentationMajorityVote": run(SegmentationMajorityVote),
        "crowd-kit SegmentationRASA": run(SegmentationRASA),
        "crowd-kit SegmentationEM": run(SegmentationEM),
    }


MISSING = 'crowd-kit is not installed: pip install -e ".[bench]" to compare with it'
