"""Gold in the database: expert masks frozen as versions, served through gold tasks, chosen
from a representative pool (``quality.gold_pool``), rested after enough reveals; the stored
masks and images quality control reads, and the feedback overlay."""

import io
import threading
from collections import OrderedDict
from functools import cache
from itertools import islice
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy import Select, and_, bindparam, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col
from sqlmodel import select as orm_select

from backend.annotations.masks import PngMask, RleMask, decode, to_png
from backend.annotations.models import Annotation
from backend.auth.models import EXPERT_ROLES, User
from backend.auth.service import caller_statement
from backend.core.db import on_rollback, table_of
from backend.core.errors import Conflict, InvalidInput, NotFound
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.imaging.models import Case, Slice
from backend.imaging.service import slice_and_case
from backend.projects.models import Project
from backend.quality import gold_pool
from backend.quality.models import GoldScore, GoldSource, GoldVersion
from backend.tasks.models import Assignment, Task, TaskKind, TaskState

# Okabe-Ito colours, distinguishable with the common colour-vision deficiencies.
HIT, MISS, FALSE_ALARM = (0, 158, 115), (230, 159, 0), (204, 121, 167)


def read_mask(storage: Storage, key: str) -> NDArray[np.bool_]:
    """A stored binary mask PNG as a boolean [H, W] array."""
    with Image.open(io.BytesIO(storage.get(key))) as image:
        return np.asarray(image.convert("L")) > 127


def read_grey(storage: Storage, key: str) -> NDArray[np.uint8]:
    with Image.open(io.BytesIO(storage.get(key))) as image:
        return np.asarray(image.convert("L"))


class FrozenImages:
    """Decoded gold masks and slice images for scoring, kept per process (a gold version's
    mask and a slice's image never change once stored: edits and re-imports make new keys).
    Every answer to a gold slice is scored against the same two images; decoding them once
    instead of per answer took a fifth off a check answer's CPU (issue 35). Bounded (LRU);
    the arrays are read-only, so no caller can change another's copy."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str, bool], NDArray[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, storage: Storage, key: str, *, mask: bool) -> NDArray[Any]:
        """``read_mask`` (``mask``) or ``read_grey`` of ``key``, decoded at most once."""
        item = (storage.url, key, mask)
        with self._lock:
            found = self._items.get(item)
            if found is not None:
                self._items.move_to_end(item)
                return found
        found = read_mask(storage, key) if mask else read_grey(storage, key)
        found.flags.writeable = False
        with self._lock:
            self._items[item] = found
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return found


FROZEN = FrozenImages()


def brain_region(flair: NDArray[np.uint8]) -> NDArray[np.bool_] | None:
    """Pixels inside the brain of a skull-stripped FLAIR slice image (non-zero), or None when
    the image has no zero background to tell it by."""
    inside = flair > 0
    return inside if 0 < inside.sum() < inside.size else None


def overlay_png(
    flair: NDArray[np.uint8],
    gold: NDArray[np.bool_],
    answer: NDArray[np.bool_],
    *,
    misses: bool = True,
) -> bytes:
    """The feedback image: the FLAIR slice in grey with hits, misses and false alarms in
    colour (``HIT``, ``MISS``, ``FALSE_ALARM``); without ``misses``, only what the answer
    painted (the expert's outline stays unseen where the answer missed it)."""
    rgb = np.repeat((flair.astype(np.float32) * 0.7)[..., None], 3, axis=2)
    for where, colour in (
        (gold & answer, HIT),
        (gold & ~answer if misses else np.zeros_like(gold), MISS),
        (answer & ~gold, FALSE_ALARM),
    ):
        rgb[where] = colour
    buffer = io.BytesIO()
    # The fastest deflate: an overlay is made for every check answer and shown once (level 6
    # took 3 times as long for files a third smaller).
    Image.fromarray(rgb.astype(np.uint8), mode="RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


# --- gold versions ------------------------------------------------------------------------


def set_gold(
    *,
    session: Session,
    storage: Storage,
    slice_id: int,
    mask: NDArray[np.uint8],
    source: GoldSource,
    expert_id: int | None,
) -> GoldVersion:
    """Make ``mask`` the slice's gold: a new frozen version, served through the slice's gold
    task (created on first use; its earlier versions stay for the scores that used them).

    The slice's open normal task, if any, is retired: with an expert answer its crowd labels
    are not needed, and no volunteer may meet the same slice as normal and as gold.
    """
    slice_, case = slice_and_case(session, slice_id)
    project = session.get(Project, case.project_id)
    if project is not None and case.public_id in project.holdout_cases:
        raise Conflict(
            f"Case {case.public_id} is held out for evaluating models: its slices cannot be gold"
        )
    if case.tutorial:
        raise Conflict(f"Case {case.public_id} is tutorial material: its slices cannot be gold")
    if mask.shape != (slice_.height, slice_.width):
        raise InvalidInput(
            f"The gold mask must be {slice_.width} x {slice_.height} pixels, "
            f"not {mask.shape[1]} x {mask.shape[0]}"
        )
    previous = session.exec(
        orm_select(GoldVersion.version)
        .where(GoldVersion.slice_id == slice_id)
        .order_by(GoldVersion.version.desc())  # type: ignore[attr-defined]
    ).first()
    number = (previous or 0) + 1
    now = utcnow()
    for old in session.exec(
        orm_select(GoldVersion).where(
            GoldVersion.slice_id == slice_id,
            GoldVersion.retired_at.is_(None),  # type: ignore[union-attr]
        )
    ):
        old.retired_at = now
        session.add(old)
    key = f"gold/{slice_id}/v{number}.png"
    storage.put(key, to_png(mask.astype(np.uint8)))
    on_rollback(session, lambda: storage.delete(key))
    version = GoldVersion(
        slice_id=slice_id,
        version=number,
        source=source,
        mask_key=key,
        lesion_pixels=int(np.count_nonzero(mask)),
        created_by=expert_id,
        created_at=now,
    )
    session.add(version)
    session.flush()
    task = session.exec(
        orm_select(Task).where(Task.slice_id == slice_id, Task.kind == TaskKind.gold)
    ).first()
    if task is None:
        task = Task(
            project_id=case.project_id,
            slice_id=slice_id,
            kind=TaskKind.gold,
            required_labels=1,
        )
    task.gold_version_id = version.id
    task.state = TaskState.open
    session.add(task)
    for normal in session.exec(
        orm_select(Task).where(
            Task.slice_id == slice_id,
            Task.kind == TaskKind.normal,
            col(Task.state).in_([TaskState.open, TaskState.review]),
        )
    ):
        normal.state = TaskState.retired
        session.add(normal)
    session.flush()
    return version


def approve_reference(
    *, session: Session, storage: Storage, slice_id: int, expert_id: int | None
) -> GoldVersion:
    """Make the slice's imported expert reference mask its gold."""
    slice_, _case = slice_and_case(session, slice_id)
    if slice_.reference_key is None:
        raise Conflict(f"Slice {slice_id} has no imported reference mask to approve")
    mask = read_mask(storage, slice_.reference_key).astype(np.uint8)
    return set_gold(
        session=session,
        storage=storage,
        slice_id=slice_id,
        mask=mask,
        source=GoldSource.reference,
        expert_id=expert_id,
    )


def make_gold(
    *,
    session: Session,
    storage: Storage,
    slice_id: int,
    source: GoldSource,
    mask: PngMask | RleMask | None,
    expert_id: int,
    max_mask_bytes: int,
) -> GoldVersion:
    """An expert's request to make a slice gold: approve its imported reference mask (send no
    mask), or freeze the mask they painted (decoded at the slice's size)."""
    if source is GoldSource.reference:
        if mask is not None:
            raise InvalidInput("Send no mask when approving the reference mask")
        return approve_reference(
            session=session, storage=storage, slice_id=slice_id, expert_id=expert_id
        )
    if mask is None:
        raise InvalidInput("Send the mask you painted (source 'expert')")
    slice_, _case = slice_and_case(session, slice_id)
    painted = decode(mask, width=slice_.width, height=slice_.height, max_bytes=max_mask_bytes)
    return set_gold(
        session=session,
        storage=storage,
        slice_id=slice_id,
        mask=painted,
        source=GoldSource.expert,
        expert_id=expert_id,
    )


def gold_candidates(
    *,
    session: Session,
    project_id: int,
    limit: int,
    offset: int,
    stratum: gold_pool.Stratum | None = None,
    storage: Storage | None = None,
) -> list[tuple[Slice, Case]]:
    """Slices of a project with a reference mask that were never gold (held-out cases left
    out), best first for a representative pool (``gold_pool.spread_order``): strata of lesion
    load in the crowd tasks' proportions, spread over cases and slice positions; only
    ``stratum``'s when given. ``storage`` measures slices imported before hyperintensity was
    stored."""
    state = gold_pool.pool_state(session=session, project_id=project_id, storage=storage)
    ids = [c.slice_id for c in islice(state.order(stratum), offset, offset + limit)]
    rows = session.exec(
        orm_select(Slice, Case)
        .join(Case, col(Case.id) == col(Slice.case_id))
        .where(col(Slice.id).in_(ids))
    ).all()
    found = {s.id: (s, c) for s, c in rows}
    return [found[i] for i in ids]


def seed_gold(
    *, session: Session, storage: Storage, project_id: int, size: int | None = None
) -> int:
    """Top a project's gold up to a representative pool of ``size`` slices (default
    ``gold_pool.pool_size`` of its gold schedule) by approving reference masks in
    ``gold_candidates`` order (the demo's experts' work); returns how many slices became gold
    (0 once the pool is full)."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"Project {project_id} does not exist")
    state = gold_pool.pool_state(session=session, project_id=project_id, storage=storage)
    if size is None:
        size = gold_pool.pool_size(
            project.gold_schedule,
            project.gold_rate,
            available=len(state.gold) + len(state.candidates),
            slices=state.slices,
        )
    made = 0
    for chosen in islice(state.order(), max(size - len(state.gold), 0)):
        approve_reference(
            session=session, storage=storage, slice_id=chosen.slice_id, expert_id=None
        )
        made += 1
    return made


def retire_gold(*, session: Session, slice_id: int) -> None:
    """Stop serving a slice as gold (its versions and scores stay)."""
    task = session.exec(
        orm_select(Task).where(
            Task.slice_id == slice_id, Task.kind == TaskKind.gold, Task.state == TaskState.open
        )
    ).first()
    if task is None:
        raise NotFound(f"Slice {slice_id} is not gold")
    task.state = TaskState.retired
    session.add(task)
    session.execute(
        update(table_of(GoldVersion))
        .where(table_of(GoldVersion).c.slice_id == slice_id)
        .where(table_of(GoldVersion).c.retired_at.is_(None))
        .values(retired_at=utcnow())
    )
    session.flush()


def own_assignment() -> Any:
    """Join condition: the assignment an annotation answered."""
    return and_(
        col(Assignment.task_id) == col(Annotation.task_id),
        col(Assignment.user_id) == col(Annotation.user_id),
    )


def expert_answers(*, session: Session, project_id: int, limit: int, offset: int) -> list[Any]:
    """Experts' answers in a project, newest first, with whether their slice is gold now."""
    current = orm_select(GoldVersion.slice_id).where(GoldVersion.retired_at.is_(None))  # type: ignore[union-attr]
    rows = session.exec(
        orm_select(Annotation, Task.slice_id, User.display_name, Task.slice_id.in_(current))  # type: ignore[attr-defined]
        .join(Task, Task.id == Annotation.task_id)  # type: ignore[arg-type]
        .join(Assignment, own_assignment())
        .join(User, User.id == Annotation.user_id)  # type: ignore[arg-type]
        .where(Task.project_id == project_id, Assignment.expert)
        .order_by(Annotation.id.desc())  # type: ignore[union-attr]
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows)


def promote_answer(
    *, session: Session, storage: Storage, annotation_id: int, expert_id: int
) -> GoldVersion:
    """Make an expert's answer the gold of its slice."""
    row = session.exec(
        orm_select(Annotation, Task.slice_id, Assignment.expert)
        .join(Task, Task.id == Annotation.task_id)  # type: ignore[arg-type]
        .join(Assignment, own_assignment())
        .where(Annotation.id == annotation_id)
    ).first()
    if row is None:
        raise NotFound(f"Answer {annotation_id} does not exist")
    annotation, slice_id, by_expert = row
    if not by_expert:
        raise Conflict(
            "Only an expert's answer can become gold; paint one or approve the reference"
        )
    return set_gold(
        session=session,
        storage=storage,
        slice_id=slice_id,
        mask=read_mask(storage, annotation.mask_key).astype(np.uint8),
        source=GoldSource.expert,
        expert_id=expert_id,
    )


def current_gold_versions(
    *, session: Session, project_id: int, limit: int, offset: int
) -> list[tuple[GoldVersion, Slice, Case]]:
    """The project's gold slices (their current versions), newest first."""
    rows = session.exec(
        orm_select(GoldVersion, Slice, Case)
        .join(Slice, col(Slice.id) == col(GoldVersion.slice_id))
        .join(Case, col(Case.id) == col(Slice.case_id))
        .where(Case.project_id == project_id, col(GoldVersion.retired_at).is_(None))
        .order_by(col(GoldVersion.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return [(v, s, c) for v, s, c in rows]


@cache
def caller_feedback_statement() -> Select[Any]:
    """``auth.service.caller_statement`` with the feedback overlay's key of an answer
    (``annotation``) when it is gold-scored and the caller's own or the caller is staff
    (``overlay_key``, NULL otherwise): the feedback route's one statement."""
    users, scores, answers = table_of(User), table_of(GoldScore), table_of(Annotation)
    overlay = (
        sa_select(scores.c.overlay_key)
        .select_from(scores.join(answers, answers.c.id == scores.c.annotation_id))
        .where(
            scores.c.annotation_id == bindparam("annotation"),
            or_(
                answers.c.user_id == users.c.id,
                users.c.role.in_([role.value for role in EXPERT_ROLES]),
            ),
        )
        .scalar_subquery()
    )
    return caller_statement().add_columns(overlay.label("overlay_key"))
