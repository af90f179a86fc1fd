"""``/api/tutorials``: lessons in the caller's language with their progress, figures, practice
items, and the field guide."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi import Path as FastPath
from sqlmodel import Session

from backend.auth.deps import CurrentUser
from backend.auth.models import User
from backend.core.deps import SessionDep, StorageDep
from backend.core.errors import NotFound, error_responses
from backend.core.timeutil import utcnow
from backend.tutorials import lessons, stats
from backend.tutorials.content import SLUG, Catalog, FieldGuideEntry, Lesson, default_catalog
from backend.tutorials.router import ExpertUser, _item_read, _volunteer
from backend.tutorials.schemas import (
    ExerciseRead,
    FieldGuideEntryRead,
    FieldGuideRead,
    FigureRead,
    ItemRead,
    LessonListRead,
    LessonRead,
    LessonSummaryRead,
    TutorialStatsRead,
)

router = APIRouter(prefix="/tutorials", tags=["tutorials"], responses=error_responses(401, 403))
LanguageQuery = Annotated[
    str | None,
    Query(
        alias="lang",
        max_length=35,
        description="A language tag (en, de, pt-BR); default: the browser's Accept-Language",
    ),
]
AcceptLanguage = Annotated[str | None, Header(max_length=500)]
# Lesson, exercise, figure and field-guide ids: the content's slugs.
SlugPath = Annotated[str, FastPath(max_length=64, pattern=SLUG)]


def _language(catalog: Catalog, lang: str | None, accept: str | None) -> str:
    return catalog.pick_language(lang if lang else accept)


def _summary(
    session: Session, user: User, lesson: Lesson, done: dict[str, int]
) -> dict[str, object]:
    assert user.id is not None
    found = lessons.resolved(session, lesson)
    answered = lessons.practised(session, user.id)
    return {
        "id": lesson.id,
        "title": lesson.title,
        "order": lesson.order,
        "version": lesson.version,
        "language": lesson.language,
        "minutes": lesson.minutes,
        "exercises": len(lesson.exercises),
        "exercises_done": sum((lesson.id, e.id) in answered for e in lesson.exercises),
        "completed_version": done.get(lesson.id),
        "complete_material": found.complete,
    }


@router.get("/lessons", response_model=LessonListRead, responses=error_responses(422))
def list_lessons(
    user: CurrentUser,
    session: SessionDep,
    lang: LanguageQuery = None,
    accept_language: AcceptLanguage = None,
) -> LessonListRead:
    """The lessons in order, in your language where translated (else English), with what you
    completed and practised."""
    catalog = default_catalog()
    language = _language(catalog, lang, accept_language)
    assert user.id is not None
    done = lessons.completed_versions(session, user.id)
    return LessonListRead(
        language=language,
        languages=catalog.languages(),
        lessons=[
            LessonSummaryRead(**_summary(session, user, lesson, done))
            for lesson in catalog.lessons(language)
        ],
    )


@router.get("/lessons/{lesson_id}", response_model=LessonRead, responses=error_responses(404, 422))
def get_lesson(
    lesson_id: SlugPath,
    user: CurrentUser,
    session: SessionDep,
    lang: LanguageQuery = None,
    accept_language: AcceptLanguage = None,
) -> LessonRead:
    """One lesson: its text (Markdown), figures (null where this site has no example) and
    exercises."""
    catalog = default_catalog()
    lesson = catalog.lesson(lesson_id, _language(catalog, lang, accept_language))
    assert user.id is not None
    found = lessons.resolved(session, lesson)
    answered = lessons.practised(session, user.id)
    summary = _summary(session, user, lesson, lessons.completed_versions(session, user.id))
    return LessonRead(
        **summary,
        body=lesson.body,
        figures=[
            FigureRead(
                id=f.id,
                caption=f.caption,
                url=None
                if found.figures[f.id] is None
                else f"/api/tutorials/lessons/{lesson.id}/figures/{f.id}.png",
            )
            for f in lesson.figures
        ],
        exercise_list=[
            ExerciseRead(
                id=e.id,
                prompt=e.prompt,
                available=found.exercises[e.id] is not None,
                done=(lesson.id, e.id) in answered,
            )
            for e in lesson.exercises
        ],
    )


@router.get(
    "/lessons/{lesson_id}/figures/{figure_id}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **error_responses(404, 409)},
)
def lesson_figure(
    lesson_id: SlugPath,
    figure_id: SlugPath,
    _user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
) -> Response:
    """A lesson's figure: a tutorial slice with its lesions outlined (rendered once)."""
    lesson = default_catalog().lesson(lesson_id, "en")
    figure = next((f for f in lesson.figures if f.id == figure_id), None)
    if figure is None:
        raise NotFound(f"Lesson {lesson_id!r} has no figure {figure_id!r}")
    found = lessons.resolve(session, figure.material, f"{lesson.id}/{figure.id}")
    if found is None:
        raise lessons.MaterialMissing(
            "This figure's example is not on this site", code="material_missing"
        )
    png = lessons.figure_png(session, storage, found, figure.material.contrast.value)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.post(
    "/lessons/{lesson_id}/complete",
    response_model=LessonSummaryRead,
    responses=error_responses(404, 422),
)
def complete_lesson(
    lesson_id: SlugPath,
    user: CurrentUser,
    session: SessionDep,
    lang: LanguageQuery = None,
    accept_language: AcceptLanguage = None,
) -> LessonSummaryRead:
    """Mark a lesson done at the version you read (kept with that version)."""
    catalog = default_catalog()
    lesson = catalog.lesson(lesson_id, _language(catalog, lang, accept_language))
    lessons.complete(session=session, user=user, lesson=lesson, now=utcnow())
    assert user.id is not None
    done = lessons.completed_versions(session, user.id)
    return LessonSummaryRead(**_summary(session, user, lesson, done))


@router.post(
    "/lessons/{lesson_id}/exercises/{exercise_id}",
    response_model=ItemRead,
    responses=error_responses(404, 409, 422, e409="No example for this exercise on this site"),
)
def practise(
    lesson_id: SlugPath,
    exercise_id: SlugPath,
    user: CurrentUser,
    session: SessionDep,
    lang: LanguageQuery = None,
    accept_language: AcceptLanguage = None,
) -> ItemRead:
    """A practice item for an exercise, shown like a task; answer it at
    ``POST /api/tutorials/items/{id}/answer`` for feedback at once."""
    _volunteer(user)
    catalog = default_catalog()
    lesson = catalog.lesson(lesson_id, _language(catalog, lang, accept_language))
    item = lessons.practice_item(
        session=session, user=user, lesson=lesson, exercise_id=exercise_id, now=utcnow()
    )
    read = _item_read(session, item)
    read.prompt = lesson.exercise(exercise_id).prompt
    return read


def _entry(session: Session, entry: FieldGuideEntry) -> FieldGuideEntryRead:
    image = None
    if entry.material is not None:
        found = lessons.resolve(session, entry.material, f"guide/{entry.id}")
        if found is not None:
            image = f"/api/tutorials/field-guide/{entry.id}.png"
    return FieldGuideEntryRead(
        id=entry.id,
        kind=entry.kind.value,
        title=entry.title,
        tell=entry.tell,
        body=entry.body,
        keywords=list(entry.keywords),
        looks_like=entry.looks_like,
        action=entry.action,
        image_url=image,
    )


@router.get("/field-guide", response_model=FieldGuideRead, responses=error_responses(422))
def field_guide(
    _user: CurrentUser,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=100, description="Search words")] = None,
    lang: LanguageQuery = None,
    accept_language: AcceptLanguage = None,
) -> FieldGuideRead:
    """Lesion types and look-alikes with their one-line tells, searchable (``q`` matches
    titles, tells, bodies and keywords, every word)."""
    catalog = default_catalog()
    guide = catalog.field_guide(_language(catalog, lang, accept_language))
    words = (q or "").lower().split()

    def matches(entry: FieldGuideEntry) -> bool:
        text = " ".join([entry.title, entry.tell, entry.body, *entry.keywords]).lower()
        return all(word in text for word in words)

    return FieldGuideRead(
        language=guide.language,
        version=guide.version,
        entries=[_entry(session, e) for e in guide.entries if matches(e)],
    )


@router.get(
    "/field-guide/{entry_id}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **error_responses(404, 409)},
)
def field_guide_image(
    entry_id: SlugPath, _user: CurrentUser, session: SessionDep, storage: StorageDep
) -> Response:
    """A field-guide entry's example image."""
    guide = default_catalog().field_guide("en")
    entry = next((e for e in guide.entries if e.id == entry_id), None)
    if entry is None or entry.material is None:
        raise NotFound(f"No field-guide image {entry_id!r}")
    found = lessons.resolve(session, entry.material, f"guide/{entry.id}")
    if found is None:
        raise lessons.MaterialMissing("This example is not on this site", code="material_missing")
    png = lessons.figure_png(session, storage, found, entry.material.contrast.value)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/stats", response_model=TutorialStatsRead)
def tutorial_stats(_expert: ExpertUser, session: SessionDep) -> TutorialStatsRead:
    """For experts and admins: lesson completion, each exercise's errors, which look-alikes
    fool volunteers most, and qualification pass rates per project."""
    return TutorialStatsRead.model_validate(stats.tutorial_stats(session, default_catalog()))
