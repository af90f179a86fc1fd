"""Consent scopes per case, withdrawal of a case, and erasure of an account.

Each runs in the caller's transaction and leaves its audit entry in it, so the change and its
trace commit together. Files are deleted only after the commit (``Removal.delete_files``): a
rollback must not lose a blob whose row survives, and what a crash leaves behind is an orphan
that ``mscrowd storage check --fix`` sweeps (answers, gold, feedback, fusion and case folders
are all under its watch).
"""

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from backend.annotations.models import Annotation
from backend.audit import service as audit
from backend.audit.models import AuditAction
from backend.auth.models import User, UserRole
from backend.core.db import serialize_writers
from backend.core.errors import Conflict, NotFound, PermissionDenied
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion import service as fusion
from backend.fusion.adaptive import locked_tasks
from backend.fusion.models import FusionResult
from backend.gamification.models import PointTotal
from backend.imaging.crowd import add_crowd_tasks
from backend.imaging.models import Case, ConsentScope, Slice
from backend.privacy.models import WithdrawnCase
from backend.projects.models import Project
from backend.quality.models import GoldScore, GoldVersion
from backend.releases import service as releases
from backend.releases.build import prefix_of
from backend.rounds.models import ModelVersion, Round
from backend.tasks.models import Assignment, AssignmentState, Task, TaskKind, TaskState
from backend.tasks.slots import refresh_slots

TUTORIAL_FIGURES = "tutorials/figures"


@dataclass
class Removal:
    """Counts of what a withdrawal or erasure removed, and the files to delete after commit."""

    counts: dict[str, int] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)

    def delete_files(self, storage: Storage) -> int:
        """Delete the files (after the commit); how many keys and prefixes were removed."""
        for key in sorted(self.keys):
            storage.delete(key)
        for prefix in sorted(self.prefixes):
            storage.delete_prefix(prefix)
        return len(self.keys) + len(self.prefixes)


def case_by_public_id(session: Session, public_id: str, *, lock: bool = False) -> Case:
    """The case, locked against a concurrent change when ``lock``; ``NotFound`` saying
    whether it was withdrawn."""
    query = select(Case).where(Case.public_id == public_id)
    if lock:
        serialize_writers(session)
        query = query.with_for_update()
    case = session.exec(query).first()
    if case is None:
        if session.exec(select(WithdrawnCase).where(WithdrawnCase.public_id == public_id)).first():
            raise NotFound(f"Case {public_id} was withdrawn", code="case_withdrawn")
        raise NotFound(f"No case {public_id}", code="case_not_found")
    return case


def _slice_ids(session: Session, case_id: int) -> list[int]:
    return [int(i or 0) for i in session.exec(select(Slice.id).where(Slice.case_id == case_id))]


def _case_tasks(session: Session, slice_ids: list[int], kind: TaskKind | None = None) -> list[int]:
    query = select(Task.id).where(col(Task.slice_id).in_(slice_ids))
    if kind is not None:
        query = query.where(Task.kind == kind)
    return sorted(int(i) for i in session.exec(query) if i is not None)


def set_consent(
    session: Session,
    *,
    public_id: str,
    scopes: frozenset[ConsentScope],
    actor: User | None,
    licence: str | None = None,
) -> dict[str, Any]:
    """Set a case's consent to exactly ``scopes`` (and its licence); what changed.

    Crowd viewing decides in SQL whether volunteers are served the case's tasks (the queue),
    its images (lease routes) and may submit on a lease they still hold (``task_withdrawn``):
    taking it back withholds the tasks at once and giving it back serves them again, their
    states untouched (a complete or review task stays so). A case imported without it has no
    crowd tasks: granting it opens them."""
    case = case_by_public_id(session, public_id, lock=True)
    assert case.id is not None
    before = case.scopes
    project = session.get(Project, case.project_id)
    assert project is not None
    case.allow(scopes)
    if licence is not None:
        case.licence = licence
    session.add(case)
    slice_ids = _slice_ids(session, case.id)
    opened = 0
    if ConsentScope.crowd_viewing in scopes and not _case_tasks(
        session, slice_ids, TaskKind.normal
    ):
        slices = list(session.exec(select(Slice).where(Slice.case_id == case.id)))
        opened = add_crowd_tasks(session, project, case, slices)
    withheld = 0
    if ConsentScope.crowd_viewing not in scopes and slice_ids:
        withheld = int(
            session.exec(
                select(sa.func.count())
                .select_from(Task)
                .where(col(Task.slice_id).in_(slice_ids), Task.state == TaskState.open)
            ).one()
        )
    change = {
        "before": sorted(before),
        "after": sorted(scopes),
        "licence": case.licence,
        "tasks_opened": opened,
        "tasks_withheld": withheld,
    }
    audit.record(
        session,
        AuditAction.consent_change,
        object_type="case",
        object_id=public_id,
        actor=actor,
        detail=change,
    )
    return change


def _flag_models(session: Session, project_id: int, public_id: str) -> list[int]:
    """Mark the project's model versions that learned from (or were evaluated on) the case."""
    flagged = []
    for version in session.exec(
        select(ModelVersion).where(ModelVersion.project_id == project_id)
    ).all():
        snapshot = version.snapshot or {}
        if public_id in (snapshot.get("cases") or {}) or public_id in (
            snapshot.get("holdout") or []
        ):
            version.withdrawn_cases = sorted({*version.withdrawn_cases, public_id})
            session.add(version)
            flagged.append(int(version.id or 0))
    return flagged


def withdraw_case(
    session: Session, storage: Storage, *, public_id: str, actor: User | None, reason: str
) -> tuple[WithdrawnCase, Removal]:
    """Withdraw a case in the caller's transaction: its rows go (slices, volumes, tasks and
    their leases, answers, gold, fused labels, tutorial use), model versions trained on it
    are flagged, a ``WithdrawnCase`` keeps its fingerprint so it is never imported again, and
    the audit log records the counts. Delete ``Removal``'s files after the commit."""
    case = case_by_public_id(session, public_id, lock=True)
    assert case.id is not None
    project = session.get(Project, case.project_id, with_for_update=True)
    assert project is not None
    assert project.id is not None
    slice_ids = _slice_ids(session, case.id)
    task_ids = _case_tasks(session, slice_ids)
    locked_tasks(session, task_ids)  # a submit in flight finishes first or finds no lease
    removal = Removal(prefixes={f"cases/{public_id}"})
    removal.keys |= _keys(session, col(Annotation.mask_key), col(Annotation.task_id), task_ids)
    removal.keys |= _keys(
        session,
        col(GoldScore.overlay_key),
        col(Annotation.task_id),
        task_ids,
        join=(Annotation, col(Annotation.id) == col(GoldScore.annotation_id)),
    )
    removal.keys |= _keys(session, col(FusionResult.soft_key), col(FusionResult.task_id), task_ids)
    removal.keys |= _keys(session, col(GoldVersion.mask_key), col(GoldVersion.slice_id), slice_ids)
    wanted = {f"{TUTORIAL_FIGURES}/{i}-" for i in slice_ids}
    removal.keys |= {
        key for key in storage.list(TUTORIAL_FIGURES) if key[: key.rindex("-") + 1] in wanted
    }
    leases = session.exec(
        select(sa.func.count())
        .select_from(Assignment)
        .where(col(Assignment.task_id).in_(task_ids), Assignment.state == AssignmentState.active)
    ).one()
    answers = session.exec(
        select(sa.func.count()).select_from(Annotation).where(col(Annotation.task_id).in_(task_ids))
    ).one()
    removal.counts = {
        "slices": len(slice_ids),
        "tasks": len(task_ids),
        "active_leases": int(leases),
        "answers": int(answers),
        "files": len(removal.keys),
    }
    flagged = _flag_models(session, project.id, public_id)
    removal.counts["model_versions_flagged"] = len(flagged)
    superseded = releases.supersede(session, project.id, public_id, reason)
    removal.prefixes |= {prefix_of(name) for name in superseded}
    removal.counts["releases_superseded"] = len(superseded)
    if public_id in project.holdout_cases:
        project.holdout_cases = [c for c in project.holdout_cases if c != public_id]
        session.add(project)
    gone = set(slice_ids)
    for round_ in session.exec(select(Round).where(Round.project_id == project.id)).all():
        if gone & set(round_.selected or []):
            round_.selected = [i for i in round_.selected if i not in gone]
            session.add(round_)
    # Tasks first (a gold task's version is RESTRICT), then the case and all that hangs off it.
    session.execute(sa.delete(Task).where(col(Task.id).in_(task_ids)))
    session.execute(sa.delete(GoldVersion).where(col(GoldVersion.slice_id).in_(slice_ids)))
    session.execute(sa.delete(Case).where(col(Case.id) == case.id))
    session.expunge(case)
    withdrawn = WithdrawnCase(
        project_id=project.id,
        public_id=public_id,
        source_sha256=case.source_sha256,
        reason=reason[:300],
        by_user_id=None if actor is None else actor.id,
        report={**removal.counts, "model_versions": flagged, "releases": superseded},
        withdrawn_at=utcnow(),
    )
    session.add(withdrawn)
    audit.record(
        session,
        AuditAction.withdrawal,
        object_type="case",
        object_id=public_id,
        actor=actor,
        detail={"project": project.name, "reason": reason[:300], **withdrawn.report},
    )
    session.flush()
    return withdrawn, removal


def _keys(
    session: Session,
    key: Any,
    column: Any,
    ids: Iterable[int],
    join: tuple[Any, Any] | None = None,
) -> set[str]:
    """The storage keys ``key`` of the rows whose ``column`` is one of ``ids``."""
    ids = list(ids)
    if not ids:
        return set()
    query = sa.select(key)
    if join is not None:
        query = query.join(*join)
    return {k for k in session.execute(query.where(column.in_(ids))).scalars() if k}


def _user_tables() -> list[sa.Table]:
    """Tables whose rows belong to one account (a foreign key to users that cascades), except
    the ones that stay: the points ledger (project totals) and the board totals (hidden)."""
    keep = {"users", "points_ledger", "point_totals"}
    found = []
    for table in SQLModel.metadata.sorted_tables:
        if table.name in keep:
            continue
        for key in table.foreign_keys:
            if key.column.table.name == "users" and key.ondelete == "CASCADE":
                found.append(table)
                break
    return found


def erase_user(
    session: Session, storage: Storage, *, user_id: int, actor: User | None
) -> tuple[dict[str, int], Removal]:
    """Erase an account (GDPR): its answers, leases, reports, progress, tokens and quality
    records go; the tasks it answered are re-fused without it (or collect answers again);
    the account row stays pseudonymised (no login name, a random name, no password) so its
    id is never reused; the points ledger stays, hidden from the boards. Counts removed."""
    serialize_writers(session)
    user = session.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None:
        raise NotFound(f"No account {user_id}", code="user_not_found")
    if user.role is UserRole.admin:
        raise PermissionDenied("An admin account cannot be erased; change its role first")
    if getattr(user, "erased_at", None) is not None:
        raise Conflict("This account was already erased", code="already_erased")
    task_rows = session.exec(
        select(Task.id, Task.project_id)
        .join(Assignment, col(Assignment.task_id) == col(Task.id))
        .where(Assignment.user_id == user_id)
    ).all()
    locked_tasks(session, sorted({int(t) for t, _ in task_rows if t is not None}))
    removal = Removal()
    removal.keys |= _keys(session, col(Annotation.mask_key), col(Annotation.user_id), [user_id])
    removal.keys |= _keys(session, col(GoldScore.overlay_key), col(GoldScore.user_id), [user_id])
    counts: dict[str, int] = {}
    for table in _user_tables():
        for column in table.columns:
            if any(
                k.column.table.name == "users" and k.ondelete == "CASCADE"
                for k in column.foreign_keys
            ):
                if table.name == "tasks":  # repeat tasks made for this rater
                    continue
                result = session.execute(sa.delete(table).where(column == user_id))
                deleted = getattr(result, "rowcount", 0)
                if deleted:
                    counts[table.name] = counts.get(table.name, 0) + int(deleted)
    session.execute(sa.delete(Task).where(col(Task.for_user_id) == user_id))
    session.execute(
        sa.update(PointTotal).where(col(PointTotal.user_id) == user_id).values(hidden=True)
    )
    user.email = None
    # Random, so no one can take the name first and make the erasure fail.
    user.display_name = f"erased-{secrets.token_hex(8)}"
    user.password_hash = "!erased"
    user.is_active = False
    user.consent_version = None
    user.erased_at = utcnow()
    session.add(user)
    session.flush()
    remaining = set(
        session.exec(select(Task.id).where(col(Task.id).in_([t for t, _ in task_rows])))
    )
    by_project: dict[int, list[int]] = {}
    for task_id, project_id in task_rows:
        if task_id in remaining:
            by_project.setdefault(int(project_id), []).append(int(task_id or 0))
    refused = 0
    for project_id, ids in sorted(by_project.items()):
        for task_id in sorted(set(ids)):
            refresh_slots(session, task_id)
        fused = fusion.refuse_tasks(
            session=session, storage=storage, project_id=project_id, task_ids=sorted(set(ids))
        )
        refused += len(fused)
    counts["tasks_refused"] = refused
    counts["files"] = len(removal.keys)
    audit.record(
        session,
        AuditAction.withdrawal,
        object_type="user",
        object_id=user_id,
        actor=actor,
        detail={"erasure": True, **counts},
    )
    return counts, removal
