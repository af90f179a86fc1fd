"""The load test's database (``bench/load.py``, ``bench/hostile.py``): a fresh PostgreSQL
schema, and one project seeded with a case of many small slices, their tasks and volunteers
with bearer tokens."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from backend.auth import consent
from backend.auth.models import User
from backend.core.db import refresh_statistics
from backend.core.security import hash_password
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.imaging.models import Case, Slice
from backend.imaging.preprocess import encode_png
from backend.projects.models import Project
from backend.tasks.models import Task
from tests.factories import create_token

WIDTH, HEIGHT = 64, 48  # a small slice: the benchmark measures the server, not PNG sizes


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """URL of a new, empty PostgreSQL schema on the server of ``url``; dropped afterwards."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"load_{uuid.uuid4().hex[:12]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={name}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


# Cases of this many axial slices, as imported brains have (brain shares rising to the middle).
SLICES_PER_CASE = 150


def _brain(index: int, count: int) -> float:
    return 0.2 + 0.7 * (1 - abs(index - count / 2) / max(count / 2, 1))


def _priority(slice_id: int, brain: float) -> float:
    """The import priority of the code under test (``PYTHONPATH`` may point at an older tree,
    whose imports ranked by brain share alone)."""
    try:
        from backend.tasks.order import queue_priority
    except ImportError:
        return brain
    return queue_priority(slice_id)


def seed(engine: Engine, storage: Storage, *, tasks: int, volunteers: int) -> list[str]:
    """``tasks`` slices in cases of SLICES_PER_CASE (one stored image), their tasks at their
    import priority, and volunteers' tokens."""
    storage.put("cases/load/flair.png", encode_png(np.full((HEIGHT, WIDTH), 80, np.uint8)))
    password_hash = hash_password(uuid.uuid4().hex)  # nobody logs in; tokens authenticate
    with Session(engine) as session:
        # No speed rule: volunteers with no think time answer in milliseconds as the server
        # times them, and would be suspended; this bench measures throughput, not spam.
        project = Project(name=f"load-{uuid.uuid4().hex[:8]}", min_labels=3, fast_ms=0)
        session.add(project)
        session.flush()
        slice_ids = []
        for first in range(0, tasks, SLICES_PER_CASE):
            case = Case(
                project_id=project.id or 0,
                public_id=uuid.uuid4().hex[:16],
                source_sha256=uuid.uuid4().hex,
                source="bench/load.py",
                licence="CC0",
            )
            session.add(case)
            session.flush()
            count = min(SLICES_PER_CASE, tasks - first)
            session.execute(
                insert(Slice),
                [
                    {
                        "case_id": case.id,
                        "axis": "axial",
                        "index": i,
                        "crop_x0": 0,
                        "crop_y0": 0,
                        "crop_x1": WIDTH,
                        "crop_y1": HEIGHT,
                        "image_keys": {"flair": "cases/load/flair.png"},
                        "brain_fraction": _brain(i, count),
                    }
                    for i in range(count)
                ],
            )
            slice_ids += session.execute(
                select(Slice.id, Slice.brain_fraction, Slice.index).where(Slice.case_id == case.id)
            ).all()
        session.execute(
            insert(Task),
            [
                {
                    "project_id": project.id,
                    "slice_id": s,
                    "required_labels": 3,
                    "priority": _priority(s, brain),
                }
                for s, brain, _index in slice_ids
            ],
        )
        tokens = []
        for n in range(volunteers):
            user = User(
                email=f"load{n}@example.org",
                display_name=f"load-{n:05d}",
                password_hash=password_hash,
                consent_version=consent.VERSION,  # as the studio has them accept first
                consent_at=utcnow(),
            )
            session.add(user)
            session.flush()
            tokens.append(create_token(session, user, "load"))
        session.commit()
    # As an import does: statistics for the bulk-loaded tables before the crowd arrives.
    refresh_statistics(engine, "slices", "tasks", "users", "credentials")
    return tokens
