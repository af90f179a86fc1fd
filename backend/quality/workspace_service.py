"""The expert workspace's gold lists and slice detail: gold candidates paged and filtered in
the pool's spread order (``gold_pool.spread_order``), current gold paged, one slice with every
mask an expert compares on it (reference, gold, each volunteer's and expert's answer named by
pseudonym, the fused label), and rejections (a candidate set aside, gold retired, a review
item dismissed) with their reasons. Review ordering lives in ``quality.workspace_review``."""

from collections import Counter
from itertools import islice

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from backend.annotations.masks import encode_rle
from backend.annotations.models import Annotation
from backend.auth.models import User
from backend.core.errors import Conflict, NotFound
from backend.core.storage import Storage
from backend.fusion import labels
from backend.imaging.models import Case, Slice
from backend.imaging.service import slice_and_case
from backend.projects.models import Project
from backend.quality import gold, gold_pool, metrics, thumbs
from backend.quality.gold_pool import Stratum
from backend.quality.models import GoldVersion, RaterStats, RejectionKind, SliceRejection
from backend.quality.reliability import TrustLevel
from backend.quality.workspace_review import fused_entropy
from backend.quality.workspace_schemas import (
    AnswerItem,
    AnswerPage,
    CandidateItem,
    CandidatePage,
    EmptyFilter,
    Facet,
    GoldItem,
    GoldPage,
    MaskRead,
    NeighbourRead,
    OverlayRead,
    RejectionRead,
    SliceDetailRead,
)
from backend.tasks.models import Assignment, Task, TaskKind
from backend.tasks.queue import slices_statement

EMPTY_STRATA = frozenset({Stratum.empty, Stratum.mimic})  # no lesion in the reference


def image_urls(slice_id: int, keys: dict[str, str]) -> dict[str, str]:
    """The URLs of a slice's contrast images (experts' own route, long-cached)."""
    return {name: f"/api/slices/{slice_id}/images/{name}.png" for name in keys}


def _project(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"Project {project_id} does not exist")
    return project


def candidate_page(
    *,
    session: Session,
    storage: Storage,
    project_id: int,
    limit: int,
    offset: int,
    case: str | None = None,
    stratum: Stratum | None = None,
    empty: EmptyFilter = EmptyFilter.include,
) -> CandidatePage:
    """A page of the project's gold candidates, best first for a representative pool
    (strata in the crowd's proportions, spread over cases and slice positions), only those
    of ``case`` (public id), of ``stratum`` and with or without a lesion (``empty``) when
    asked; with the total and the counts the filters offer."""
    state = gold_pool.pool_state(session=session, project_id=project_id, storage=storage)
    public = dict(
        session.exec(select(Case.id, Case.public_id).where(Case.project_id == project_id)).all()
    )
    cases = Counter(public[c.case_id] for c in state.candidates)
    mine = [c for c in state.candidates if case is None or public[c.case_id] == case]
    strata = Counter(c.stratum for c in mine)
    if stratum is not None:
        mine = [c for c in mine if c.stratum is stratum]
    if empty is not EmptyFilter.include:
        keep_empty = empty is EmptyFilter.only
        mine = [c for c in mine if (c.stratum in EMPTY_STRATA) == keep_empty]
    shares = {stratum: 1.0} if stratum is not None else state.shares
    order = gold_pool.spread_order(mine, shares, chosen=state.gold)
    picked = list(islice(order, offset, offset + limit))
    rows = {
        s.id: s
        for s in session.exec(
            select(Slice).where(col(Slice.id).in_([p.slice_id for p in picked]))
        ).all()
    }
    items = [
        CandidateItem(
            slice_id=p.slice_id,
            case=public[p.case_id],
            index=p.index,
            stratum=p.stratum,
            reference_pixels=rows[p.slice_id].reference_pixels,
        )
        for p in picked
    ]
    return CandidatePage(
        total=len(mine),
        offset=offset,
        limit=limit,
        items=items,
        sprite=thumbs.sprite_of([i.slice_id for i in items], thumbs.Mark.reference),
        cases=[Facet(value=v, count=n) for v, n in sorted(cases.items())],
        strata=[Facet(value=s.value, count=strata[s]) for s in Stratum if strata[s]],
    )


def gold_page(
    *, session: Session, project_id: int, limit: int, offset: int, case: str | None = None
) -> GoldPage:
    """A page of the project's current gold slices, newest first, with the total."""
    _project(session, project_id)
    where: list[ColumnElement[bool]] = [
        col(Case.project_id) == project_id,
        col(GoldVersion.retired_at).is_(None),
    ]
    if case is not None:
        where.append(col(Case.public_id) == case)
    joined = (
        select(GoldVersion, Slice, Case)
        .join(Slice, col(Slice.id) == col(GoldVersion.slice_id))
        .join(Case, col(Case.id) == col(Slice.case_id))
        .where(*where)
    )
    total = session.exec(
        select(func.count())
        .select_from(GoldVersion)
        .join(Slice, col(Slice.id) == col(GoldVersion.slice_id))
        .join(Case, col(Case.id) == col(Slice.case_id))
        .where(*where)
    ).one()
    rows = session.exec(
        joined.order_by(col(GoldVersion.id).desc()).offset(offset).limit(limit)
    ).all()
    items = [
        GoldItem(
            slice_id=s.id or 0,
            case=c.public_id,
            index=s.index,
            version_id=v.id or 0,
            version=v.version,
            source=v.source,
            lesion_pixels=v.lesion_pixels,
            created_at=v.created_at,
        )
        for v, s, c in rows
    ]
    return GoldPage(
        total=int(total),
        offset=offset,
        limit=limit,
        items=items,
        sprite=thumbs.sprite_of([i.slice_id for i in items], thumbs.Mark.gold),
    )


def answer_page(*, session: Session, project_id: int, limit: int, offset: int) -> AnswerPage:
    """A page of experts' answers to the project's crowd tasks, newest first, with the
    total: each can become its slice's gold (``gold.promote_answer``)."""
    _project(session, project_id)
    rows = gold.expert_answers(session=session, project_id=project_id, limit=limit, offset=offset)
    total = session.exec(
        select(func.count())
        .select_from(Annotation)
        .join(Task, col(Task.id) == col(Annotation.task_id))
        .join(Assignment, gold.own_assignment())
        .where(col(Task.project_id) == project_id, col(Assignment.expert).is_(True))
    ).one()
    where = {
        s.id: (s.index, public_id)
        for s, public_id in session.exec(
            select(Slice, Case.public_id)
            .join(Case, col(Case.id) == col(Slice.case_id))
            .where(col(Slice.id).in_([row[1] for row in rows]))
        )
    }
    items = [
        AnswerItem(
            slice_id=slice_id,
            case=where[slice_id][1],
            index=where[slice_id][0],
            annotation_id=annotation.id or 0,
            expert=name,
            lesion_pixels=annotation.lesion_pixels,
            is_gold_slice=bool(is_gold),
            created_at=annotation.created_at,
        )
        for annotation, slice_id, name, is_gold in rows
    ]
    return AnswerPage(
        total=int(total),
        offset=offset,
        limit=limit,
        items=items,
        sprite=thumbs.sprite_of([i.slice_id for i in items], thumbs.Mark.none),
    )


# --- one slice in detail ------------------------------------------------------------------


def _mask_read(mask: NDArray[np.bool_]) -> MaskRead:
    h, w = mask.shape
    return MaskRead(width=w, height=h, counts=encode_rle(mask.astype(np.uint8)))


def _answers(
    session: Session, task_id: int, project_id: int
) -> list[tuple[Annotation, str, bool, TrustLevel | None, bool]]:
    """A task's answers, oldest first: (answer, pseudonym, by an expert, the rater's trust,
    whether their labels are held out of fusion)."""
    rows = session.exec(
        select(Annotation, User.display_name, Assignment.expert)
        .join(Assignment, gold.own_assignment())
        .join(User, col(User.id) == col(Annotation.user_id))
        .where(Annotation.task_id == task_id)
        .order_by(col(Annotation.id))
    ).all()
    stats = {
        s.user_id: s
        for s in session.exec(
            select(RaterStats).where(
                RaterStats.project_id == project_id,
                col(RaterStats.user_id).in_([a.user_id for a, _, _ in rows]),
            )
        )
    }
    found = []
    for annotation, name, expert in rows:
        mine = stats.get(annotation.user_id)
        trust = mine.trust if mine else None
        held = mine is not None and (
            mine.trust is TrustLevel.suspended or mine.flagged_reason is not None
        )
        found.append((annotation, name, bool(expert), trust, held))
    return found


def _rejections(session: Session, slice_id: int) -> list[RejectionRead]:
    rows = session.exec(
        select(SliceRejection)
        .where(SliceRejection.slice_id == slice_id)
        .order_by(col(SliceRejection.id))
    ).all()
    return [RejectionRead.model_validate(r, from_attributes=True) for r in rows]


def slice_detail(*, session: Session, storage: Storage, slice_id: int) -> SliceDetailRead:
    """A slice with its images, neighbours and every mask on it: reference, current gold,
    the fused label of its crowd task and each answer to it (named by pseudonym, volunteers'
    Dice against the gold, else the reference)."""
    slice_, case = slice_and_case(session, slice_id)
    project = _project(session, case.project_id)
    neighbours = [
        NeighbourRead(
            offset=row["index"] - slice_.index, images=image_urls(row["id"], row["image_keys"])
        )
        for row in session.execute(slices_statement(), {"slice": slice_id}).mappings()
        if row["id"] != slice_id
    ]
    overlays: list[OverlayRead] = []
    truth: NDArray[np.bool_] | None = None
    versions = session.exec(select(GoldVersion).where(GoldVersion.slice_id == slice_id)).all()
    current = next((v for v in versions if v.retired_at is None), None)
    if slice_.reference_key is not None:
        truth = gold.read_mask(storage, slice_.reference_key)
        overlays.append(_overlay("reference", "reference", "Reference", truth))
    if current is not None:
        truth = gold.read_mask(storage, current.mask_key)
        label = f"Gold v{current.version}"
        overlays.append(_overlay("gold", "gold", label, truth))
    task = session.exec(
        select(Task)
        .where(Task.slice_id == slice_id, Task.kind == TaskKind.normal)
        .order_by(col(Task.id).desc())
    ).first()
    fused_version, entropy = None, None
    if task is not None and task.id is not None:
        fused = labels.newest(session, project.id or 0, [task.id]).get(task.id)
        if fused is not None and fused.soft_key is not None:
            soft = labels.read_soft(storage, fused.soft_key)
            fused_version, entropy = fused.version, fused_entropy(soft)
            label = f"Fused label v{fused.version}"
            overlays.append(_overlay("fused", "fused", label, soft >= 0.5))
        for annotation, name, expert, trust, held in _answers(session, task.id, project.id or 0):
            mask = gold.read_mask(storage, annotation.mask_key)
            overlay = _overlay(
                f"answer-{annotation.id}", "expert" if expert else "volunteer", name, mask
            )
            overlay.annotation_id, overlay.user_id = annotation.id, annotation.user_id
            if not expert:
                overlay.trust, overlay.excluded = trust, held
            if truth is not None:
                overlay.dice = metrics.dice(truth, mask)
            overlays.append(overlay)
    rejections = _rejections(session, slice_id)
    candidate = (
        slice_.reference_key is not None
        and not versions
        and case.public_id not in project.holdout_cases
        and not case.tutorial
        and not any(r.kind is RejectionKind.candidate for r in rejections)
    )
    return SliceDetailRead(
        slice_id=slice_id,
        case=case.public_id,
        index=slice_.index,
        width=slice_.width,
        height=slice_.height,
        stratum=gold_pool.slice_stratum(session=session, slice_id=slice_id, storage=storage),
        images=image_urls(slice_id, slice_.image_keys),
        neighbours=neighbours,
        task_id=None if task is None else task.id,
        gold_version_id=None if current is None else current.id,
        candidate=candidate,
        fused_version=fused_version,
        entropy=entropy,
        overlays=overlays,
        rejections=rejections,
    )


def _overlay(key: str, kind: str, label: str, mask: NDArray[np.bool_]) -> OverlayRead:
    return OverlayRead.model_validate(
        {
            "key": key,
            "kind": kind,
            "label": label,
            "pixels": int(np.count_nonzero(mask)),
            "mask": _mask_read(mask),
        }
    )


# --- setting slices aside -----------------------------------------------------------------


def reject(
    *, session: Session, slice_id: int, kind: RejectionKind, reason: str, expert_id: int
) -> SliceRejection:
    """An expert sets a slice aside, with a reason: a gold candidate leaves the pool for good
    (``refill`` never approves it), a gold slice is retired (its versions and scores stay), a
    review item leaves the review queue."""
    slice_, case = slice_and_case(session, slice_id)
    if kind is RejectionKind.candidate:
        if slice_.reference_key is None:
            raise Conflict(f"Slice {slice_id} has no reference mask: it is not a gold candidate")
        ever_gold = session.exec(
            select(GoldVersion.id).where(GoldVersion.slice_id == slice_id)
        ).first()
        if ever_gold is not None:
            raise Conflict(f"Slice {slice_id} is or was gold: reject it as gold instead")
        before = session.exec(
            select(SliceRejection.id).where(
                SliceRejection.slice_id == slice_id, SliceRejection.kind == kind
            )
        ).first()
        if before is not None:
            raise Conflict(f"Slice {slice_id} was rejected as a gold candidate already")
    elif kind is RejectionKind.gold:
        gold.retire_gold(session=session, slice_id=slice_id)
    else:
        task = session.exec(
            select(Task.id).where(Task.slice_id == slice_id, Task.kind == TaskKind.normal)
        ).first()
        if task is None:
            raise NotFound(f"Slice {slice_id} has no crowd task to review")
    rejection = SliceRejection(
        slice_id=slice_id,
        project_id=case.project_id,
        kind=kind,
        reason=reason,
        by_user_id=expert_id,
    )
    session.add(rejection)
    session.flush()
    return rejection
