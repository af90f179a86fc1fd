"""Lessons as the studio serves them: their figures and exercises resolved to tutorial slices
the project holds (a lesson whose material is missing says so and skips it), figure images
rendered once and kept in storage, practice items, and each volunteer's progress.

A figure or exercise names material (``content.Material``: kind, load, mimic, contrast), never
an image; the slice is chosen among the matching tutorial slices by a stable hash of the
lesson and the figure or exercise, so two figures asking for the same kind of slice tend to
show different ones, and a lesson shows the same slice to everyone.
"""

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image
from scipy import ndimage
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.auth.models import User
from backend.core.errors import Conflict
from backend.core.storage import BlobNotFound, Storage
from backend.imaging.models import Slice
from backend.quality.gold import FROZEN
from backend.tutorials import material
from backend.tutorials.content import Catalog, Lesson, Material
from backend.tutorials.models import ItemPurpose, LessonCompletion, TutorialItem, TutorialSlice

# The outline drawn around a figure's lesions (Okabe-Ito sky blue: apart from the feedback's
# hit, miss and false-alarm colours).
OUTLINE = (86, 180, 233)


class MaterialMissing(Conflict):
    """The project holds no tutorial slice for this figure or exercise."""


def resolve(session: Session, wanted: Material, salt: str) -> TutorialSlice | None:
    """The tutorial slice for ``wanted`` (None: the project has none of its kind)."""
    found = material.matching(
        session,
        kind=wanted.kind,
        load=wanted.load,
        mimic=None if wanted.mimic is None else wanted.mimic.value,
    )
    if not found:
        return None
    pick = int.from_bytes(hashlib.sha256(salt.encode()).digest()[:4], "big") % len(found)
    return found[pick]


def reserved_slices(session: Session, catalog: Catalog) -> set[int]:
    """Every slice a lesson shows as a figure or exercise (a qualification test draws others
    where the pool allows: a figure with its outline is an answer key)."""
    reserved = set()
    for lesson in catalog.lessons("en"):
        parts = [(f.id, f.material) for f in lesson.figures]
        parts += [(e.id, e.material) for e in lesson.exercises]
        for part_id, wanted in parts:
            found = resolve(session, wanted, f"{lesson.id}/{part_id}")
            if found is not None:
                reserved.add(found.slice_id)
    return reserved


@dataclass(frozen=True)
class Resolved:
    """A lesson with the slice of each figure and exercise (None where material is missing)."""

    lesson: Lesson
    figures: dict[str, TutorialSlice | None]
    exercises: dict[str, TutorialSlice | None]

    @property
    def complete(self) -> bool:
        """Every figure and exercise has its material."""
        return all(v is not None for v in (*self.figures.values(), *self.exercises.values()))


def resolved(session: Session, lesson: Lesson) -> Resolved:
    def of(part_id: str, wanted: Material) -> TutorialSlice | None:
        return resolve(session, wanted, f"{lesson.id}/{part_id}")

    return Resolved(
        lesson=lesson,
        figures={f.id: of(f.id, f.material) for f in lesson.figures},
        exercises={e.id: of(e.id, e.material) for e in lesson.exercises},
    )


def figure_png(session: Session, storage: Storage, found: TutorialSlice, contrast: str) -> bytes:
    """A figure: the slice in the contrast asked for, lesions outlined; rendered once and kept
    in storage (a missing contrast falls back to FLAIR)."""
    key = f"tutorials/figures/{found.slice_id}-{contrast}.png"
    try:
        return storage.get(key)
    except BlobNotFound:
        pass
    shown = session.get(Slice, found.slice_id)
    if shown is None:
        raise MaterialMissing("This figure's slice is gone", code="material_missing")
    image = FROZEN.get(
        storage, shown.image_keys.get(contrast) or shown.image_keys["flair"], mask=False
    )
    rgb = np.repeat(image[..., None], 3, axis=2)
    if shown.reference_key is not None and found.reference_pixels:
        lesion = FROZEN.get(storage, shown.reference_key, mask=True)
        grown = ndimage.binary_dilation(lesion, iterations=2)
        rgb[grown & ~ndimage.binary_dilation(lesion)] = OUTLINE
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG", optimize=True)
    data = buffer.getvalue()
    storage.put(key, data)
    return data


def practice_item(
    *, session: Session, user: User, lesson: Lesson, exercise_id: str, now: datetime
) -> TutorialItem:
    """The caller's practice item for an exercise: the unanswered one they have, else a new
    one on the exercise's slice."""
    assert user.id is not None
    exercise = lesson.exercise(exercise_id)
    found = resolve(session, exercise.material, f"{lesson.id}/{exercise.id}")
    if found is None:
        raise MaterialMissing(
            "This exercise's example is not available on this site yet; go on with the lesson",
            code="material_missing",
        )
    held = session.exec(
        select(TutorialItem).where(
            TutorialItem.user_id == user.id,
            TutorialItem.purpose == ItemPurpose.practice,
            TutorialItem.lesson_id == lesson.id,
            TutorialItem.exercise_id == exercise.id,
            col(TutorialItem.answered_at).is_(None),
        )
    ).first()
    if held is not None:
        return held
    item = TutorialItem(
        user_id=user.id,
        slice_id=found.slice_id,
        purpose=ItemPurpose.practice,
        lesson_id=lesson.id,
        lesson_version=lesson.version,
        exercise_id=exercise.id,
        created_at=now,
    )
    session.add(item)
    session.flush()
    return item


def complete(*, session: Session, user: User, lesson: Lesson, now: datetime) -> LessonCompletion:
    """Record that the caller finished ``lesson`` at its version (idempotent)."""
    assert user.id is not None
    found = _completion(session, user.id, lesson.id, lesson.version)
    if found is not None:
        return found
    row = LessonCompletion(
        user_id=user.id,
        lesson_id=lesson.id,
        version=lesson.version,
        language=lesson.language,
        completed_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # a concurrent request recorded it first
        again = _completion(session, user.id, lesson.id, lesson.version)
        assert again is not None
        return again
    return row


def _completion(
    session: Session, user_id: int, lesson_id: str, version: int
) -> LessonCompletion | None:
    return session.exec(
        select(LessonCompletion).where(
            LessonCompletion.user_id == user_id,
            LessonCompletion.lesson_id == lesson_id,
            LessonCompletion.version == version,
        )
    ).first()


def completed_versions(session: Session, user_id: int) -> dict[str, int]:
    """The highest version of each lesson the user completed."""
    rows = session.exec(
        select(LessonCompletion.lesson_id, LessonCompletion.version).where(
            LessonCompletion.user_id == user_id
        )
    ).all()
    done: dict[str, int] = {}
    for lesson_id, version in rows:
        done[lesson_id] = max(version, done.get(lesson_id, 0))
    return done


def practised(session: Session, user_id: int) -> set[tuple[str, str]]:
    """(lesson, exercise) pairs the user answered at least once."""
    rows = session.exec(
        select(TutorialItem.lesson_id, TutorialItem.exercise_id).where(
            TutorialItem.user_id == user_id,
            TutorialItem.purpose == ItemPurpose.practice,
            col(TutorialItem.answered_at).is_not(None),
        )
    ).all()
    return {(str(a), str(b)) for a, b in rows}
