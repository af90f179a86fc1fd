"""``/api/fusion``: fused labels of crowd tasks, for ML engineers, experts and admins."""

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Response

from backend.auth.deps import require_role
from backend.auth.models import EXPERT_ROLES, User, UserRole
from backend.core.deps import SessionDep, StorageDep
from backend.core.errors import NotFound, error_responses
from backend.core.http import no_store_png
from backend.core.validation import PathId
from backend.fusion import adaptive, labels
from backend.fusion.models import FusionResult, FusionRun
from backend.fusion.schemas import FusionResultRead, RaterRates, RedundancyRead
from backend.imaging.preprocess import encode_png

router = APIRouter(prefix="/fusion", tags=["fusion"], responses=error_responses(401, 403, 404))
LabelReader = Annotated[User, Depends(require_role(UserRole.engineer, UserRole.expert))]
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}, "description": "PNG"}}
Version = Annotated[int | None, Query(ge=1, le=1_000_000, description="Default: the newest")]


def _result(
    session: SessionDep, task_id: int, version: int | None
) -> tuple[FusionResult, list[int]]:
    versions = labels.results(session, task_id)
    chosen = versions[0] if versions and version is None else None
    if version is not None:
        chosen = next((r for r in versions if r.version == version), None)
    if chosen is None:
        which = "any fused label" if version is None else f"version {version}"
        raise NotFound(f"Task {task_id} has no {which}")
    return chosen, [r.version for r in versions]


def _soft_key(session: SessionDep, task_id: int, version: int | None) -> str:
    """The storage key of a version's soft label; withdrawn versions have none."""
    result, _ = _result(session, task_id, version)
    if result.soft_key is None:
        raise NotFound(
            f"Version {result.version} of task {task_id}'s fused label is withdrawn: too few "
            "usable answers remained once raters were excluded"
        )
    return result.soft_key


@router.get("/tasks/{task_id}", response_model=FusionResultRead)
def fused_label(
    task_id: PathId, user: LabelReader, session: SessionDep, version: Version = None
) -> FusionResultRead:
    """A task's fused label (the newest version unless ``version``), its provenance and the
    rates used; experts also get the URLs of each rater's mask. A withdrawn version says so
    and has no label URLs."""
    result, versions = _result(session, task_id, version)
    run = session.get(FusionRun, result.run_id)
    assert run is not None
    base = f"/api/fusion/tasks/{task_id}"
    query = f"?version={result.version}"
    return FusionResultRead(
        task_id=task_id,
        slice_id=result.slice_id,
        version=result.version,
        versions=versions,
        run_id=run.id or 0,
        method=run.method,
        prior=run.prior,
        raters=[
            RaterRates(
                user_id=r,
                sensitivity=run.rater_rates.get(str(r), [None, None])[0],
                specificity=run.rater_rates.get(str(r), [None, None])[1],
            )
            for r in result.raters
        ],
        excluded=list(run.excluded),
        withdrawn=result.withdrawn,
        hard_pixels=result.hard_pixels,
        uncertainty=result.uncertainty,
        decision=result.decision,
        created_at=result.created_at,
        soft_url=None if result.withdrawn else f"{base}/soft.png{query}",
        hard_url=None if result.withdrawn else f"{base}/hard.png{query}",
        answer_mask_urls=[f"/api/quality/annotations/{a}/mask.png" for a in result.annotation_ids]
        if user.role in EXPERT_ROLES
        else None,
    )


@router.get("/tasks/{task_id}/soft.png", response_class=Response, responses=PNG)
def soft_label(
    task_id: PathId,
    _user: LabelReader,
    session: SessionDep,
    storage: StorageDep,
    version: Version = None,
) -> Response:
    """The soft label: round(255 * P(lesion)) per pixel."""
    return no_store_png(storage.get(_soft_key(session, task_id, version)))


@router.get("/tasks/{task_id}/hard.png", response_class=Response, responses=PNG)
def hard_label(
    task_id: PathId,
    _user: LabelReader,
    session: SessionDep,
    storage: StorageDep,
    version: Version = None,
) -> Response:
    """The hard label: 255 where P(lesion) >= 0.5, else 0."""
    soft = labels.read_soft(storage, _soft_key(session, task_id, version))
    return no_store_png(encode_png(np.where(soft >= 0.5, 255, 0).astype(np.uint8)))


@router.get("/projects/{project_id}/redundancy", response_model=RedundancyRead)
def redundancy(project_id: PathId, _user: LabelReader, session: SessionDep) -> RedundancyRead:
    """Adaptive redundancy of a project: labels per retired task, tasks asking for more
    labels and tasks escalated to the experts."""
    summary = adaptive.redundancy_summary(session, project_id)
    return RedundancyRead(
        project_id=project_id,
        min_labels=summary.policy.min_labels,
        max_labels=summary.policy.max_labels,
        max_uncertainty=summary.policy.max_entropy,
        retired=summary.retired,
        labels_per_retired=summary.labels_per_retired,
        open=summary.open,
        asking_for_more=summary.asking_for_more,
        in_review=summary.in_review,
    )
