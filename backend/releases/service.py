"""Creating, building, listing and superseding releases.

``create`` validates and records a release as ``building``; ``run`` (the Celery job
``releases.build``, or the CLI in-process) claims it, writes its files and records them in one
transaction, or marks it failed and deletes what it wrote: a release is never visible half
built. A second request for a name in use is refused, and a second job for a release already
taken on does nothing, so nothing is built twice."""

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.annotations.models import Annotation
from backend.audit import service as audit
from backend.audit.models import AuditAction
from backend.auth.models import User
from backend.core.db import transaction
from backend.core.errors import Conflict, InvalidInput, NotFound
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.projects.models import Project
from backend.releases import build as builder
from backend.releases.models import Release, ReleaseFile, ReleaseStatus
from backend.releases.plan import Filters, check_not_empty, make_plan
from backend.tasks.models import Task

log = logging.getLogger(__name__)
MAX_ID = 2**31 - 1  # account ids are 32-bit integers
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _project(session: Session, name: str) -> Project:
    project = session.exec(select(Project).where(Project.name == name)).first()
    if project is None:
        raise NotFound(f"No project {name!r}", code="project_not_found")
    return project


def _free_name(session: Session, project: Project) -> str:
    """``PROJECT-rN`` with the first N free (the project's name cut to leave room)."""
    base = project.name[:56]
    taken = {name.lower() for name in session.exec(select(Release.name)).all()}
    n = 1
    while f"{base}-r{n}".lower() in taken:
        n += 1
    return f"{base}-r{n}"


def create(
    session: Session,
    *,
    project_name: str,
    name: str | None,
    filters: Filters,
    actor: User | None,
) -> Release:
    """Record a release to build; ``InvalidInput`` for a bad name or filters or a release
    that would hold no case, ``Conflict`` for a name in use."""
    project = _project(session, project_name)
    if name is not None and not NAME.fullmatch(name):
        raise InvalidInput(
            "A release name is 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
            code="invalid_release_name",
        )
    if filters.min_labels < 1 or not 0.0 <= filters.min_confidence <= 1.0:
        raise InvalidInput("min_labels must be at least 1 and min_confidence within 0..1")
    chosen = name or _free_name(session, project)
    existing = session.exec(
        select(Release).where(sa.func.lower(Release.name) == chosen.lower())
    ).first()
    if existing is not None:
        raise _taken(chosen, existing.name, existing.status.value)
    unknown = set(filters.exclude_raters) - _raters_of(session, project, filters.exclude_raters)
    if unknown:
        raise InvalidInput(
            f"{len(unknown)} of the raters to leave out never answered in project {project.name!r}",
            code="unknown_rater",
        )
    check_not_empty(session, project, filters)  # refuses a release that would hold no case
    assert project.id is not None
    release = Release(
        project_id=project.id,
        name=chosen,
        created_by=None if actor is None else actor.id,
        filters=filters.as_dict(),
        message="queued",
    )
    session.add(release)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # Asked for at the same moment under the same name: the other request has it.
        raise _taken(chosen, chosen, "building") from None
    return release


def _taken(asked: str, held: str, state: str) -> Conflict:
    return Conflict(
        f"A release named {held!r} exists already ({state}); names differ in more than case"
        if asked != held
        else f"A release named {asked!r} exists already ({state})",
        code="release_name_taken",
    )


def _raters_of(session: Session, project: Project, among: tuple[int, ...]) -> set[int]:
    """Those of ``among`` who answered a task of the project."""
    among = tuple(u for u in among if 0 < u <= MAX_ID)
    if not among:
        return set()
    return set(
        session.exec(
            select(Annotation.user_id)
            .join(Task, col(Task.id) == col(Annotation.task_id))
            .where(Task.project_id == project.id, col(Annotation.user_id).in_(among))
            .distinct()
        ).all()
    )


def _claim(engine: Engine, release_id: int) -> bool:
    with transaction(engine) as session:
        claimed = session.execute(
            sa.update(Release)
            .where(
                col(Release.id) == release_id,
                col(Release.status) == ReleaseStatus.building,
                col(Release.started_at).is_(None),
            )
            .values(started_at=utcnow(), message="starting")
        )
        return bool(getattr(claimed, "rowcount", 0))


def _report(engine: Engine, release_id: int) -> builder.Progress:
    last = [0.0]

    def report(percent: float, eta: float | None, message: str) -> None:
        now = utcnow().timestamp()
        if percent < 100 and now - last[0] < 1.0:
            return  # at most a write a second
        last[0] = now
        with transaction(engine) as session:
            session.execute(
                sa.update(Release)
                .where(col(Release.id) == release_id)
                .values(progress=round(percent, 1), eta_seconds=eta, message=message[:200])
            )

    return report


def run(
    engine: Engine,
    storage: Storage,
    release_id: int,
    *,
    url: str = "",
    secret: str = "",
    progress: Callable[[float, float | None, str], None] | None = None,
) -> Release | None:
    """Build a recorded release (claimed first: None when another job has it or it is not
    building). On failure its files are deleted and it is marked failed."""
    if not _claim(engine, release_id):
        return None
    report = _report(engine, release_id)

    def both(percent: float, eta: float | None, message: str) -> None:
        report(percent, eta, message)
        if progress is not None:
            progress(percent, eta, message)

    with Session(engine) as session:
        release = session.get_one(Release, release_id)
        project = session.get_one(Project, release.project_id)
        name, filters = release.name, Filters.of(release.filters)
        plan = make_plan(session, project, filters)
    try:
        built = builder.build(storage, name, plan, filters, url=url, secret=secret, progress=both)
        with transaction(engine) as session:
            release = session.get_one(Release, release_id, with_for_update=True)
            if release.status is not ReleaseStatus.building:
                # Superseded while it was built (a case withdrawn): none of it is served.
                storage.delete_prefix(builder.prefix_of(name))
                return None
            for path, (size, digest) in built.files.items():
                session.add(ReleaseFile(release_id=release_id, path=path, size=size, sha256=digest))
            release.status = ReleaseStatus.ready
            release.finished_at = utcnow()
            release.stats, release.provenance = built.stats, built.provenance
            release.cases = built.cases
            release.size_bytes = sum(size for size, _ in built.files.values())
            release.file_count = len(built.files)
            release.progress, release.eta_seconds, release.message = 100.0, 0.0, "ready"
            session.add(release)
            audit.record(
                session,
                AuditAction.release,
                object_type="release",
                object_id=name,
                detail={
                    "project": plan.project,
                    "cases": built.stats["cases"],
                    "labelled_slices": built.stats["labelled_slices"],
                    "files": len(built.files),
                    "bytes": release.size_bytes,
                    "filters": filters.as_dict(),
                },
            )
            session.flush()
            session.expunge(release)
            return release
    except Exception as exc:
        # The details (paths, the storage's own words) go to the server's log, not the API.
        log.exception("release %s failed", name)
        storage.delete_prefix(builder.prefix_of(name))
        with transaction(engine) as session:
            session.execute(
                sa.update(Release)
                .where(col(Release.id) == release_id)
                .values(
                    status=ReleaseStatus.failed,
                    finished_at=utcnow(),
                    error=f"the build failed ({type(exc).__name__}); the server's log says why",
                    message="failed",
                )
            )
        raise


def get(session: Session, name: str, *, served: bool = False) -> Release:
    """A release by name; with ``served``, only one that can be downloaded (ready)."""
    release = session.exec(select(Release).where(Release.name == name)).first()
    if release is None:
        raise NotFound(f"No release {name!r}", code="release_not_found")
    if served and release.status is not ReleaseStatus.ready:
        reason = release.error or release.status.value
        raise Conflict(
            f"Release {name!r} is {release.status.value} and is not served ({reason})",
            code=f"release_{release.status.value}",
        )
    return release


def listing(session: Session, project: str | None = None) -> list[Release]:
    query = select(Release).order_by(col(Release.id).desc())
    if project is not None:
        query = query.join(Project, col(Project.id) == col(Release.project_id)).where(
            Project.name == project
        )
    return list(session.exec(query).all())


def files_of(session: Session, release_id: int) -> list[ReleaseFile]:
    return list(
        session.exec(
            select(ReleaseFile)
            .where(ReleaseFile.release_id == release_id)
            .order_by(col(ReleaseFile.path))
        ).all()
    )


def file_of(session: Session, release_id: int, path: str) -> ReleaseFile | None:
    """One file of a release by its path (None: the release has no such file)."""
    return session.exec(
        select(ReleaseFile).where(ReleaseFile.release_id == release_id, ReleaseFile.path == path)
    ).first()


def supersede(
    session: Session, project_id: int, public_id: str, reason: str, now: datetime | None = None
) -> list[str]:
    """Mark the project's releases holding a case (and those still building, which may)
    superseded: a
    withdrawal. They are served no more; the caller deletes their files after the commit
    (``build.prefix_of``); the API still says what they were and why they went. The names."""
    names = []
    for release in session.exec(
        select(Release).where(
            Release.project_id == project_id,
            col(Release.status).in_([ReleaseStatus.ready, ReleaseStatus.building]),
        )
    ).all():
        if public_id not in (release.cases or []) and release.status is ReleaseStatus.ready:
            continue
        release.status = ReleaseStatus.superseded
        release.error = f"case {public_id} was withdrawn on {(now or utcnow()):%Y-%m-%d}: {reason}"[
            :1000
        ]
        session.add(release)
        session.execute(sa.delete(ReleaseFile).where(col(ReleaseFile.release_id) == release.id))
        names.append(release.name)
    return names


def superseded_manifest(release: Release) -> dict[str, Any]:
    return {
        "name": release.name,
        "superseded": release.error,
        "cases": list(release.cases),
        "stats": release.stats,
        "provenance": release.provenance,
    }
