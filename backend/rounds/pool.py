"""A round's pool and selection: the project's crowd slices with the latest model's scores,
the slices a strategy chooses, and the queue priorities that put them first."""

import io
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlmodel import Session, col, select

from backend.core.storage import Storage
from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.rounds import selection
from backend.rounds.models import Round
from backend.tasks.models import Task, TaskKind, TaskState
from backend.tasks.order import RANKED, queue_priority

# The queue order of a task no round has chosen is its import priority (below 1, see
# ``backend.tasks.order``); a round's chosen tasks come first, at 1 + (1 .. 0).
CHOSEN_BASE = RANKED


@dataclass(frozen=True)
class PoolRow:
    slice_id: int
    task_id: int
    case_id: int
    case_public_id: str
    index: int
    box: tuple[int, int, int, int]  # the slice's crop: x0, y0, x1, y1 (what volunteers see)
    candidate_fraction: float | None
    brain_fraction: float


def pool_rows(session: Session, project: Project) -> list[PoolRow]:
    """The unlabelled pool: slices whose crowd task is still open, of cases not held out."""
    rows = session.exec(
        select(Slice, Task.id, Case.public_id)
        .join(Task, col(Task.slice_id) == col(Slice.id))
        .join(Case, col(Case.id) == col(Slice.case_id))
        .where(
            Task.project_id == project.id,
            Task.kind == TaskKind.normal,
            Task.state == TaskState.open,
        )
        .order_by(col(Slice.id))
    ).all()
    held = set(project.holdout_cases)
    return [
        PoolRow(
            slice_id=s.id or 0,
            task_id=task_id or 0,
            case_id=s.case_id,
            case_public_id=public_id,
            index=s.index,
            box=(s.crop_x0, s.crop_y0, s.crop_x1, s.crop_y1),
            candidate_fraction=s.candidate_fraction,
            brain_fraction=s.brain_fraction,
        )
        for s, task_id, public_id in rows
        if public_id not in held
    ]


SCORE_NAMES = ("entropy", "bald", "count_variance")


def encode_scores(ids: NDArray[np.int64], scores: dict[str, NDArray[np.float64]]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, ids=ids, **scores)  # type: ignore[arg-type]
    return buffer.getvalue()


def decode_scores(data: bytes) -> tuple[NDArray[np.int64], dict[str, NDArray[np.float64]]]:
    with np.load(io.BytesIO(data)) as stored:
        return stored["ids"], {n: stored[n] for n in SCORE_NAMES if n in stored}


def build_pool(
    rows: list[PoolRow], scored: tuple[NDArray[np.int64], dict[str, NDArray[np.float64]]] | None
) -> selection.Pool:
    """The pool for ``rounds.selection``; a slice the scores do not cover (imported after them)
    scores 0, and a slice without a measured candidate share gets the pool's mean."""
    known = [r.candidate_fraction for r in rows if r.candidate_fraction is not None]
    mean = float(np.mean(known)) if known else 0.0
    ids = np.array([r.slice_id for r in rows], dtype=np.int64)
    scores: dict[str, NDArray[np.float64]] = {}
    if scored is not None:
        scored_ids, values = scored
        position = {int(s): n for n, s in enumerate(scored_ids)}
        at = np.array([position.get(int(i), -1) for i in ids], dtype=np.int64)
        for name, column in values.items():
            padded = np.append(np.asarray(column, dtype=np.float64), 0.0)  # [-1] -> 0
            scores[name] = padded[at]
    return selection.Pool(
        ids=ids,
        cases=np.array([r.case_id for r in rows], dtype=np.int64),
        indices=np.array([r.index for r in rows], dtype=np.int64),
        foreground=np.array(
            [mean if r.candidate_fraction is None else r.candidate_fraction for r in rows],
            dtype=np.float64,
        ),
        scores=scores,
    )


def apply_priorities(session: Session, project: Project, chosen: list[int]) -> None:
    """Put the chosen slices' open tasks first in the queue, in order; every other open crowd
    task of the project goes back to its import priority (``backend.tasks.order``)."""
    now_chosen = selection.priorities(chosen, base=CHOSEN_BASE)
    tasks = session.exec(
        select(Task)
        .where(
            Task.project_id == project.id,
            Task.kind == TaskKind.normal,
            Task.state == TaskState.open,
        )
        .with_for_update(of=Task)
    ).all()
    for task in tasks:
        wanted = now_chosen.get(task.slice_id, queue_priority(task.slice_id))
        if task.priority != wanted:
            task.priority = wanted
            session.add(task)


def latest_scores(
    session: Session, storage: Storage, project_id: int
) -> tuple[NDArray[np.int64], dict[str, NDArray[np.float64]]] | None:
    key = session.exec(
        select(Round.scores_key)
        .where(Round.project_id == project_id, col(Round.scores_key).is_not(None))
        .order_by(col(Round.number).desc())
    ).first()
    return None if key is None else decode_scores(storage.get(key))
