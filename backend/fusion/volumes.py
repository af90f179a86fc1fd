"""Fused labels on a case's volume grid: what training (``ml.jobs``) and releases
(``backend.releases``) read of the crowd's work.

The usable labels of a project (``usable_labels``) are the newest fused version of each
complete crowd task (never a task still collecting answers, in the experts' review queue or
retired, never a withdrawn version: an older one may carry an excluded rater). A slice's label
lives in display geometry (cropped, radiological: ``imaging.preprocess.to_display``);
``place`` undoes both exactly, onto the volume grid the case's images are stored on.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func
from sqlmodel import Session, col, select

from backend.core.storage import Storage
from backend.fusion.labels import read_soft
from backend.fusion.models import FusionResult
from backend.imaging.models import Case, Slice
from backend.imaging.preprocess import from_display
from backend.quality.gold import read_mask
from backend.quality.models import GoldVersion
from backend.tasks.models import Task, TaskKind, TaskState


@dataclass(frozen=True)
class FusedLabel:
    """A usable fused version: its id, case and slice, and its soft label's key."""

    result_id: int
    case_id: int
    slice_: Slice
    soft_key: str


def usable_labels(session: Session, project_id: int) -> list[FusedLabel]:
    """The project's usable fused labels (see the module), in result id order."""
    newest = (
        select(FusionResult.task_id, func.max(FusionResult.version).label("version"))
        .group_by(col(FusionResult.task_id))
        .subquery()
    )
    rows = session.exec(
        select(FusionResult, Slice)
        .join(
            newest,
            (col(FusionResult.task_id) == newest.c.task_id)
            & (col(FusionResult.version) == newest.c.version),
        )
        .join(Task, col(Task.id) == col(FusionResult.task_id))
        .join(Slice, col(Slice.id) == col(FusionResult.slice_id))
        .where(Task.project_id == project_id, Task.kind == TaskKind.normal)
        .where(Task.state == TaskState.complete, col(FusionResult.withdrawn).is_(False))
        .order_by(col(FusionResult.id))
    ).all()
    return [
        FusedLabel(result.id or 0, slice_.case_id, slice_, result.soft_key)
        for result, slice_ in rows
        if result.soft_key is not None
    ]


Box = tuple[int, int, int, int]  # a slice's crop box: x0, y0, x1, y1


def box_of(slice_: Slice) -> Box:
    return (slice_.crop_x0, slice_.crop_y0, slice_.crop_x1, slice_.crop_y1)


def place(volume: NDArray[np.generic], box: Box, index: int, plane: NDArray[np.generic]) -> None:
    """Write a slice's display-geometry ``plane`` into ``volume``: the slice at ``index``
    whose crop box is ``box``."""
    x0, y0, x1, y1 = box
    if plane.shape != (y1 - y0, x1 - x0):
        raise ValueError(f"slice {index}: label {plane.shape}, display {(y1 - y0, x1 - x0)}")
    volume[x0:x1, y0:y1, index] = from_display(plane)


def gold_masks(session: Session, case: Case) -> list[tuple[Slice, GoldVersion]]:
    """The case's current gold versions (expert masks) with their slices, in slice order."""
    rows = session.exec(
        select(GoldVersion, Slice)
        .join(Slice, col(Slice.id) == col(GoldVersion.slice_id))
        .where(Slice.case_id == case.id, col(GoldVersion.retired_at).is_(None))
        .order_by(col(Slice.index))
    ).all()
    return [(slice_, gold) for gold, slice_ in rows]


def on_grid(
    session: Session,
    storage: Storage,
    case: Case,
    shape: tuple[int, ...],
    fused: Sequence[FusedLabel],
    *,
    with_gold: bool = True,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """The case's ``fused`` soft labels (and, ``with_gold``, its current gold masks, which win
    on a slice that has both) on its volume grid, and which slices they label."""
    label = np.zeros(shape, dtype=np.float32)
    labelled = np.zeros(shape[2], dtype=bool)
    planes: list[tuple[Slice, NDArray[np.float64]]] = [
        (f.slice_, read_soft(storage, f.soft_key)) for f in fused if f.case_id == case.id
    ]
    if with_gold:
        planes += [
            (slice_, read_mask(storage, g.mask_key).astype(np.float64))
            for slice_, g in gold_masks(session, case)
        ]
    for slice_, plane in planes:
        place(label, box_of(slice_), slice_.index, plane)
        labelled[slice_.index] = True
    return label, labelled
