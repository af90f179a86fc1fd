"""Teaching material: cases an admin sets aside for tutorials, the catalogue of what each of
their slices shows, and finding a slice for a lesson's figure, an exercise or a
qualification item.

A tutorial case's slices are never crowd tasks, gold or held out: marking one retires its
crowd tasks, ends their leases and retires its gold, as holding a case out does.
"""

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage
from sqlalchemy import update
from sqlmodel import Session, col, delete, select

from backend.core.errors import Conflict, NotFound
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.quality.gold import FROZEN
from backend.quality.models import GoldVersion
from backend.tasks.models import Assignment, AssignmentState, Task, TaskKind, TaskState
from backend.tutorials.models import LesionLoad, MaterialKind, TutorialSlice

# Lesion pixels on a slice (about 1 mm pixels) that make its load medium or large: about
# 0.4 and 1.2 cm2, the middle and top tenth of lesion slices in the synthetic demo.
MEDIUM_PIXELS, LARGE_PIXELS = 40, 120
# An empty slice must show this much brain to teach anything (the top and bottom of the
# head show little but bone-free background).
MIN_BRAIN_FRACTION = 0.25


def load_of(pixels: int) -> LesionLoad:
    """The lesion load a slice's reference pixels count as."""
    if pixels >= LARGE_PIXELS:
        return LesionLoad.large
    return LesionLoad.medium if pixels >= MEDIUM_PIXELS else LesionLoad.small


def _case(session: Session, project_name: str, public_id: str) -> tuple[Project, Case]:
    project = session.exec(select(Project).where(Project.name == project_name)).first()
    if project is None:
        raise NotFound(f"No project called {project_name!r}")
    case = session.exec(
        select(Case).where(Case.project_id == project.id, Case.public_id == public_id)
    ).first()
    if case is None:
        raise NotFound(f"No case {public_id!r} in project {project_name!r}")
    return project, case


def use_case(
    *,
    session: Session,
    storage: Storage,
    project_name: str,
    public_id: str,
    mimics: Mapping[int, str] | None = None,
) -> list[TutorialSlice]:
    """Set a case aside as tutorial material and catalogue its slices (``mimics``: slice index
    -> mimic kind, where the demo generator put them). Idempotent; a held-out case or one
    without an expert reference is refused."""
    project, case = _case(session, project_name, public_id)
    if case.public_id in project.holdout_cases:
        raise Conflict(
            f"Case {public_id!r} is held out for evaluating models; release it first",
            code="case_held_out",
        )
    if not case.reference_voxels:
        raise Conflict(
            f"Case {public_id!r} has no expert reference: lessons need one to show and score",
            code="no_reference",
        )
    assert case.id is not None
    if not case.tutorial:
        _retire(session, case.id)
        case.tutorial = True
        session.add(case)
    session.execute(delete(TutorialSlice).where(col(TutorialSlice.case_id) == case.id))
    slices = session.exec(select(Slice).where(Slice.case_id == case.id)).all()
    rows = list(_catalogue(storage, case.id, slices, mimics or {}))
    session.add_all(rows)
    session.flush()
    return rows


def release_case(*, session: Session, project_name: str, public_id: str) -> None:
    """Return a tutorial case to the crowd: its catalogue goes and its unanswered crowd tasks
    reopen (practice and qualification answers on it are kept)."""
    _project, case = _case(session, project_name, public_id)
    if not case.tutorial:
        raise Conflict(f"Case {public_id!r} is not tutorial material", code="not_tutorial")
    session.execute(delete(TutorialSlice).where(col(TutorialSlice.case_id) == case.id))
    case.tutorial = False
    session.add(case)
    in_case = col(Task.slice_id).in_(select(Slice.id).where(Slice.case_id == case.id))
    current_gold = select(GoldVersion.slice_id).where(col(GoldVersion.retired_at).is_(None))
    session.execute(
        update(Task)
        .where(
            in_case,
            col(Task.kind) == TaskKind.normal,
            col(Task.state) == TaskState.retired,
            col(Task.submitted_labels) < col(Task.required_labels),
            col(Task.slice_id).not_in(current_gold),
        )
        .values(state=TaskState.open)
    )
    session.flush()


def _retire(session: Session, case_id: int) -> None:
    """The case's crowd tasks leave the queue, their leases end, its gold is retired."""
    now = utcnow()
    in_case = col(Task.slice_id).in_(select(Slice.id).where(Slice.case_id == case_id))
    session.execute(
        update(Task)
        .where(in_case, col(Task.state).in_([TaskState.open, TaskState.review]))
        .values(state=TaskState.retired)
    )
    session.execute(
        update(Assignment)
        .where(
            col(Assignment.task_id).in_(select(Task.id).where(in_case)),
            col(Assignment.state) == AssignmentState.active,
        )
        .values(state=AssignmentState.skipped, lease_expires_at=now)
    )
    session.execute(
        update(GoldVersion)
        .where(
            col(GoldVersion.slice_id).in_(select(Slice.id).where(Slice.case_id == case_id)),
            col(GoldVersion.retired_at).is_(None),
        )
        .values(retired_at=now)
    )


def _catalogue(
    storage: Storage, case_id: int, slices: Sequence[Slice], mimics: Mapping[int, str]
) -> Iterable[TutorialSlice]:
    """What each slice can teach: lesions (with their load), a mimic and nothing else, or
    nothing at all (enough brain, no lesion)."""
    for item in slices:
        assert item.id is not None
        if item.reference_key is None:
            continue
        reference = FROZEN.get(storage, item.reference_key, mask=True)
        pixels = int(np.count_nonzero(reference))
        lesions = int(ndimage.label(reference)[1]) if pixels else 0
        if pixels:
            kind, load = MaterialKind.lesion, load_of(pixels)
        elif item.index in mimics:
            kind, load = MaterialKind.mimic, None
        elif item.brain_fraction >= MIN_BRAIN_FRACTION:
            kind, load = MaterialKind.empty, None
        else:
            continue
        yield TutorialSlice(
            slice_id=item.id,
            case_id=case_id,
            kind=kind,
            load=load,
            mimic=mimics.get(item.index) if kind is MaterialKind.mimic else None,
            lesions=lesions,
            reference_pixels=pixels,
        )


def has_material(session: Session) -> bool:
    """Whether any slice is catalogued as tutorial material (the qualification gate holds
    only then: ``tasks.queue._gate``)."""
    return session.exec(select(TutorialSlice.slice_id).limit(1)).first() is not None


def matching(
    session: Session,
    *,
    kind: MaterialKind,
    load: LesionLoad | None = None,
    mimic: str | None = None,
) -> list[TutorialSlice]:
    """Tutorial slices of a kind (and load or mimic), in a fixed order (slice id)."""
    query = select(TutorialSlice).where(TutorialSlice.kind == kind)
    if load is not None:
        query = query.where(TutorialSlice.load == load)
    if mimic is not None:
        query = query.where(TutorialSlice.mimic == mimic)
    return list(session.exec(query.order_by(col(TutorialSlice.slice_id))).all())
