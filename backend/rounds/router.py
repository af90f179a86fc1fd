"""``/api/rounds``: engineers and admins start, watch and close active-learning rounds."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlmodel import Session

from backend.auth.deps import require_role
from backend.auth.models import User, UserRole
from backend.core.deps import SessionDep, StorageDep
from backend.core.errors import error_responses
from backend.core.validation import MAX_DB_ID, PathId
from backend.rounds import service
from backend.rounds.models import Round
from backend.rounds.schemas import (
    DEFAULT_STRATEGY,
    STRATEGY_HELP,
    CurvePointRead,
    RoundClose,
    RoundCreate,
    RoundModel,
    RoundRead,
    StrategyRead,
)

router = APIRouter(prefix="/rounds", tags=["rounds"], responses=error_responses(401, 403, 404))
Engineer = Annotated[User, Depends(require_role(UserRole.engineer))]
ProjectQuery = Annotated[int, Query(ge=1, le=MAX_DB_ID)]


def read(session: Session, round_: Round) -> RoundRead:
    """A round as the API shows it (with its labelling progress and its model)."""
    assert round_.id is not None
    labelling = service.labelling_of(session, round_)
    version = service.model_of(session, round_)
    model = None
    if version is not None and version.id is not None:
        metrics = version.metrics
        model = RoundModel(
            id=version.id,
            status=version.status.value,
            dice=metrics.get("dice"),
            lesion_f1=metrics.get("lesion_f1"),
            device=version.device,
            steps=metrics.get("steps"),
            seconds=metrics.get("seconds"),
            withdrawn_cases=list(version.withdrawn_cases or []),
        )
    return RoundRead(
        id=round_.id,
        project_id=round_.project_id,
        number=round_.number,
        status=round_.status.value,
        strategy=round_.strategy,
        selected_by=round_.selected_by,
        budget=round_.budget,
        config=round_.config,
        minutes=round_.minutes,
        selected=len(round_.selected),
        labelled=labelling.labelled,
        labelled_needed=labelling.needed,
        training_slices=labelling.training,
        training_chosen=labelling.training_chosen,
        labels_used=round_.labels_used,
        scored_slices=round_.scored_slices,
        progress=round_.progress,
        eta_seconds=round_.eta_seconds,
        detail=round_.detail,
        error=round_.error,
        model=model,
        created_at=round_.created_at,
        updated_at=round_.updated_at,
        closed_at=round_.closed_at,
    )


@router.get("", response_model=list[RoundRead])
def list_rounds(project_id: ProjectQuery, _user: Engineer, session: SessionDep) -> list[RoundRead]:
    """The project's rounds, oldest first, with the running stage's progress and ETA."""
    return [read(session, r) for r in service.rounds_of(session, project_id)]


@router.post(
    "", response_model=RoundRead, status_code=201, responses=error_responses(400, 409, 422)
)
def start_round(
    body: RoundCreate, _user: Engineer, session: SessionDep, storage: StorageDep
) -> RoundRead:
    """Start the project's next round: choose ``budget`` slices with ``strategy`` (on the
    newest pool scores; cold start without them) and put them first in the queue."""
    round_ = service.start_round(
        session,
        storage,
        project_id=body.project_id,
        strategy=body.strategy,
        budget=body.budget,
        config=body.config,
        minutes=body.minutes,
        seed=body.seed,
    )
    return read(session, round_)


@router.get("/strategies", response_model=list[StrategyRead])
def strategies(_user: Engineer) -> list[StrategyRead]:
    """The selection strategies a round may use, each in one line; the default first."""
    return [
        StrategyRead(
            name=name,
            help=text,
            needs_model=name in service.SCORED,
            default=name == DEFAULT_STRATEGY,
        )
        for name, text in STRATEGY_HELP.items()
    ]


@router.get("/curve", response_model=list[CurvePointRead])
def learning_curve(
    project_id: ProjectQuery, _user: Engineer, session: SessionDep
) -> list[CurvePointRead]:
    """Per round with a model: the labelled slices it trained on, and its Dice and lesion F1
    on the held-out cases (never trained on) against their expert masks."""
    return [CurvePointRead(**vars(point)) for point in service.learning_curve(session, project_id)]


@router.get("/{round_id}", response_model=RoundRead)
def get_round(round_id: PathId, _user: Engineer, session: SessionDep) -> RoundRead:
    return read(session, service.get_round(session, round_id))


@router.post(
    "/{round_id}/close",
    response_model=RoundRead,
    responses=error_responses(
        400,
        409,
        422,
        e409="`too_few_labelled`: fewer of the chosen slices are labelled than closing needs "
        "(`labelled_needed`); send `force: true` to close anyway. `round_not_labelling`: "
        "its labelling is already closed",
    ),
)
def close_labelling(
    round_id: PathId, _user: Engineer, session: SessionDep, body: RoundClose | None = None
) -> RoundRead:
    """End the round's labelling: the workers fuse, train and score, in that order. Refused
    while fewer of its chosen slices are labelled than ``labelled_needed`` (half of them,
    ``service.CLOSE_SHARE``), unless ``force``."""
    force = body is not None and body.force
    return read(session, service.close_labelling(session, round_id, force=force))


@router.post("/{round_id}/resume", response_model=RoundRead, responses=error_responses(409))
def resume(round_id: PathId, _user: Engineer, session: SessionDep) -> RoundRead:
    """Send the job of the round's stage again, after it failed or its worker died."""
    return read(session, service.resume(session, round_id))
