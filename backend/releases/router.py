"""``/api/releases``: label releases for ML engineers and admins. Tokens need the
``releases:read`` scope to read them (``auth.deps.required_scope``); downloads stream a file,
or the whole release as a tar, with Range and ETag, in flat memory."""

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine
from sqlmodel import Session

from backend.audit import service as audit
from backend.audit.models import AuditAction
from backend.auth.deps import require_role
from backend.auth.models import User, UserRole
from backend.core.db import transaction
from backend.core.deps import EngineDep, SessionDep, StorageDep
from backend.core.errors import NotFound, PermissionDenied, error_responses
from backend.core.outbox import defer
from backend.releases import BUILD_RELEASE, download, service
from backend.releases.build import prefix_of
from backend.releases.models import Release
from backend.releases.plan import Filters
from backend.releases.schemas import ReleaseCreate, ReleaseFileRead, ReleaseRead

Engineer = Annotated[User, Depends(require_role(UserRole.engineer))]
Name = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
FilePath = Annotated[str, Path(min_length=1, max_length=200)]
router = APIRouter(prefix="/releases", tags=["releases"], responses=error_responses(401, 403))
VIEWABLE = {
    ".json": "application/json",
    ".md": "text/plain; charset=utf-8",
    "SHA256SUMS": "text/plain; charset=utf-8",
    ".png": "image/png",
}
RANGED: dict[int | str, dict[str, Any]] = {
    206: {"description": "Partial content (a Range was asked for)"},
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
    416: {"description": "Range not satisfiable"},
}


def _read(release: Release) -> ReleaseRead:
    return ReleaseRead.model_validate(release, from_attributes=True)


@router.get("", response_model=list[ReleaseRead])
def releases(_user: Engineer, session: SessionDep, project: str | None = None) -> list[ReleaseRead]:
    """Every release, newest first: state, progress and ETA while building, size, counts and
    label statistics once built, why it failed or was superseded."""
    return [_read(r) for r in service.listing(session, project)]


@router.post(
    "",
    response_model=ReleaseRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 404, 409, 422),
)
def create_release(body: ReleaseCreate, user: Engineer, session: SessionDep) -> ReleaseRead:
    """Ask for a release of a project; built by the worker (follow its progress here).
    Leaving raters out by account id is for admins (who see the raters)."""
    if body.exclude_raters and user.role is not UserRole.admin:
        raise PermissionDenied(
            "Only admins may leave raters out by account id: ask an admin for such a release",
            code="admin_only",
        )
    filters = Filters(
        body.min_labels,
        body.min_confidence,
        tuple(sorted(set(body.exclude_raters))),
        body.per_rater,
    )
    release = service.create(
        session, project_name=body.project, name=body.name, filters=filters, actor=user
    )
    defer(session, BUILD_RELEASE, release.id)
    return _read(release)


@router.get("/{name}", response_model=ReleaseRead, responses=error_responses(404, 422))
def release(name: Name, _user: Engineer, session: SessionDep) -> ReleaseRead:
    """One release; a superseded or failed one says why (its files are gone)."""
    return _read(service.get(session, name))


@router.get(
    "/{name}/files", response_model=list[ReleaseFileRead], responses=error_responses(404, 409)
)
def release_files(name: Name, _user: Engineer, session: SessionDep) -> list[ReleaseFileRead]:
    """A ready release's files with their sizes and SHA-256 checksums."""
    found = service.get(session, name, served=True)
    return [ReleaseFileRead.model_validate(f) for f in service.files_of(session, found.id or 0)]


def _record(engine: Engine, user: User, name: str, what: str, size: int) -> None:
    with transaction(engine) as session:
        audit.record(
            session,
            AuditAction.download,
            object_type="release",
            object_id=name,
            actor=user,
            detail={"what": what[:200], "bytes": size},
        )


def _matches(header: str | None, tag: str) -> bool:
    """Whether ``If-None-Match`` names ``tag`` (weak comparison, lists, ``*``)."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or tag in tags


def _ranged(
    request: Request,
    *,
    size: int,
    tag: str,
    media: str,
    body: Callable[[int, int], Iterator[bytes]],
    filename: str,
    on_start: Callable[[], None],
    inline: bool = False,
) -> Response:
    headers = {
        "ETag": tag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{filename}"',
    }
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    asked = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range != tag:
        asked = None  # the copy being resumed is not this one: send it whole
    try:
        chosen = download.parse_range(asked, size)
    except download.RangeNotSatisfiable:
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    start, end = chosen or (0, size)
    if start == 0:
        on_start()
    headers["Content-Length"] = str(end - start)
    if chosen is None:
        return StreamingResponse(body(0, size), media_type=media, headers=headers)
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return StreamingResponse(body(start, end), status_code=206, media_type=media, headers=headers)


@router.get(
    "/{name}/files/{path:path}",
    response_class=Response,
    responses={**error_responses(404, 409, 422), **RANGED},
)
def release_file(
    name: Name,
    path: FilePath,
    request: Request,
    user: Engineer,
    engine: EngineDep,
    storage: StorageDep,
) -> Response:
    """One file of a ready release, resumable (Range, If-Range) and cacheable (ETag: its
    SHA-256)."""
    with Session(engine) as session:
        found = service.get(session, name, served=True)
        entry = service.file_of(session, found.id or 0, path)
    if entry is None:
        raise NotFound(f"Release {name!r} has no file {path!r}", code="file_not_found")
    key = f"{prefix_of(name)}/{entry.path}"
    # What a browser can show opens in a tab (README, manifest, checksums, previews); the rest
    # (NIfTI) downloads. Text is never served as HTML.
    media = next(
        (m for end, m in VIEWABLE.items() if path.endswith(end)), "application/octet-stream"
    )

    def body(start: int, end: int) -> Iterator[bytes]:
        return storage.chunks(key, start, end)

    return _ranged(
        request,
        size=entry.size,
        tag=f'"{entry.sha256}"',
        media=media,
        body=body,
        filename=path.rsplit("/", 1)[-1],
        on_start=lambda: _record(engine, user, name, path, entry.size),
        inline=media != "application/octet-stream",
    )


@router.get(
    "/{name}/archive.tar",
    response_class=Response,
    responses={**error_responses(404, 409, 422), **RANGED},
)
def release_archive(
    name: Name, request: Request, user: Engineer, engine: EngineDep, storage: StorageDep
) -> Response:
    """The whole ready release as one tar (``NAME/...``), built on the fly: resumable with
    Range and If-Range, its ETag fixed by the files' checksums."""
    with Session(engine) as session:
        found = service.get(session, name, served=True)
        files = service.files_of(session, found.id or 0)
    members = [download.Member(f.path, f"{prefix_of(name)}/{f.path}", f.size) for f in files]
    segments = download.tar_layout(name, members)
    size = download.layout_size(segments)

    def body(start: int, end: int) -> Iterator[bytes]:
        return download.stream(storage, segments, start, end)

    return _ranged(
        request,
        size=size,
        tag=download.etag(name, *(f"{f.path} {f.sha256}" for f in files)),
        media="application/x-tar",
        body=body,
        filename=f"{name}.tar",
        on_start=lambda: _record(engine, user, name, "archive.tar", size),
    )
