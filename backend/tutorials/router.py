"""``/api/tutorials``: practice and qualification items, the qualification test, and the
admin's and expert's levers (tutorial material, a new attempt for a suspended rater)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status
from fastapi import Path as FastPath
from sqlmodel import Session

from backend.auth.deps import CurrentUser, require_role
from backend.auth.models import User, UserRole
from backend.auth.service import Caller
from backend.core.deps import SessionDep, SettingsDep, StorageDep
from backend.core.errors import NotFound, error_responses
from backend.core.http import no_store_png
from backend.core.storage import BlobNotFound
from backend.core.timeutil import utcnow
from backend.core.validation import PathId
from backend.imaging import sprite
from backend.imaging.sprite import NEIGHBOUR_REACH
from backend.imaging.variant import lease_variant
from backend.projects.models import Project
from backend.quality.schemas import RaterDecision
from backend.tutorials import items, material, qualification
from backend.tutorials.content import default_catalog
from backend.tutorials.models import QualificationAttempt, TutorialItem
from backend.tutorials.schemas import (
    AttemptItemRead,
    AttemptRead,
    ItemAnswer,
    ItemAnswerRead,
    ItemFeedbackRead,
    ItemRead,
    QualificationRead,
    ResultRead,
    TutorialCaseIn,
    TutorialCaseRead,
)

router = APIRouter(prefix="/tutorials", tags=["tutorials"], responses=error_responses(401, 403))
ExpertUser = Annotated[User, Depends(require_role(UserRole.expert))]
AdminUser = Annotated[User, Depends(require_role(UserRole.admin))]
ProjectName = Annotated[str, Query(min_length=1, max_length=64, description="The project's name")]


def _volunteer(user: User) -> int:
    """Practice and qualification answers are kept: they need the current consent, as
    labelling does (``auth.service.Caller.require_consent``)."""
    assert user.id is not None
    Caller(
        id=user.id, role=user.role, csrf_token=None, consent_version=user.consent_version
    ).require_consent()
    return user.id


def _attempt_read(session: Session, attempt: QualificationAttempt) -> AttemptRead:
    assert attempt.id is not None
    project = session.get(Project, attempt.project_id)
    assert project is not None
    held = qualification.items_of(session, attempt.id)
    return AttemptRead(
        id=attempt.id,
        project=project.name,
        started_at=attempt.started_at,
        finished_at=attempt.finished_at,
        passed=attempt.passed,
        total=len(held),
        answered=sum(i.answered_at is not None for i in held),
        result=None if attempt.result is None else ResultRead(**attempt.result),
    )


def _item_read(session: Session, item: TutorialItem) -> ItemRead:
    assert item.id is not None
    shown, neighbours = items.slice_read(session, item.id, item.slice_id)
    total = None
    if item.attempt_id is not None:
        total = len(qualification.items_of(session, item.attempt_id))
    return ItemRead(
        id=item.id,
        purpose=item.purpose.value,
        slice=shown,
        neighbours=neighbours,
        lesson_id=item.lesson_id,
        exercise_id=item.exercise_id,
        attempt_id=item.attempt_id,
        position=None if item.position is None else item.position + 1,
        total=total,
    )


@router.get("/qualification", response_model=QualificationRead, responses=error_responses(404, 422))
def qualification_status(
    project: ProjectName, user: CurrentUser, session: SessionDep
) -> QualificationRead:
    """Where you stand with a project's qualification test: required or not, passed, an open
    attempt, the last result, and when you may start the next attempt."""
    assert user.id is not None
    found = qualification._project(session, project)
    assert found.id is not None
    stats = qualification._stats(session, user.id, found.id)
    open_one = qualification.open_attempt(session, user.id, found.id)
    last = qualification.last_finished(session, user.id, found.id)
    wait, started = qualification.next_attempt_at(session, user.id, found, utcnow())
    suspended = stats is not None and stats.trust.value == "suspended"
    return QualificationRead(
        project=found.name,
        required=found.qualification_required and user.role is UserRole.volunteer,
        ready=material.has_material(session),
        qualified=stats is not None and stats.qualified_at is not None and not suspended,
        qualified_at=None if stats is None else stats.qualified_at,
        suspended=suspended,
        may_requalify=suspended and qualification.may_requalify(session, user.id, found.id),
        items=found.qualification_items,
        thresholds={
            "lesion_f1": found.qualification_min_f1,
            "dice": found.qualification_min_dice,
            "clean": found.qualification_min_clean,
        },
        open_attempt=None if open_one is None else _attempt_read(session, open_one),
        last_attempt=None if last is None else _attempt_read(session, last),
        attempts_today=started,
        attempts_per_day=found.qualification_attempts_per_day,
        next_attempt_at=wait,
    )


@router.post(
    "/qualification",
    response_model=AttemptRead,
    responses=error_responses(
        403,
        404,
        409,
        422,
        429,
        e409="Already qualified, or no tutorial material to draw a test from",
    ),
)
def start_qualification(
    project: ProjectName, user: CurrentUser, session: SessionDep
) -> AttemptRead:
    """Start a qualification attempt (or get back the one you have open). Its items are drawn
    now, from slices you have not had before where there are enough."""
    _volunteer(user)
    attempt = qualification.start(session=session, user=user, project_name=project)
    return _attempt_read(session, attempt)


@router.post(
    "/qualification/{attempt_id}/next",
    response_model=ItemRead,
    responses={
        204: {"description": "Every item of the attempt is answered"},
        **error_responses(404, 409, e409="The attempt is finished"),
    },
)
def next_qualification_item(
    attempt_id: PathId, user: CurrentUser, session: SessionDep
) -> ItemRead | Response:
    """The next unanswered item of your open attempt, shown like a task."""
    item = qualification.next_item(session, _volunteer(user), attempt_id)
    if item is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return _item_read(session, item)


@router.get(
    "/qualification/{attempt_id}/items",
    response_model=list[AttemptItemRead],
    responses=error_responses(404),
)
def attempt_items(
    attempt_id: PathId, user: CurrentUser, session: SessionDep
) -> list[AttemptItemRead]:
    """Your attempt's items in order (their feedback comes from each item's feedback route
    once the attempt is finished)."""
    assert user.id is not None
    attempt = qualification.own_attempt(session, user.id, attempt_id)
    return [
        AttemptItemRead(
            id=item.id or 0,
            position=(item.position or 0) + 1,
            answered=item.answered_at is not None,
            revealed=attempt.finished_at is not None,
        )
        for item in qualification.items_of(session, attempt_id)
    ]


@router.post(
    "/items/{item_id}/answer",
    response_model=ItemAnswerRead,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        400, 404, 409, 422, e409="Already answered, or its attempt is finished"
    ),
)
def answer_item(
    item_id: PathId,
    body: ItemAnswer,
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    accept_language: Annotated[str | None, Header(max_length=500)] = None,
) -> ItemAnswerRead:
    """Answer a practice or qualification item with your mask. Practice: the feedback at
    once. Qualification: the attempt's progress, and with the last item its verdict; each
    item's feedback once the attempt is finished."""
    item, scored, attempt = qualification.submit_answer(
        session=session,
        storage=storage,
        user_id=_volunteer(user),
        item_id=item_id,
        mask_in=body.mask,
        max_mask_bytes=settings.max_mask_bytes,
        now=utcnow(),
    )
    if attempt is None:
        feedback = _feedback(item, scored, inline=True)
        catalog = default_catalog()
        lesson = catalog.lesson(item.lesson_id or "", catalog.pick_language(accept_language))
        feedback.explanation = lesson.exercise(item.exercise_id or "").explanation
        return ItemAnswerRead(item_id=item_id, feedback=feedback)
    return ItemAnswerRead(item_id=item_id, attempt=_attempt_read(session, attempt))


def _feedback(item: TutorialItem, scored: items.Scored, *, inline: bool) -> ItemFeedbackRead:
    s = scored.score
    return ItemFeedbackRead(
        dice=round(s.dice, 4),
        lesion_f1=round(s.lesion_f1, 4),
        lesions_reference=s.lesions_reference,
        lesions_found=s.lesions_found,
        lesions_missed=s.lesions_reference - s.lesions_found,
        false_alarms=s.false_alarms,
        overlay_url=f"/api/tutorials/items/{item.id}/feedback.png",
        overlay_png=items.data_url(scored.overlay) if inline else None,
        mimic=s.mimic,
    )


@router.get(
    "/items/{item_id}/feedback",
    response_model=ItemFeedbackRead,
    responses=error_responses(404, 409, e409="Not answered yet, or its attempt is not finished"),
)
def item_feedback(
    item_id: PathId, user: CurrentUser, session: SessionDep, storage: StorageDep
) -> ItemFeedbackRead:
    """An answered item's feedback (a qualification item's once its attempt is finished)."""
    assert user.id is not None
    item = items.own_item(session, user.id, item_id)
    if not items.revealed(session, item):
        raise qualification.NotRevealed("The expected answer is shown once the item is answered")
    return _feedback(item, items.stored_score(session, storage, item), inline=False)


@router.get(
    "/items/{item_id}/feedback.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **error_responses(404, 409)},
)
def item_feedback_png(
    item_id: PathId, user: CurrentUser, session: SessionDep, storage: StorageDep
) -> Response:
    """Your answer over the expected one (hits, misses, false alarms in colour)."""
    assert user.id is not None
    item = items.own_item(session, user.id, item_id)
    if not items.revealed(session, item):
        raise qualification.NotRevealed("The expected answer is shown once the item is answered")
    return no_store_png(items.stored_score(session, storage, item).overlay)


@router.get(
    "/items/{item_id}/images/{offset}/{contrast}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **error_responses(404)},
)
def item_image(
    item_id: PathId,
    offset: Annotated[int, FastPath(ge=-NEIGHBOUR_REACH, le=NEIGHBOUR_REACH)],
    contrast: Annotated[str, FastPath(max_length=16)],
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> Response:
    """One contrast of your item's slice (offset 0) or a neighbour, in bytes of its own."""
    assert user.id is not None
    item = items.own_item(session, user.id, item_id)
    key = items.image_key(session, item, offset, contrast)
    return _png(storage.get, key, settings.secret_key, f"t{item_id}/{offset}/{contrast}")


@router.get(
    "/items/{item_id}/sprite.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **error_responses(404)},
)
def item_sprite(
    item_id: PathId,
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> Response:
    """Your item's contrasts and its neighbours' FLAIR in one PNG, as a task's sprite."""
    assert user.id is not None
    item = items.own_item(session, user.id, item_id)
    key, frames = items.sprite_of(session, item)

    def read(found: str) -> bytes:
        return sprite.stored_sprite(storage, found, None if storage.exists(found) else frames)

    return _png(read, key, settings.secret_key, f"t{item_id}/sprite")


def _png(read: object, key: str, secret: str, token: str) -> Response:
    assert callable(read)
    try:
        data = lease_variant(read(key), secret.encode(), token)
    except BlobNotFound:
        raise NotFound("No such image of an item of yours") from None
    return Response(
        content=data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"}
    )


@router.post(
    "/cases",
    response_model=TutorialCaseRead,
    responses=error_responses(
        400, 404, 409, 422, e409="The case is held out, has no expert reference, or is not tutorial"
    ),
)
def set_tutorial_case(
    body: TutorialCaseIn, _admin: AdminUser, session: SessionDep, storage: StorageDep
) -> TutorialCaseRead:
    """Set a case aside as tutorial material (``tutorial: true``; its crowd tasks and gold
    retire) or give it back to the crowd (``false``)."""
    if body.tutorial:
        rows = material.use_case(
            session=session, storage=storage, project_name=body.project, public_id=body.case
        )
        return TutorialCaseRead.of(body.project, body.case, rows)
    material.release_case(session=session, project_name=body.project, public_id=body.case)
    return TutorialCaseRead.of(body.project, body.case, [])


@router.post(
    "/raters/{user_id}/requalify",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(400, 404, 409, 422, e409="The rater is not suspended"),
)
def allow_requalify(
    user_id: PathId, body: RaterDecision, expert: ExpertUser, session: SessionDep
) -> None:
    """Let a suspended rater take the project's qualification test again; passing it
    reinstates them (with a fresh window of evidence for the automatic rules)."""
    assert expert.id is not None
    qualification.allow_requalify(
        session=session,
        project_id=body.project_id,
        user_id=user_id,
        reason=body.reason,
        expert_id=expert.id,
    )
