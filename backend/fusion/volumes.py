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


def place(volume: NDArray[np.generic], slice_: Slice, plane: NDArray[np.generic]) -> None:
    """Write a slice's display-geometry ``plane`` into ``volume`` (its crop box, its index)."""
    expected = (slice_.crop_y1 - slice_.crop_y0, slice_.crop_x1 - slice_.crop_x0)
    if plane.shape != expected:
        raise ValueError(f"slice {slice_.id}: label {plane.shape}, display {expected}")
    volume[slice_.crop_x0 : slice_.crop_x1, slice_.crop_y0 : slice_.crop_y1, slice_.index] = (
        from_display(plane)
    )


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
        place(label, slice_, plane)
        labelled[slice_.index] = True
    return label, labelled
