"""``/api/quality/workspace``: the expert workspace's lists (gold candidates, gold, the review
queue), each page in one request with one thumbnail sprite, and one slice in detail with every
mask on it. Experts and admins only: volunteers' pseudonyms and masks are never shown to
anyone else."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from backend.auth.deps import require_role
from backend.auth.models import User, UserRole
from backend.core.deps import SessionDep, StorageDep
from backend.core.errors import error_responses
from backend.core.http import no_store_png
from backend.core.validation import MAX_DB_ID, PathId
from backend.quality import thumbs, workspace_review, workspace_service
from backend.quality.gold_pool import Stratum
from backend.quality.workspace_schemas import (
    AnswerPage,
    CandidatePage,
    EmptyFilter,
    GoldPage,
    RejectCreate,
    RejectionRead,
    ReviewPage,
    ReviewSort,
    SliceDetailRead,
)

router = APIRouter(
    prefix="/quality/workspace",
    tags=["expert workspace"],
    responses=error_responses(401, 403, 404),
)
ExpertUser = Annotated[User, Depends(require_role(UserRole.expert))]
ProjectQuery = Annotated[int, Query(ge=1, le=MAX_DB_ID, description="The project")]
Limit = Annotated[int, Query(ge=1, le=100, description="Rows per page")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows skipped")]
CaseQuery = Annotated[
    str | None, Query(max_length=32, description="Only this case (its public id)")
]
SLICE_LIST = rf"^[0-9]{{1,10}}(,[0-9]{{1,10}}){{0,{thumbs.MAX_TILES - 1}}}$"


@router.get("/candidates", response_model=CandidatePage)
def candidates(
    _expert: ExpertUser,
    session: SessionDep,
    storage: StorageDep,
    project_id: ProjectQuery,
    limit: Limit = 24,
    offset: Offset = 0,
    case: CaseQuery = None,
    stratum: Annotated[Stratum | None, Query(description="Only this lesion load")] = None,
    empty: Annotated[
        EmptyFilter, Query(description="Slices without a lesion: include, exclude or only")
    ] = EmptyFilter.include,
) -> CandidatePage:
    """Gold candidates, a page at a time in the pool's spread order (strata of lesion load
    in the crowd's proportions, spread over cases and slice positions, so a page does not
    dwell on one lesion), with the total, the filters' counts and the page's thumbnails."""
    return workspace_service.candidate_page(
        session=session,
        storage=storage,
        project_id=project_id,
        limit=limit,
        offset=offset,
        case=case,
        stratum=stratum,
        empty=empty,
    )


@router.get("/gold", response_model=GoldPage)
def gold(
    _expert: ExpertUser,
    session: SessionDep,
    project_id: ProjectQuery,
    limit: Limit = 24,
    offset: Offset = 0,
    case: CaseQuery = None,
) -> GoldPage:
    """Current gold slices, newest first, a page at a time with the total."""
    return workspace_service.gold_page(
        session=session, project_id=project_id, limit=limit, offset=offset, case=case
    )


@router.get("/answers", response_model=AnswerPage)
def answers(
    _expert: ExpertUser,
    session: SessionDep,
    project_id: ProjectQuery,
    limit: Limit = 24,
    offset: Offset = 0,
) -> AnswerPage:
    """Experts' answers to crowd tasks, newest first, a page at a time with the total; any of
    them can become its slice's gold (``POST /api/quality/annotations/{id}/gold``)."""
    return workspace_service.answer_page(
        session=session, project_id=project_id, limit=limit, offset=offset
    )


@router.get("/review", response_model=ReviewPage)
def review(
    _expert: ExpertUser,
    session: SessionDep,
    storage: StorageDep,
    project_id: ProjectQuery,
    sort: Annotated[
        ReviewSort, Query(description="uncertainty: fused entropy; disagreement: pairwise Dice")
    ] = ReviewSort.uncertainty,
    limit: Limit = 24,
    offset: Offset = 0,
) -> ReviewPage:
    """Slices the volunteers disagree on, most uncertain fused label (or least agreement)
    first, with the raters' pseudonyms."""
    return workspace_review.review_page(
        session=session,
        storage=storage,
        project_id=project_id,
        sort=sort,
        limit=limit,
        offset=offset,
    )


@router.get("/slices/{slice_id}", response_model=SliceDetailRead)
def slice_detail(
    slice_id: PathId, _expert: ExpertUser, session: SessionDep, storage: StorageDep
) -> SliceDetailRead:
    """One slice for the detail pane: image URLs, neighbours, and every mask on it as run
    lengths (reference, gold, fused label, each answer named by its rater's pseudonym)."""
    return workspace_service.slice_detail(session=session, storage=storage, slice_id=slice_id)


@router.post(
    "/slices/{slice_id}/reject",
    status_code=status.HTTP_201_CREATED,
    response_model=RejectionRead,
    responses=error_responses(400, 409, 422, e409="Not a candidate, or already gold"),
)
def reject(
    slice_id: PathId, body: RejectCreate, expert: ExpertUser, session: SessionDep
) -> RejectionRead:
    """Set a slice aside with a reason: a gold candidate leaves the pool for good, a gold
    slice is retired, a review item leaves the queue."""
    assert expert.id is not None
    rejection = workspace_service.reject(
        session=session,
        slice_id=slice_id,
        kind=body.kind,
        reason=body.reason,
        expert_id=expert.id,
    )
    return RejectionRead.model_validate(rejection, from_attributes=True)


@router.get(
    "/sprite.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "A palette PNG"}},
)
def sprite(
    _expert: ExpertUser,
    session: SessionDep,
    storage: StorageDep,
    slices: Annotated[str, Query(pattern=SLICE_LIST, description="Slice ids, comma-separated")],
    mark: thumbs.Mark = thumbs.Mark.none,
) -> Response:
    """A list page's thumbnails in one PNG (``SpriteRead`` says where each one is), outlined
    with the mask ``mark`` names. Not cached: it shows expert-only masks."""
    ids = [int(part) for part in slices.split(",")]
    return no_store_png(
        thumbs.page_sprite(session=session, storage=storage, slice_ids=ids, mark=mark)
    )
