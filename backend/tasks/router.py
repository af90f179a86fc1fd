"""``/api/tasks``: lease the next task and submit a mask for it."""

import hashlib
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from sqlmodel import Session

from backend.annotations import service as annotations
from backend.annotations.schemas import AnnotationCreate, AnnotationRead
from backend.auth.deps import CredentialsDep, authenticate
from backend.core.deps import DatabaseDep, SettingsDep, StorageDep
from backend.core.errors import error_responses
from backend.core.http import json_response
from backend.core.validation import MAX_DB_ID, PathId
from backend.tasks import service
from backend.tasks.schemas import CropBox, NeighbourRead, SliceRead, TaskRead
from backend.tasks.service import SliceView

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=error_responses(401, 403))
# Idempotency keys are client-chosen tokens (a UUID, say): printable ASCII, no spaces.
IDEMPOTENCY_KEY = r"^[!-~]{1,64}$"


def image_urls(slice_: SliceView) -> dict[str, str]:
    """Relative URLs of a slice's contrast images (immutable, long-cached).

    Written out rather than built with ``url_path_for``, which walked the routes on every call
    (5 % of a request); ``test_router`` checks they resolve.
    """
    return {
        contrast: f"/api/slices/{slice_.id}/images/{contrast}.png"
        for contrast in sorted(slice_.image_keys)
    }


def _task_read(lease: service.Lease) -> TaskRead:
    slice_, task = lease.slice, lease.task
    return TaskRead(
        id=task.id,
        project_id=task.project_id,
        kind=task.kind,
        required_labels=task.required_labels,
        slice=SliceRead(
            id=slice_.id,
            case=lease.case_public_id,
            axis=slice_.axis.value,
            index=slice_.index,
            width=slice_.width,
            height=slice_.height,
            crop=CropBox(
                x0=slice_.crop_x0, y0=slice_.crop_y0, x1=slice_.crop_x1, y1=slice_.crop_y1
            ),
            images=image_urls(slice_),
        ),
        neighbours=[
            NeighbourRead(offset=n.index - slice_.index, index=n.index, images=image_urls(n))
            for n in lease.neighbours
        ],
        lease_expires_at=lease.lease_expires_at,
    )


# The two endpoints every volunteer calls in a loop are async and put their whole database
# part (authentication included) into one Database.run: one thread hop and one transaction.


@router.post(
    "/next",
    response_model=TaskRead,
    responses={204: {"description": "No open task is left for you right now"}},
)
async def next_task(
    credentials: CredentialsDep,
    database: DatabaseDep,
    settings: SettingsDep,
    project_id: Annotated[
        int | None, Query(ge=1, le=MAX_DB_ID, description="Only tasks of this project")
    ] = None,
) -> Response:
    """Lease one open task you have not labelled; the same task again while the lease lasts.

    A POST, because it changes state: a cross-site link must not take a lease for you.
    """

    def work(session: Session) -> TaskRead | None:
        caller = authenticate(session, credentials)
        lease = service.next_task(
            session=session,
            user=caller,
            lease_seconds=settings.lease_seconds,
            project_id=project_id,
        )
        return None if lease is None else _task_read(lease)

    read = await database.run(work)
    if read is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return json_response(read)


@router.post(
    "/{task_id}/annotations",
    status_code=status.HTTP_201_CREATED,
    response_model=AnnotationRead,
    responses={
        200: {
            "model": AnnotationRead,
            "description": "A retry of a stored submission (same Idempotency-Key and body)",
        },
        **error_responses(
            400,
            404,
            409,
            422,
            e409="Not leased to you, already labelled, or the lease was lost",
            e422="The mask is malformed, the wrong size or not binary, or the Idempotency-Key "
            "was used with a different request",
        ),
    },
)
async def submit_annotation(
    task_id: PathId,
    body: AnnotationCreate,
    credentials: CredentialsDep,
    database: DatabaseDep,
    settings: SettingsDep,
    storage: StorageDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=IDEMPOTENCY_KEY,
            description="Client-chosen key (printable ASCII, up to 64 characters); a retry "
            "with the same key and body is answered, not stored twice",
        ),
    ] = None,
) -> Response:
    """Submit your mask for a task you hold: PNG (base64) or RLE at the slice image size."""
    request_sha256 = hashlib.sha256(body.model_dump_json().encode()).hexdigest()

    def work(session: Session) -> tuple[AnnotationRead, bool]:
        caller = authenticate(session, credentials)
        result = annotations.submit(
            session=session,
            storage=storage,
            user=caller,
            task_id=task_id,
            mask_in=body.mask,
            max_mask_bytes=settings.max_mask_bytes,
            idempotency_key=idempotency_key,
            request_sha256=request_sha256,
            duration_ms=body.duration_ms,
            client_info=body.client_info.model_dump(exclude_none=True),
        )
        return AnnotationRead.model_validate(result.annotation), result.replayed

    read, replayed = await database.run(work)
    if replayed:
        return json_response(read, status.HTTP_200_OK, {"Idempotent-Replayed": "true"})
    return json_response(read, status.HTTP_201_CREATED)
