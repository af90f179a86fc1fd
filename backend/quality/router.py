"""``/api/quality``: gold samples for experts; ``/api/annotations``: a volunteer's feedback."""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from sqlmodel import Session
from sqlmodel import select as orm_select

from backend.annotations.models import Annotation
from backend.auth.deps import CredentialsDep, authenticate_with, require_role
from backend.auth.models import TokenScope, User, UserRole
from backend.core.deps import DatabaseDep, SessionDep, SettingsDep, StorageDep
from backend.core.errors import NotFound, error_responses
from backend.core.http import no_store_png
from backend.core.storage import BlobNotFound
from backend.core.validation import MAX_DB_ID, PathId
from backend.quality import consistency, gold, review, service
from backend.quality.gold_pool import Stratum
from backend.quality.models import GoldSource, GoldVersion
from backend.quality.reliability import Beta, reliability
from backend.quality.schemas import (
    ExpertAnswerRead,
    GoldCandidateRead,
    GoldCreate,
    GoldScoreRead,
    GoldSliceRead,
    GoldVersionRead,
    Interval,
    RaterActionRead,
    RaterDecision,
    RaterRead,
    ReviewItemRead,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["quality"], responses=error_responses(401, 403))
ExpertUser = Annotated[User, Depends(require_role(UserRole.expert))]
PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "An 8-bit PNG"}
}


def _version_read(version: GoldVersion) -> GoldVersionRead:
    assert version.id is not None
    return GoldVersionRead(
        **version.model_dump(exclude={"mask_key", "retired_at"}),
        mask_url=f"/api/quality/gold/{version.id}/mask.png",
    )


@router.get(
    "/quality/gold-candidates",
    response_model=list[GoldCandidateRead],
    responses=error_responses(404, e404="No such project"),
)
def gold_candidates(
    _expert: ExpertUser,
    session: SessionDep,
    storage: StorageDep,
    project_id: Annotated[int, Query(ge=1, le=MAX_DB_ID)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    stratum: Annotated[
        Stratum | None, Query(description="Only slices of this lesion-load stratum")
    ] = None,
) -> list[GoldCandidateRead]:
    """Slices of a project with an imported reference mask that were never gold, in the order
    that keeps the gold pool representative (strata of lesion load in the crowd tasks'
    proportions, spread over cases and slice positions), with URLs to preview the FLAIR image
    and the reference mask."""
    rows = gold.gold_candidates(
        session=session,
        project_id=project_id,
        limit=limit,
        offset=offset,
        stratum=stratum,
        storage=storage,
    )
    return [
        GoldCandidateRead(
            slice_id=slice_.id or 0,
            case=case.public_id,
            index=slice_.index,
            reference_pixels=slice_.reference_pixels,
            flair_url=f"/api/slices/{slice_.id}/images/flair.png",
            reference_url=f"/api/slices/{slice_.id}/reference.png",
        )
        for slice_, case in rows
    ]


@router.get("/quality/gold", response_model=list[GoldSliceRead])
def gold_slices(
    _expert: ExpertUser,
    session: SessionDep,
    project_id: Annotated[int, Query(ge=1, le=MAX_DB_ID)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[GoldSliceRead]:
    """The project's gold slices with their current versions, newest first."""
    rows = gold.current_gold_versions(
        session=session, project_id=project_id, limit=limit, offset=offset
    )
    return [
        GoldSliceRead(
            **_version_read(version).model_dump(),
            case=case.public_id,
            index=slice_.index,
            flair_url=f"/api/slices/{slice_.id}/images/flair.png",
        )
        for version, slice_, case in rows
    ]


@router.post(
    "/quality/slices/{slice_id}/gold",
    status_code=status.HTTP_201_CREATED,
    response_model=GoldVersionRead,
    responses=error_responses(
        400, 404, 409, 422, e409="The slice has no reference mask to approve"
    ),
)
def make_gold(
    slice_id: PathId,
    body: GoldCreate,
    expert: ExpertUser,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
) -> GoldVersionRead:
    """Make a slice gold (a new version when it already is): approve its reference mask, or
    send the mask you painted (``source: expert``, PNG or RLE at the slice size)."""
    assert expert.id is not None
    version = gold.make_gold(
        session=session,
        storage=storage,
        slice_id=slice_id,
        source=GoldSource(body.source),
        mask=body.mask,
        expert_id=expert.id,
        max_mask_bytes=settings.max_mask_bytes,
    )
    return _version_read(version)


@router.delete(
    "/quality/slices/{slice_id}/gold",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
)
def retire_gold(slice_id: PathId, _expert: ExpertUser, session: SessionDep) -> Response:
    """Stop serving a slice as gold; its versions and the scores made with them stay."""
    gold.retire_gold(session=session, slice_id=slice_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/quality/slices/{slice_id}/gold",
    response_model=list[GoldVersionRead],
    responses=error_responses(404),
)
def gold_versions(
    slice_id: PathId, _expert: ExpertUser, session: SessionDep
) -> list[GoldVersionRead]:
    """Every gold version of a slice, newest first."""
    versions = session.exec(
        orm_select(GoldVersion)
        .where(GoldVersion.slice_id == slice_id)
        .order_by(GoldVersion.version.desc())  # type: ignore[attr-defined]
    ).all()
    return [_version_read(v) for v in versions]


@router.get(
    "/quality/gold/{version_id}/mask.png",
    response_class=Response,
    responses={**PNG_RESPONSE, **error_responses(404)},
)
def gold_mask(
    version_id: PathId, _expert: ExpertUser, session: SessionDep, storage: StorageDep
) -> Response:
    """A gold version's frozen mask (experts)."""
    version = session.get(GoldVersion, version_id)
    if version is None:
        raise NotFound(f"Gold version {version_id} does not exist")
    return no_store_png(storage.get(version.mask_key))


@router.get(
    "/annotations/{annotation_id}/feedback.png",
    response_class=Response,
    responses={**PNG_RESPONSE, **error_responses(404)},
)
async def feedback_overlay(
    annotation_id: PathId, credentials: CredentialsDep, database: DatabaseDep, storage: StorageDep
) -> Response:
    """Your answer to a check task over the expert's mask: hits, misses and false alarms.

    Lean, as the lease's images are (the studio loads it after every check answer): one
    statement authenticates and finds the overlay, and the file is read after the
    transaction."""

    def work(session: Session) -> str:
        # A GET needs a token's read scope (``auth.deps.required_scope``).
        _caller, row = authenticate_with(
            session,
            credentials,
            TokenScope.read,
            gold.caller_feedback_statement(),
            {"annotation": annotation_id},
        )
        if row.overlay_key is None:
            # The same answer whether it does not exist, is not gold or is someone else's.
            raise NotFound(f"No feedback for an answer {annotation_id} of yours")
        return str(row.overlay_key)

    def read(key: str) -> bytes:
        try:
            return storage.get(key)
        except BlobNotFound:
            log.exception("the feedback overlay of answer %s is missing", annotation_id)
            raise NotFound(f"No feedback for an answer {annotation_id} of yours") from None

    return no_store_png(await database.run_then(work, read))


def _interval(beta: Beta) -> Interval:
    low, high = beta.bounds()
    return Interval(mean=beta.mean, low=low, high=high)


def _rater_read(row: service.RaterRow) -> RaterRead:
    rel, stats, totals = reliability(row.totals), row.stats, row.totals
    s, p = rel.lesion_sensitivity.mean, rel.lesion_ppv.mean
    return RaterRead(
        user_id=stats.user_id,
        display_name=row.display_name,
        trust=stats.trust,
        suspended_reason=stats.suspended_reason,
        flagged_reason=stats.flagged_reason,
        answered=stats.answered,
        last_active=stats.updated_at,
        gold=stats.gold,
        sensitivity=_interval(rel.sensitivity),
        specificity=_interval(rel.specificity),
        lesion_sensitivity=_interval(rel.lesion_sensitivity),
        lesion_ppv=_interval(rel.lesion_ppv),
        lesion_f1=2 * s * p / (s + p),
        quality=rel.quality,
        consistency=rel.consistency,
        repeats=totals.repeats,
        mean_seconds=stats.duration_ms_sum / stats.answered / 1000 if stats.answered else None,
        fast_share=totals.fast / totals.timed if totals.timed else None,
    )


ProjectQuery = Annotated[int, Query(ge=1, le=MAX_DB_ID, description="The project")]


@router.get("/quality/raters", response_model=list[RaterRead])
def raters(_expert: ExpertUser, session: SessionDep, project_id: ProjectQuery) -> list[RaterRead]:
    """The project's raters with their reliability, suspended and least reliable first."""
    return [_rater_read(r) for r in service.rater_table(session=session, project_id=project_id)]


@router.get("/quality/raters/{user_id}/history", response_model=list[GoldScoreRead])
def rater_history(
    user_id: PathId, _expert: ExpertUser, session: SessionDep, project_id: ProjectQuery
) -> list[GoldScoreRead]:
    """A rater's gold answers in the project, oldest first (their history chart)."""
    rows = service.rater_history(session=session, project_id=project_id, user_id=user_id)
    return [GoldScoreRead.model_validate(r, from_attributes=True) for r in rows]


@router.get("/quality/raters/{user_id}/actions", response_model=list[RaterActionRead])
def rater_actions(
    user_id: PathId, _expert: ExpertUser, session: SessionDep, project_id: ProjectQuery
) -> list[RaterActionRead]:
    """Suspensions and reinstatements of a rater in the project: who, when and why."""
    rows = service.rater_actions(session=session, project_id=project_id, user_id=user_id)
    return [RaterActionRead.model_validate(r, from_attributes=True) for r in rows]


def _decide(
    user_id: int, body: RaterDecision, expert: User, session: Session, *, suspend: bool
) -> RaterRead:
    assert expert.id is not None
    service.set_suspension(
        session=session,
        project_id=body.project_id,
        user_id=user_id,
        suspend=suspend,
        reason=body.reason,
        expert_id=expert.id,
    )
    return _rater_row(session, body.project_id, user_id)


def _rater_row(session: Session, project_id: int, user_id: int) -> RaterRead:
    (row,) = [
        r
        for r in service.rater_table(session=session, project_id=project_id)
        if r.stats.user_id == user_id
    ]
    return _rater_read(row)


@router.post(
    "/quality/raters/{user_id}/suspend",
    response_model=RaterRead,
    responses=error_responses(400, 404, 422),
)
def suspend_rater(
    user_id: PathId, body: RaterDecision, expert: ExpertUser, session: SessionDep
) -> RaterRead:
    """Suspend a rater in a project: no more real tasks, labels left out of fusion."""
    return _decide(user_id, body, expert, session, suspend=True)


@router.post(
    "/quality/raters/{user_id}/reinstate",
    response_model=RaterRead,
    responses=error_responses(400, 404, 409, 422, e409="The rater is not suspended"),
)
def reinstate_rater(
    user_id: PathId, body: RaterDecision, expert: ExpertUser, session: SessionDep
) -> RaterRead:
    """Reinstate a suspended rater: the automatic rules then judge only the answers they give
    from now on (a fresh window of evidence, not immunity)."""
    return _decide(user_id, body, expert, session, suspend=False)


@router.post(
    "/quality/raters/{user_id}/clear-flag",
    response_model=RaterRead,
    responses=error_responses(400, 404, 409, 422, e409="The rater is not flagged"),
)
def clear_flag(
    user_id: PathId, body: RaterDecision, expert: ExpertUser, session: SessionDep
) -> RaterRead:
    """Clear a rater the consistency check flagged (gold far better than their agreement
    with the crowd): their labels return to fusion, and the check starts afresh."""
    assert expert.id is not None
    consistency.clear_flag(
        session,
        project_id=body.project_id,
        user_id=user_id,
        expert_id=expert.id,
        reason=body.reason,
    )
    return _rater_row(session, body.project_id, user_id)


@router.get("/quality/expert-answers", response_model=list[ExpertAnswerRead])
def expert_answers(
    _expert: ExpertUser,
    session: SessionDep,
    project_id: ProjectQuery,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ExpertAnswerRead]:
    """Experts' answers in the project, newest first: candidates for gold."""
    rows = gold.expert_answers(session=session, project_id=project_id, limit=limit, offset=offset)
    return [
        ExpertAnswerRead(
            annotation_id=annotation.id,
            slice_id=slice_id,
            expert=name,
            lesion_pixels=annotation.lesion_pixels,
            created_at=annotation.created_at,
            is_gold_slice=bool(is_gold),
            mask_url=f"/api/quality/annotations/{annotation.id}/mask.png",
            flair_url=f"/api/slices/{slice_id}/images/flair.png",
        )
        for annotation, slice_id, name, is_gold in rows
    ]


@router.get(
    "/quality/annotations/{annotation_id}/mask.png",
    response_class=Response,
    responses={**PNG_RESPONSE, **error_responses(404)},
)
def annotation_mask(
    annotation_id: PathId, _expert: ExpertUser, session: SessionDep, storage: StorageDep
) -> Response:
    """Any stored answer's mask (experts: review and adjudication)."""
    annotation = session.get(Annotation, annotation_id)
    if annotation is None:
        raise NotFound(f"Answer {annotation_id} does not exist")
    return no_store_png(storage.get(annotation.mask_key))


@router.post(
    "/quality/annotations/{annotation_id}/gold",
    status_code=status.HTTP_201_CREATED,
    response_model=GoldVersionRead,
    responses=error_responses(404, 409, e409="Not an expert's answer"),
)
def promote_answer(
    annotation_id: PathId, expert: ExpertUser, session: SessionDep, storage: StorageDep
) -> GoldVersionRead:
    """Make an expert's answer the gold of its slice (a new gold version)."""
    assert expert.id is not None
    version = gold.promote_answer(
        session=session, storage=storage, annotation_id=annotation_id, expert_id=expert.id
    )
    return _version_read(version)


@router.get("/quality/review", response_model=list[ReviewItemRead])
def review_queue(
    _expert: ExpertUser,
    session: SessionDep,
    storage: StorageDep,
    project_id: ProjectQuery,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[ReviewItemRead]:
    """Slices for an expert to adjudicate: those fusion escalated (uncertain after the
    project's max_labels) first, then those where volunteers disagree most (lowest mean
    pairwise Dice); an expert's mask for one becomes gold through POST .../gold."""
    items = review.review_queue(
        session=session, storage=storage, project_id=project_id, limit=limit
    )
    return [
        ReviewItemRead(
            task_id=item.task_id,
            slice_id=item.slice_id,
            mean_dice=item.mean_dice,
            min_dice=item.min_dice,
            max_dice=item.max_dice,
            escalated=item.escalated,
            flair_url=f"/api/slices/{item.slice_id}/images/flair.png",
            mask_urls=[f"/api/quality/annotations/{a}/mask.png" for a in item.annotation_ids],
        )
        for item in items
    ]
