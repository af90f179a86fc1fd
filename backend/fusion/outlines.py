"""Fused lesion outlines: STAPLE decides which lesions exist; an outline rule draws them
(``Outline``), and fragments cut off a lesion by a thin margin of votes are joined back to it.
The rule is chosen per project on its gold slices (``choose_outline``). Pure numpy/scipy."""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from backend.fusion.staple import MAX_RATERS
from backend.quality.metrics import dice


class Outline(StrEnum):
    """Who draws a fused lesion's outline (``outlined``); under either rule, fragments of a
    lesion are then joined to it (``join_fragments``)."""

    staple = "staple"  # STAPLE's posterior throughout
    # STAPLE decides which lesions exist, the majority of each lesion's raters outlines it
    # (``outline_by_finders``)
    majority = "majority"


def outlined(
    posterior: NDArray[np.float64], share: NDArray[np.float64], outline: Outline
) -> NDArray[np.float64]:
    """The soft label under ``outline`` from STAPLE's posterior and the raters' vote share
    (same shape), fragments joined (``join_fragments``)."""
    drawn = posterior if outline is Outline.staple else outline_by_finders(posterior, share)
    return join_fragments(drawn, share)


# The largest soft value an 8-bit label stores under one half (``labels.soft_png``): pixels
# a rule leaves out on a tie get it, so they stay out once stored.
UNDER_HALF = 127 / 255


def raters_in(share: NDArray[np.float64]) -> int:
    """How many raters a vote ``share`` (any shape; the mean of their masks) averages: the
    least count, up to ``MAX_RATERS``, of which every share is a whole multiple (1 when
    nobody marked anything)."""
    values = np.unique(np.asarray(share, dtype=np.float64))
    for raters in range(1, MAX_RATERS + 1):
        scaled = values * raters
        if np.all(np.abs(scaled - np.rint(scaled)) < 1e-6):
            return raters
    return MAX_RATERS


def outline_by_finders(
    posterior: NDArray[np.float64], share: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Lesion-wise fusion: STAPLE decides which lesions exist, the majority of the raters who
    found each lesion outlines it.

    ``posterior``: STAPLE's P(lesion) per pixel; ``share``: the share of raters who marked
    each pixel (same shape). Candidates are the connected regions (8- or 26-connected) of
    "STAPLE says lesion or most raters marked it"; one where STAPLE says lesion nowhere is
    not a lesion (a look-alike several unreliable raters marked). A kept lesion's outline is
    the pixels more than half of its finders marked, its finders counted by its most-marked
    pixel (``share > top / 2``; ties just under one half, ``UNDER_HALF``). Elsewhere the soft
    label is STAPLE's posterior, under one half there. Returns the soft label (hard: >= 0.5).

    Why the finders and not all raters (``staple.outline_by_majority``): a lesion only three
    of five novices found was cut down to the pixels all three marked, often a few pixels cut
    off from the rest of the lesion on the next slice, which lesion-wise detection counts as
    a false alarm; a lesion all found keeps the majority's outline (bench/fusion_priors.py).
    """
    posterior = np.asarray(posterior, dtype=np.float64)
    share = np.asarray(share, dtype=np.float64)
    if posterior.shape != share.shape:
        raise ValueError(f"posterior {posterior.shape} and share {share.shape} differ")
    staple_says = posterior >= 0.5
    structure = ndimage.generate_binary_structure(posterior.ndim, posterior.ndim)
    labels, count = ndimage.label(staple_says | (share > 0.5), structure=structure)
    if count == 0:
        return posterior.copy()
    kept = np.zeros(count + 1, dtype=bool)
    kept[np.unique(labels[staple_says])] = True
    top = np.zeros(count + 1)
    top[1:] = ndimage.maximum(share, labels, np.arange(1, count + 1))
    kept &= top > 0  # (STAPLE saying lesion where nobody marked: its posterior decides)
    mine = kept[labels]
    relative = np.divide(share, top[labels], out=np.zeros_like(share), where=mine)
    drawn = np.where(np.isclose(relative, 0.5), UNDER_HALF, relative)
    result: NDArray[np.float64] = np.where(mine, drawn, posterior)
    return result


def join_fragments(label: NDArray[np.float64], share: NDArray[np.float64]) -> NDArray[np.float64]:
    """The soft ``label`` with each fragment joined to its lesion, from the raters' vote
    ``share`` (same shape).

    A fragment is a piece of the hard label (``>= 0.5``; 8- or 26-connected) that no more
    than a bare majority of the raters (``raters_in``) marked anywhere, lying in one region
    of "at least two raters marked it" with a larger piece: it is joined to the largest piece
    of that region by a shortest path through the region, whose pixels get one half (in the
    hard label). Pieces more raters agreed on stay apart (lesions of their own, however
    close). With three raters or fewer, two are a majority, so the finders' outline leaves
    nothing to join.

    Why: lesions are fused slice by slice, and where one ends its outline is often a few
    pixels a bare majority drew, cut off from the rest of the lesion on that slice or the
    next by pixels only two raters marked. Lesion-wise detection (MSSEG) counts such a
    fragment as a false alarm, since the lesion lies mostly outside it. A path one pixel
    wide joins it. On 44 simulated crowds of novices from 27 real masks
    (bench/fusion_priors.py, bench/RESULTS.md) joining raised the mean lesion-wise F1 by
    0.007 to 0.036 under either outline rule, the Dice within 0.001.
    """
    label = np.asarray(label, dtype=np.float64)
    share = np.asarray(share, dtype=np.float64)
    if label.shape != share.shape:
        raise ValueError(f"label {label.shape} and share {share.shape} differ")
    hard = label >= 0.5
    structure = ndimage.generate_binary_structure(label.ndim, label.ndim)
    pieces, count = ndimage.label(hard, structure=structure)
    if count < 2:
        return label.copy()
    raters = raters_in(share)
    two, bare = 2 / raters, (raters // 2 + 1) / raters
    areas, _ = ndimage.label((share >= two - 1e-9) | hard, structure=structure)
    area_of = np.zeros(count + 1, dtype=np.intp)
    area_of[pieces[hard]] = areas[hard]
    sizes = np.bincount(pieces.ravel(), minlength=count + 1)
    top = np.zeros(count + 1)
    top[1:] = ndimage.maximum(share, pieces, np.arange(1, count + 1))
    weak = top <= bare + 1e-9
    joined = label.copy()
    boxes = ndimage.find_objects(areas)
    for area in np.flatnonzero(np.bincount(area_of[1:]) >= 2):
        members = np.flatnonzero(area_of == area)
        main = members[np.argmax(sizes[members])]
        fragments = [int(m) for m in members if m != main and weak[m]]
        if not fragments:
            continue
        box = boxes[area - 1]
        assert box is not None
        path = _shortest_paths(areas[box] == area, pieces[box], int(main), fragments)
        local = joined[box]
        local[path] = np.maximum(local[path], 0.5)
    return joined


def _shortest_paths(
    region: NDArray[np.bool_], pieces: NDArray[np.int32], main: int, fragments: Sequence[int]
) -> NDArray[np.bool_]:
    """The pixels of a shortest path (in steps to any of the 8 or 26 neighbours) inside
    ``region`` from piece ``main`` of the labels ``pieces`` to each of ``fragments``."""
    nodes = np.flatnonzero(region)
    index = np.full(region.shape, -1, dtype=np.intp)
    index.flat[nodes] = np.arange(len(nodes))
    starts, ends = [], []
    for step in itertools.product((-1, 0, 1), repeat=region.ndim):
        if step <= (0,) * region.ndim:
            continue  # each pair of neighbours once
        bounds = list(zip(step, region.shape, strict=True))
        here = tuple(slice(max(0, -s), n - max(0, s)) for s, n in bounds)
        there = tuple(slice(max(0, s), n - max(0, -s)) for s, n in bounds)
        a, b = index[here], index[there]
        linked = (a >= 0) & (b >= 0)
        starts.append(a[linked])
        ends.append(b[linked])
    start, end = np.concatenate(starts), np.concatenate(ends)
    graph = sparse.csr_matrix((np.ones(len(start)), (start, end)), shape=(len(nodes),) * 2)
    distance, previous, _ = csgraph.dijkstra(
        graph,
        directed=False,
        indices=index[pieces == main],
        min_only=True,
        return_predecessors=True,
    )
    path = np.zeros(len(nodes), dtype=bool)
    for fragment in fragments:
        ends_here = index[pieces == fragment]
        node = int(ends_here[np.argmin(distance[ends_here])])
        while node >= 0:  # back to the main piece (whose predecessor is negative)
            path[node] = True
            node = int(previous[node])
    on_path = np.zeros(region.shape, dtype=bool)
    on_path.flat[nodes[path]] = True
    return on_path


# Gold slices with enough answers needed before gold picks the outline rule.
MIN_GOLD_SLICES = 5


@dataclass(frozen=True)
class GoldExample:
    """A gold slice fused like a crowd task: STAPLE's posterior, the vote share, the gold."""

    posterior: NDArray[np.float64]
    share: NDArray[np.float64]
    gold: NDArray[np.bool_]


def choose_outline(
    examples: Sequence[GoldExample], default: Outline = Outline.staple
) -> tuple[Outline, dict[str, float]]:
    """The outline rule whose hard labels agree best with the experts' gold (mean Dice over
    ``examples``), and each rule's mean Dice; ``default`` (and no scores) with fewer than
    ``MIN_GOLD_SLICES`` examples.

    Which rule is better depends on how the crowd errs: STAPLE's posterior corrects raters
    who consistently draw too wide or too narrow, the majority's outline resists errors that
    are correlated along an outline (bench/fusion.py and bench/novices.py each favour one),
    so each project's gold decides.
    """
    if len(examples) < MIN_GOLD_SLICES:
        return default, {}
    scores = {
        rule.value: float(
            np.mean([dice(e.gold, outlined(e.posterior, e.share, rule) >= 0.5) for e in examples])
        )
        for rule in Outline
    }
    best = max(Outline, key=lambda rule: (scores[rule.value], rule is default))
    return best, scores
