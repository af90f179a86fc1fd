"""``/api/tasks``: lease the next task and submit a mask for it."""

import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi import Path as FastPath
from sqlmodel import Session

from backend.annotations import service as annotations
from backend.annotations.masks import MAX_MASK_BODY_BYTES, mask_body_limit
from backend.annotations.schemas import AnnotationCreate, AnnotationRead
from backend.auth.deps import (
    CredentialsDep,
    CurrentUser,
    authenticate,
    authenticate_with,
    require_role,
)
from backend.auth.models import TokenScope, User, UserRole
from backend.core.body import json_body, parse_json, read_body
from backend.core.deps import DatabaseDep, SessionDep, SettingsDep, StorageDep
from backend.core.errors import NotFound, error_responses
from backend.core.http import json_response
from backend.core.storage import BlobNotFound
from backend.core.timeutil import utcnow
from backend.core.validation import MAX_DB_ID, PathId
from backend.imaging import sprite
from backend.imaging.sprite import NEIGHBOUR_REACH
from backend.imaging.variant import lease_variant
from backend.tasks import progress, reports, service
from backend.tasks.models import TaskReport
from backend.tasks.queue import (
    caller_image_statement,
    caller_sprite_statement,
)
from backend.tasks.reads import (
    annotation_read,
    sprite_token,
    task_read,
)
from backend.tasks.schemas import (
    ProgressRead,
    ReportIn,
    ReportListRead,
    ReportRead,
    TaskRead,
)

T = TypeVar("T")
log = logging.getLogger(__name__)
router = APIRouter(prefix="/tasks", tags=["tasks"], responses=error_responses(401, 403))
# Idempotency keys are client-chosen tokens (a UUID, say): printable ASCII, no spaces.
IDEMPOTENCY_KEY = r"^[!-~]{1,64}$"


# The two endpoints every volunteer calls in a loop are async and put their whole database
# part into Database.run: one thread hop and one transaction for next-task; for a submission
# one more before it, to authenticate before the body is read.
SCOPE = TokenScope.tasks


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
    after: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_DB_ID,
            description="Prefetch: the lease you are working on; you get another task to show "
            "after it (at most two leases at a time)",
        ),
    ] = None,
) -> Response:
    """Lease one open task you have not labelled or skipped; the same task again while the
    lease lasts. Volunteers need the current consent (``POST /api/auth/consent``) first.

    A POST, because it changes state: a cross-site link must not take a lease for you.
    """

    def work(session: Session) -> TaskRead | None:
        caller = authenticate(session, credentials, SCOPE)
        caller.require_consent()
        lease = service.next_task(
            session=session,
            user=caller,
            lease_seconds=settings.lease_seconds,
            project_id=project_id,
            after=after,
        )
        return None if lease is None else task_read(lease)

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
            415,
            422,
            429,
            e409="Not leased to you, already labelled, or the lease was lost",
            e422="The mask is malformed, the wrong size or not binary, or the Idempotency-Key "
            "was used with a different request",
        ),
    },
    # The body is read by the endpoint, after authentication (see backend.core.body); its
    # limit is the configured mask size's (mask_body_limit), at most this.
    max_body_size=MAX_MASK_BODY_BYTES,
    openapi_extra=json_body(AnnotationCreate),
)
async def submit_annotation(
    task_id: PathId,
    request: Request,
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
    """Submit your mask for a task you hold (``task_id``: the id from POST /api/tasks/next):
    PNG (base64) or RLE at the slice image size. After a check task the answer carries
    feedback against the expert's mask.

    The body is parsed, validated and decoded in the database thread after the caller is
    authenticated, never on the event loop that serves everyone else; a body that may be
    larger than the small limit is read only after authentication
    (``backend.auth.guard.SignedInUploads``), so a stranger's megabytes are never read.
    """
    raw = await read_body(request, limit=mask_body_limit(settings.max_mask_bytes))

    def work(session: Session) -> tuple[AnnotationRead, bool]:
        caller = authenticate(session, credentials, SCOPE)
        # 429 past the per-volunteer rate (gamification.limits).
        request.app.state.submits.check(caller.id or 0)
        body = parse_json(AnnotationCreate, raw)
        request_sha256 = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        result = annotations.submit(
            session=session,
            storage=storage,
            user=caller,
            lease_id=task_id,
            mask_in=body.mask,
            max_mask_bytes=settings.max_mask_bytes,
            idempotency_key=idempotency_key,
            request_sha256=request_sha256,
            duration_ms=body.duration_ms,
            client_info=body.client_info.model_dump(exclude_none=True),
        )
        return annotation_read(result), result.replayed

    read, replayed = await database.run(work)
    if replayed:
        return json_response(read, status.HTTP_200_OK, {"Idempotent-Replayed": "true"})
    return json_response(read, status.HTTP_201_CREATED)


@router.get("/progress", response_model=ProgressRead, responses=error_responses(422))
def my_progress(
    user: CurrentUser,
    session: SessionDep,
    utc_offset: Annotated[
        int,
        Query(
            ge=-720,
            le=840,
            description="Minutes your clock is ahead of UTC (-getTimezoneOffset() in a "
            "browser): where your day starts for the today counts",
        ),
    ] = 0,
) -> ProgressRead:
    """Your answers today and in all, and the slices you gave back (skips and reports, which
    never count as answers). Read by the studio when it starts and after a skip or report."""
    assert user.id is not None
    counts = progress.progress(
        session=session, user_id=user.id, since=progress.day_start(utc_offset)
    )
    return ProgressRead(**asdict(counts))


@router.get(
    "/{lease_id}/images/{offset}/{contrast}.png",
    name="lease_image",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "An 8-bit PNG"},
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        **error_responses(404),
    },
)
async def lease_image(
    lease_id: PathId,
    offset: Annotated[int, FastPath(ge=-NEIGHBOUR_REACH, le=NEIGHBOUR_REACH)],
    contrast: Annotated[str, FastPath(max_length=16)],
    request: Request,
    credentials: CredentialsDep,
    database: DatabaseDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> Response:
    """One contrast of your leased slice (offset 0) or a neighbour, as an 8-bit PNG, while
    your lease lasts. As lean as the lease (``_lease_png``)."""

    def work(session: Session) -> str:
        # A GET needs a token's read scope (``auth.deps.required_scope``).
        _caller, row = authenticate_with(
            session,
            credentials,
            TokenScope.read,
            caller_image_statement(),
            {"lease": lease_id, "offset": offset, "now": utcnow()},
        )
        return service.image_key_of(row.image_keys, lease_id, offset, contrast)

    return await _lease_png(
        request, database, settings, f"{lease_id}/{offset}/{contrast}", work, storage.get
    )


@router.get(
    "/{lease_id}/sprite.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "An 8-bit PNG of stacked frames"},
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        **error_responses(404),
    },
)
async def lease_sprite(
    lease_id: PathId,
    request: Request,
    credentials: CredentialsDep,
    database: DatabaseDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> Response:
    """Your leased slice's contrasts and its neighbours' FLAIR in one PNG, stacked in the
    order of the lease's ``slice.sprite.frames``, while your lease lasts: one request where
    the single images take seven."""

    def work(session: Session) -> tuple[str, list[str] | None]:
        _caller, row = authenticate_with(
            session,
            credentials,
            TokenScope.read,
            caller_sprite_statement(),
            {"lease": lease_id, "offset": 0, "now": utcnow()},
        )
        if row.slice_id is None:
            raise NotFound(f"No live lease {lease_id} of yours")
        key = sprite.sprite_key(row.slice_id, row.image_keys)
        if storage.exists(key):
            return key, None
        # A slice imported before sprites (``mscrowd storage sprites`` builds them all): its
        # frames' keys, to build its sprite once.
        found = service.leased_slice(session, row.slice_id)
        near = [(n.index - found.index, n.image_keys) for n in found.neighbours]
        return key, sprite.frame_keys(found.image_keys, near)

    return await _lease_png(
        request,
        database,
        settings,
        sprite_token(lease_id),
        work,
        lambda found: sprite.stored_sprite(storage, *found),
    )


async def _lease_png(
    request: Request,
    database: DatabaseDep,
    settings: SettingsDep,
    token: str,
    work: Callable[[Session], T],
    read: Callable[[T], bytes],
) -> Response:
    """A lease's image: ``work`` authenticates and finds it in one statement (no ORM
    session), ``read`` reads it after the transaction, on the same thread hop; ``304`` when
    the client holds it already.

    The ETag and the bytes belong to the lease (``token``), not the stored file: neither may
    repeat across leases, or a second account could recognise an image (gold) by its hash.
    """
    etag = '"' + hashlib.sha256(token.encode()).hexdigest()[:32] + '"'
    fresh = request.headers.get("if-none-match") == etag
    secret = settings.secret_key.encode()

    def load(found: T) -> bytes | None:
        if fresh:
            return None
        try:
            return lease_variant(read(found), secret, token)
        except BlobNotFound:
            # A lost file: the volunteer gets the answer a stranger's lease gets (the storage
            # key would name the case and slice); the operator gets the key in the log.
            log.exception("the image of lease %s is missing from storage", token)
            raise NotFound("No such image of a live lease of yours") from None

    content = await database.run_then(work, load)
    headers = {"Cache-Control": "private, max-age=86400", "ETag": etag}
    if content is None:
        return Response(status_code=304, headers=headers)
    return Response(content=content, media_type="image/png", headers=headers)


@router.post(
    "/{task_id}/skip",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404, 409, e409="You already labelled this task"),
)
def skip_task(task_id: PathId, user: CurrentUser, session: SessionDep) -> None:
    """Skip your leased task (``task_id``: the lease id): the lease ends now, so the slot is
    someone else's at once, and the task is not offered to you again."""
    assert user.id is not None
    service.release(session=session, user_id=user.id, lease_id=task_id)


@router.post(
    "/{task_id}/report",
    status_code=status.HTTP_201_CREATED,
    response_model=ReportRead,
    responses=error_responses(
        400,
        404,
        409,
        429,
        e409="You already labelled or reported this task",
        e429="Too many reports this hour",
    ),
)
def report_task(
    task_id: PathId, body: ReportIn, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> ReportRead:
    """Report a problem with your leased slice (a bad image, an artefact, or that you are
    unsure); experts see it (``GET /api/reports``). Your lease is released, as with skip.
    One report per task (``409``, code ``already_reported``), and a limited number an hour
    (``429``, code ``too_many_reports``)."""
    assert user.id is not None
    report = reports.report_problem(
        session=session,
        user_id=user.id,
        lease_id=task_id,
        reason=body.reason,
        note=body.note,
        per_hour=settings.reports_per_user_per_hour,
    )
    assert report.id is not None
    return ReportRead(
        id=report.id, reason=report.reason, note=report.note, created_at=report.created_at
    )


reports_router = APIRouter(prefix="/reports", tags=["tasks"], responses=error_responses(401, 403))
ExpertUser = Annotated[User, Depends(require_role(UserRole.expert))]


@reports_router.get("", response_model=list[ReportListRead])
def list_reports(
    user: ExpertUser,
    session: SessionDep,
    project_id: Annotated[int | None, Query(ge=1, le=MAX_DB_ID)] = None,
    unresolved: Annotated[bool, Query(description="Only reports not yet looked at")] = True,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ReportListRead]:
    """Volunteers' problem reports, newest first (experts and admins)."""
    rows = reports.list_reports(
        session=session, project_id=project_id, unresolved=unresolved, limit=limit
    )
    return [_report_list_read(row.report, row) for row in rows]


@reports_router.post(
    "/{report_id}/resolve", response_model=ReportListRead, responses=error_responses(404)
)
def resolve_report(report_id: PathId, user: ExpertUser, session: SessionDep) -> ReportListRead:
    """Mark a report as looked at; it leaves the unresolved list."""
    report = reports.resolve_report(session=session, report_id=report_id)
    (row,) = reports.list_reports(
        session=session, project_id=None, unresolved=False, limit=1, report_id=report_id
    )
    return _report_list_read(report, row)


def _report_list_read(report: TaskReport, row: reports.ReportRow) -> ReportListRead:
    assert report.id is not None
    return ReportListRead(
        id=report.id,
        reason=report.reason,
        note=report.note,
        created_at=report.created_at,
        task_id=report.task_id,
        slice_id=report.slice_id,
        project_id=row.project_id,
        case_public_id=row.case_public_id,
        slice_index=row.slice_index,
        axis=row.axis,
        reporter=row.reporter,
        resolved_at=report.resolved_at,
    )
