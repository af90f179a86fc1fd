"""The review queue as the expert workspace pages it: disputed crowd slices (``quality.review``)
ordered by the fused label's uncertainty (posterior entropy of the soft STAPLE label) or by
the volunteers' pairwise disagreement, with the raters named by pseudonym."""

import numpy as np
from numpy.typing import NDArray
from sqlmodel import Session, col, select

from backend.annotations.models import Annotation
from backend.auth.models import User
from backend.core.errors import NotFound
from backend.core.storage import Storage
from backend.fusion import labels
from backend.fusion.redundancy import binary_entropy
from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.quality import review, thumbs
from backend.quality.models import RejectionKind, SliceRejection
from backend.quality.workspace_schemas import RaterName, ReviewEntry, ReviewPage, ReviewSort

SCAN = 500  # most recent disputed tasks considered (as ``review.review_queue``)


# Pixels below this posterior are background: STAPLE with a prior leaves a small P(lesion)
# on every pixel (1/255 as stored), which would make every slice's mean entropy the same.
CANDIDATE_P = 0.05


def fused_entropy(soft: NDArray[np.float64]) -> float:
    """Mean binary entropy in bits of a soft label ``[H, W]`` (P(lesion)) over the pixels
    with P >= CANDIDATE_P (those some rater's mark made possible): 0 when the label is certain
    everywhere or empty, 1 when every candidate pixel is a coin toss."""
    marked = soft >= CANDIDATE_P
    if not marked.any():
        return 0.0
    return float(binary_entropy(soft[marked]).mean())


def _sort_key(sort: ReviewSort, entry: ReviewEntry) -> tuple[float, ...]:
    if sort is ReviewSort.uncertainty:
        # No fused label yet: last, by disagreement.
        return (entry.entropy is None, -(entry.entropy or 0.0), entry.mean_dice)
    return (entry.mean_dice, entry.min_dice - entry.max_dice, entry.task_id)


def review_page(
    *,
    session: Session,
    storage: Storage,
    project_id: int,
    sort: ReviewSort,
    limit: int,
    offset: int,
) -> ReviewPage:
    """A page of the slices volunteers disagree on (two or more answers, not gold, not
    dismissed by an expert), most uncertain fused label first or least agreement first, each
    with its raters' pseudonyms, pairwise Dice and fused entropy; with the total. ``NotFound``
    for a project that does not exist (as the other lists answer)."""
    if session.get(Project, project_id) is None:
        raise NotFound(f"Project {project_id} does not exist")
    items = review.review_queue(session=session, storage=storage, project_id=project_id, limit=SCAN)
    dismissed = set(
        session.exec(
            select(SliceRejection.slice_id).where(
                SliceRejection.project_id == project_id,
                SliceRejection.kind == RejectionKind.review,
            )
        )
    )
    items = [i for i in items if i.slice_id not in dismissed]
    answer_ids = [a for i in items for a in i.annotation_ids]
    raters = {
        annotation_id: RaterName(user_id=user_id, pseudonym=name)
        for annotation_id, user_id, name in session.exec(
            select(Annotation.id, Annotation.user_id, User.display_name)
            .join(User, col(User.id) == col(Annotation.user_id))
            .where(col(Annotation.id).in_(answer_ids))
        )
    }
    fused = labels.newest(session, project_id, [i.task_id for i in items])
    where = {
        s.id: (s.index, public_id)
        for s, public_id in session.exec(
            select(Slice, Case.public_id)
            .join(Case, col(Case.id) == col(Slice.case_id))
            .where(col(Slice.id).in_([i.slice_id for i in items]))
        )
    }
    entries = []
    for item in items:
        result = fused.get(item.task_id)
        index, public_id = where[item.slice_id]
        entries.append(
            ReviewEntry(
                slice_id=item.slice_id,
                case=public_id,
                index=index,
                task_id=item.task_id,
                escalated=item.escalated,
                raters=[raters[a] for a in item.annotation_ids if a in raters],
                mean_dice=item.mean_dice,
                min_dice=item.min_dice,
                max_dice=item.max_dice,
                entropy=None,
                fused_version=None if result is None or result.withdrawn else result.version,
            )
        )

    def measure(chosen: list[ReviewEntry]) -> None:
        for entry in chosen:
            result = fused.get(entry.task_id)
            if result is not None and result.soft_key is not None:
                entry.entropy = fused_entropy(labels.read_soft(storage, result.soft_key))

    # Every soft label is read only when the order needs them.
    if sort is ReviewSort.uncertainty:
        measure(entries)
    entries.sort(key=lambda e: _sort_key(sort, e))
    page = entries[offset : offset + limit]
    if sort is not ReviewSort.uncertainty:
        measure(page)
    return ReviewPage(
        total=len(entries),
        offset=offset,
        limit=limit,
        sort=sort,
        items=page,
        sprite=thumbs.sprite_of([e.slice_id for e in page], thumbs.Mark.fused),
    )
