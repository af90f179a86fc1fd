"""A representative gold pool (issue 33): gold slices that look like the crowd's own tasks.

Gold that stands out by content is gold a volunteer can game ("paint only when it looks like
gold"). So the pool follows the crowd tasks' distribution of lesion load, in strata:

- ``empty``: no lesion; ``mimic``: no lesion in the reference but at least
  ``HYPERINTENSE_MM2`` of FLAIR-hyperintense brain (something bright a volunteer may paint).
  We hold no mimic labels (flow artefacts, septum, bright cortex): ``mimic`` is this
  intensity rule only, and only slices with a reference can be told to be mimics;
- ``small`` (under ``SMALL_MM2`` of lesion; small lesions and the faint partial-volume edges
  of larger ones: faintness is not measured apart), ``medium``, ``large`` (``LARGE_MM2`` or
  more).

A slice's load is its reference mask's lesion area (the current gold mask's, for gold); a
crowd slice without a reference is estimated from its FLAIR-hyperintense area (stored at
import as ``Slice.candidate_fraction``; for slices imported before that, computed from the
served PNG by ``flair_features``), which reads mimics as lesions: an estimate.

``spread_order`` ranks the candidates: strata in proportion to the crowd tasks (the stratum
furthest below its share comes next, counting the gold already there), and within a stratum a
spread of cases and slice positions: never within ``MIN_GAP - 1`` slices of an earlier pick in
the same case while the data allows, then the case with the fewest gold and picks, away from
the gold already there, and furthest (in rank along the case, so dense runs of slices get
their share) from the stratum's earlier picks.

``pool_size`` sizes the pool from the gold schedule so a volunteer keeps meeting gold they
have not seen through their first ``HORIZON`` answers: ``MARGIN`` times the expected gold in
them (114 under the default schedule [[10, 0.4], [30, 0.3], [100, 0.2]] and rate 0.1, so 143),
capped by the candidates and by ``MAX_SHARE`` of the project's slices.

How the pool grows later: experts promote their own answers (``gold.promote_answer``) and
confirm fused slices (``gold.set_gold`` with the fused mask), which add gold of whatever
stratum those slices hold; when a gold slice is retired after being revealed to enough
volunteers, ``refill`` approves the next candidate of its stratum (``slice_stratum``; slices
that were ever gold never come back as candidates), so the pool keeps its size and its mix.
``refill`` with no stratum tops up the stratum furthest below its share, which also rebalances
a pool that expert additions have tilted. ``separability_auc`` checks the outcome: whether a
classifier on the served FLAIR pixels can tell gold from crowd slices (0.5: it cannot).
"""

import io
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray
from PIL import Image
from scipy import optimize, stats
from sqlalchemy import ColumnElement
from sqlmodel import Session, col, select

from backend.core.errors import NotFound
from backend.core.storage import Storage
from backend.imaging.models import Case, Contrast, Slice, Volume
from backend.imaging.preprocess import HYPERINTENSE_Z
from backend.projects.models import Project
from backend.quality.models import GoldVersion, RejectionKind, SliceRejection
from backend.tasks.models import Task, TaskKind, TaskState
from backend.tasks.service import gold_rate

SMALL_MM2 = 50.0  # about one lesion of 8 mm across
LARGE_MM2 = 300.0
HYPERINTENSE_MM2 = 20.0  # hyperintense area above which a slice looks lesioned
MIN_GAP = 4  # slices of one case on a page are at least this many apart
HORIZON = 1000  # answers through which a volunteer keeps meeting unseen gold
MARGIN = 1.25
MAX_SHARE = 0.25  # of a project's slices, at most, become gold: the rest is the crowd's
BRIGHT_LEVEL = 230  # 8-bit; the PNG window tops out at the volume's 99.5th brain percentile
FEATURES = ("mean intensity", "bright share", "hyperintense share", "brain share")


class Stratum(StrEnum):
    empty = "empty"
    mimic = "mimic"
    small = "small"
    medium = "medium"
    large = "large"


def stratum_of(lesion_mm2: float | None, hyperintense_mm2: float | None) -> Stratum | None:
    """The stratum of a slice from its reference lesion area (None: no reference, estimate
    from the hyperintense area); None when neither is known."""
    if lesion_mm2 is None:
        if hyperintense_mm2 is None:
            return None
        lesion_mm2 = hyperintense_mm2 if hyperintense_mm2 >= HYPERINTENSE_MM2 else 0.0
    elif lesion_mm2 == 0 and (hyperintense_mm2 or 0.0) >= HYPERINTENSE_MM2:
        return Stratum.mimic
    if lesion_mm2 == 0:
        return Stratum.empty
    if lesion_mm2 < SMALL_MM2:
        return Stratum.small
    return Stratum.medium if lesion_mm2 < LARGE_MM2 else Stratum.large


def expected_gold(
    schedule: Sequence[Sequence[float]], base_rate: float, answers: int = HORIZON
) -> float:
    """Expected gold tasks among a volunteer's first ``answers`` answers under the schedule
    (``tasks.service.gold_rate``)."""
    return sum(gold_rate(n, schedule, base_rate) for n in range(answers))


def pool_size(
    schedule: Sequence[Sequence[float]],
    base_rate: float,
    *,
    available: int,
    slices: int,
    answers: int = HORIZON,
    margin: float = MARGIN,
    max_share: float = MAX_SHARE,
) -> int:
    """Gold slices a project needs: ``margin`` times the expected gold in a volunteer's first
    ``answers`` answers, capped by the slices that can be gold (``available``) and by
    ``max_share`` of the project's ``slices``.

    Each volunteer sees each gold slice once. Their gold count in ``answers`` answers is a sum
    of independent draws: under the default schedule mean 114, standard deviation 9.9, so 143
    lies 2.9 deviations above the mean (1 volunteer in 500 draws more); the rest of the
    margin covers gold withdrawn, or seen earlier as a crowd task.
    """
    wanted = math.ceil(margin * expected_gold(schedule, base_rate, answers) - 1e-9)
    return max(0, min(wanted, available, math.floor(max_share * slices)))


@dataclass(frozen=True)
class SliceLoad:
    """A slice's place in the pool: its case, position and stratum."""

    slice_id: int
    case_id: int
    index: int
    stratum: Stratum


def spread_order(
    candidates: Sequence[SliceLoad],
    shares: Mapping[Stratum, float],
    *,
    chosen: Sequence[SliceLoad] = (),
    min_gap: int = MIN_GAP,
) -> Iterator[SliceLoad]:
    """The candidates, best first: strata in proportion to ``shares`` (Webster's rule, counting
    ``chosen``, the gold already there; strata without a share last), spread over cases and
    positions (see the module docstring). Deterministic; lazy, so a page costs its length."""
    n = len(candidates)
    if n == 0:
        return
    strata = list(Stratum)
    case = np.array([c.case_id for c in candidates])
    index = np.array([c.index for c in candidates], dtype=np.float64)
    stratum = np.array([strata.index(c.stratum) for c in candidates])
    # A fixed pseudo-random tie-break (Knuth's multiplicative hash of the slice id): the first
    # pick in a case lands anywhere, not always at its lowest slice.
    tiebreak = np.array([(c.slice_id * 2654435761) % 2**32 for c in candidates])
    order = np.lexsort((index, stratum, case))
    first = np.r_[True, (np.diff(case[order]) != 0) | (np.diff(stratum[order]) != 0)]
    rank = np.empty(n)
    rank[order] = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))
    gap = np.full(n, np.inf)  # to the nearest pick in the case, in slices
    gap_gold = np.full(n, np.inf)  # ... to the nearest gold already there
    spread = np.full(n, np.inf)  # to the nearest pick of the case and stratum, in ranks
    in_case, in_group = np.zeros(n), np.zeros(n)
    taken = np.zeros(len(strata))

    def pick(case_id: int, s: int, at: float, at_rank: float | None) -> None:
        same = case == case_id
        nearest = gap if at_rank is not None else gap_gold
        np.minimum(nearest, np.where(same, np.abs(index - at), np.inf), out=nearest)
        in_case[same] += 1
        group = same & (stratum == s)
        if at_rank is None:  # gold already there: its rank among the group's candidates
            at_rank = float(np.count_nonzero(index[group] < at)) - 0.5
        np.minimum(spread, np.where(group, np.abs(rank - at_rank), np.inf), out=spread)
        in_group[group] += 1
        taken[s] += 1

    for gold in chosen:
        pick(gold.case_id, strata.index(gold.stratum), gold.index, None)
    weight = np.array([shares.get(s, 0.0) for s in strata])
    left = np.ones(n, dtype=bool)
    for _ in range(n):
        present = np.bincount(stratum[left], minlength=len(strata)) > 0
        s = min(
            np.flatnonzero(present),
            key=lambda k: (weight[k] <= 0, (taken[k] + 0.5) / max(float(weight[k]), 1e-12), k),
        )
        pool = np.flatnonzero(left & (stratum == s))
        best = pool[
            np.lexsort(
                (
                    tiebreak[pool],
                    spread[pool],
                    np.minimum(gap_gold[pool], min_gap),
                    -in_case[pool],
                    -in_group[pool],
                    gap[pool] >= min_gap,
                )
            )[-1]
        ]
        left[best] = False
        pick(int(case[best]), int(s), index[best], float(rank[best]))
        yield candidates[best]


# --- telling gold from crowd slices by their pixels ---------------------------------------


def brain_pixels(flair: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """The brain of a FLAIR slice image ``[H, W]``: non-zero pixels when the image has a zero
    background (skull-stripped), else those above Otsu's threshold."""
    if np.count_nonzero(flair == 0) >= 0.05 * flair.size:
        return flair > 0
    above = sitk.OtsuThreshold(sitk.GetImageFromArray(flair), 0, 1)  # type: ignore[no-untyped-call]
    return sitk.GetArrayFromImage(above).astype(bool)


def flair_features(flair: NDArray[np.uint8]) -> NDArray[np.float64]:
    """What a volunteer sees of a served FLAIR slice ``[H, W]`` (8-bit), as ``[4]`` features
    (``FEATURES``): mean brain intensity (0..1), share of brain pixels at ``BRIGHT_LEVEL`` or
    above, share of hyperintense brain pixels (robust z-score over ``HYPERINTENSE_Z``: lesion
    candidates), and share of the image that is brain."""
    brain = brain_pixels(flair)
    values = flair[brain].astype(np.float64)
    if values.size == 0:
        return np.zeros(len(FEATURES))
    median = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - median))) or 1.0
    return np.array(
        [
            values.mean() / 255.0,
            np.mean(values >= BRIGHT_LEVEL),
            np.mean(values > median + HYPERINTENSE_Z * spread),
            values.size / flair.size,
        ]
    )


def auc(scores: NDArray[np.float64], positive: NDArray[np.bool_]) -> float:
    """Area under the ROC curve of ``scores`` ``[N]`` for ``positive`` ``[N]`` (Mann-Whitney U,
    ties counted half)."""
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("the AUC needs both classes")
    ranks = stats.rankdata(scores)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _fit_logistic(x: NDArray[np.float64], y: NDArray[np.float64], l2: float) -> NDArray[np.float64]:
    """Weights ``[F + 1]`` (intercept last) of an L2-penalised logistic regression."""
    design = np.c_[x, np.ones(len(x))]

    def loss(w: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        z = design @ w
        penalty = 0.5 * l2 * float(w[:-1] @ w[:-1])
        grad = design.T @ (1 / (1 + np.exp(-z)) - y) + l2 * np.r_[w[:-1], 0.0]
        return float(np.sum(np.logaddexp(0, z) - y * z)) + penalty, grad

    fitted = optimize.minimize(loss, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B")
    return np.asarray(fitted.x, dtype=np.float64)


def separability_auc(
    features: NDArray[np.float64],
    gold: NDArray[np.bool_],
    *,
    folds: int = 5,
    seed: int = 0,
    l2: float = 1.0,
) -> float:
    """Cross-validated AUC of a logistic regression telling gold from crowd slices by their
    ``features`` ``[N, F]`` (``gold`` ``[N]``): 0.5 when they cannot be told apart. Folds are
    stratified; features are standardised on each training part."""
    folds = min(folds, int(gold.sum()), int((~gold).sum()))
    if folds < 2:
        raise ValueError("at least two gold and two crowd slices are needed")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(gold), dtype=int)
    for members in (np.flatnonzero(gold), np.flatnonzero(~gold)):
        fold[rng.permutation(members)] = np.arange(members.size) % folds
    scores = np.empty(len(gold))
    for k in range(folds):
        train, test = fold != k, fold == k
        mean, std = features[train].mean(axis=0), features[train].std(axis=0) + 1e-12
        w = _fit_logistic((features[train] - mean) / std, gold[train].astype(np.float64), l2)
        scores[test] = np.c_[(features[test] - mean) / std, np.ones(test.sum())] @ w
    return auc(scores, gold)


def read_grey(storage: Storage, key: str) -> NDArray[np.uint8]:
    """A stored slice image as 8-bit grey ``[H, W]``."""
    with Image.open(io.BytesIO(storage.get(key))) as image:
        return np.asarray(image.convert("L"))


# --- the pool in the database -------------------------------------------------------------


@dataclass(frozen=True)
class PoolState:
    """A project's gold pool: current gold, candidates (reference mask, never gold, not in a
    held-out case), the crowd tasks' shares of the strata, and the project's slice count."""

    gold: list[SliceLoad]
    candidates: list[SliceLoad]
    shares: dict[Stratum, float]
    slices: int

    def order(self, stratum: Stratum | None = None) -> Iterator[SliceLoad]:
        """The candidates, best first (``spread_order``), only ``stratum``'s when given."""
        if stratum is None:
            return spread_order(self.candidates, self.shares, chosen=self.gold)
        mine = [c for c in self.candidates if c.stratum is stratum]
        return spread_order(mine, {stratum: 1.0}, chosen=self.gold)


def pool_state(*, session: Session, project_id: int, storage: Storage | None = None) -> PoolState:
    """Measure a project's slices for the pool. Slices imported before hyperintensity was
    stored are measured from their FLAIR PNG when ``storage`` is given, else left out of the
    crowd's shares."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"Project {project_id} does not exist")
    in_project = col(Case.project_id) == project_id
    area = _pixel_areas(session, in_project)
    versions = session.exec(
        select(GoldVersion.slice_id, GoldVersion.lesion_pixels, GoldVersion.retired_at)
        .join(Slice, col(Slice.id) == col(GoldVersion.slice_id))
        .join(Case, col(Case.id) == col(Slice.case_id))
        .where(in_project)
    ).all()
    ever_gold = {slice_id for slice_id, _, _ in versions}
    # Candidates an expert rejected in the workspace never come back (nor does ``refill``).
    rejected = set(
        session.exec(
            select(SliceRejection.slice_id).where(
                SliceRejection.project_id == project_id,
                SliceRejection.kind == RejectionKind.candidate,
            )
        )
    )
    gold_pixels = {slice_id: px for slice_id, px, retired in versions if retired is None}
    crowd = set(
        session.exec(
            select(Task.slice_id).where(
                Task.project_id == project_id,
                Task.kind == TaskKind.normal,
                Task.state != TaskState.retired,
            )
        )
    )
    rows = session.exec(
        select(Slice, Case.public_id)
        .join(Case, col(Case.id) == col(Slice.case_id))
        .where(in_project, col(Case.tutorial).is_(False))  # teaching material is never gold
    ).all()
    holdout = set(project.holdout_cases)
    gold, candidates, counts = [], [], Counter[Stratum]()
    for slice_, public_id in rows:
        assert slice_.id is not None
        mm2 = area.get(slice_.case_id, 1.0)
        lesion = gold_pixels.get(slice_.id, slice_.reference_pixels)
        lesion_mm2 = None if lesion is None else lesion * mm2
        stratum = stratum_of(lesion_mm2, _hyperintense_mm2(slice_, mm2, lesion_mm2, storage))
        if stratum is None:
            continue
        load = SliceLoad(slice_.id, slice_.case_id, slice_.index, stratum)
        if slice_.id in gold_pixels:
            gold.append(load)
        elif (
            slice_.reference_key is not None
            and slice_.id not in ever_gold
            and slice_.id not in rejected
            and public_id not in holdout
        ):
            candidates.append(load)
        if slice_.id in crowd:
            counts[stratum] += 1
    if not counts:  # no crowd tasks to match: keep the candidates' own mix
        counts = Counter(c.stratum for c in candidates)
    total = sum(counts.values()) or 1
    shares = {s: counts[s] / total for s in Stratum}
    return PoolState(gold=gold, candidates=candidates, shares=shares, slices=len(rows))


def slice_stratum(
    *, session: Session, slice_id: int, storage: Storage | None = None
) -> Stratum | None:
    """A slice's stratum, by its latest gold version's lesion area, else its reference's (a
    retired gold slice's stratum, for ``refill``)."""
    slice_ = session.get(Slice, slice_id)
    if slice_ is None:
        raise NotFound(f"Slice {slice_id} does not exist")
    latest = session.exec(
        select(GoldVersion.lesion_pixels)
        .where(GoldVersion.slice_id == slice_id)
        .order_by(col(GoldVersion.version).desc())
    ).first()
    mm2 = _pixel_areas(session, col(Case.id) == slice_.case_id).get(slice_.case_id, 1.0)
    lesion = latest if latest is not None else slice_.reference_pixels
    lesion_mm2 = None if lesion is None else lesion * mm2
    return stratum_of(lesion_mm2, _hyperintense_mm2(slice_, mm2, lesion_mm2, storage))


def _pixel_areas(session: Session, where: ColumnElement[bool]) -> dict[int, float]:
    """In-plane pixel area (mm^2) of each case's slices, from its FLAIR volume's spacing."""
    rows = session.exec(
        select(Volume.case_id, Volume.spacing)
        .join(Case, col(Case.id) == col(Volume.case_id))
        .where(where, col(Volume.contrast) == Contrast.flair)
    )
    return {case_id: float(spacing[0]) * float(spacing[1]) for case_id, spacing in rows}


def _hyperintense_mm2(
    slice_: Slice, mm2: float, lesion_mm2: float | None, storage: Storage | None
) -> float | None:
    """The slice's FLAIR-hyperintense brain area, where its stratum needs it."""
    if lesion_mm2 is not None and lesion_mm2 > 0:
        return None  # a lesion load decides
    brain = slice_.brain_fraction * slice_.width * slice_.height * mm2
    if slice_.candidate_fraction is not None:
        return slice_.candidate_fraction * brain
    key = slice_.image_keys.get(Contrast.flair.value)
    if storage is None or key is None:
        return None
    return float(flair_features(read_grey(storage, key))[2]) * brain


def refill(
    session: Session, storage: Storage, project_id: int, stratum: Stratum | None
) -> GoldVersion | None:
    """Approve the next candidate of ``stratum`` as gold (None: of the stratum furthest below
    its share, which after a retirement is usually the retired slice's); None when no
    candidate is left."""
    from backend.quality import gold  # gold imports this module

    state = pool_state(session=session, project_id=project_id, storage=storage)
    following = next(state.order(stratum), None)
    if following is None:
        return None
    return gold.approve_reference(
        session=session, storage=storage, slice_id=following.slice_id, expert_id=None
    )
