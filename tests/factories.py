"""Small builders for test data: ``create_x(session, **overrides)``, no giant factory files."""

import struct
import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.annotations import service as annotations
from backend.annotations.masks import RleMask
from backend.auth import consent, tokens
from backend.auth.models import CredentialKind, TokenScope, User, UserRole
from backend.core.storage import Storage
from backend.imaging.models import Case, Slice
from backend.imaging.preprocess import encode_png
from backend.projects.models import Project
from backend.tasks.models import Task
from backend.tasks.service import Lease

PASSWORD = "correct horse battery"
WIDTH, HEIGHT = 24, 16


def create_project(session: Session, **overrides: Any) -> Project:
    # No repeats unless a test asks: they are extra tasks the foundation's counts do not expect.
    # No speed rule either (fast_ms 0): test raters answer in milliseconds as the server times
    # them; the tests of the rule set it.
    fields = {
        "name": f"p{np.random.randint(1_000_000)}",
        "repeat_rate": 0.0,
        "fast_ms": 0,
        **overrides,
    }
    fields.setdefault("max_labels", max(7, fields.get("min_labels", 3)))
    project = Project(**fields)
    session.add(project)
    session.flush()
    return project


def create_case_row(session: Session, project: Project) -> Case:
    """An empty case of ``project`` with a random public id and fingerprint."""
    assert project.id is not None
    case = Case(
        project_id=project.id,
        public_id=f"c{np.random.randint(1 << 30):08x}",
        source_sha256=f"{np.random.randint(1 << 62):064x}",
        source="test",
        licence="CC0",
    )
    session.add(case)
    session.flush()
    return case


def create_tasks(
    session: Session,
    storage: Storage,
    *,
    count: int = 3,
    required_labels: int = 3,
    project: Project | None = None,
) -> list[Task]:
    """``count`` open tasks on consecutive slices of one small case with stored FLAIR images."""
    project = project or create_project(session, min_labels=required_labels)
    case = create_case_row(session, project)
    assert case.id is not None
    tasks = []
    for index in range(count):
        key = f"cases/{case.public_id}/axial/{index:04d}/flair.png"
        storage.put(key, encode_png(np.full((HEIGHT, WIDTH), index * 10, dtype=np.uint8)))
        slice_ = Slice(
            case_id=case.id,
            index=index,
            crop_x0=0,
            crop_y0=0,
            crop_x1=WIDTH,
            crop_y1=HEIGHT,
            image_keys={"flair": key},
            brain_fraction=0.5,
        )
        session.add(slice_)
        session.flush()
        assert slice_.id is not None
        task = Task(project_id=project.id, slice_id=slice_.id, required_labels=required_labels)
        session.add(task)
        tasks.append(task)
    session.flush()
    return tasks


def create_token(
    session: Session, user: User, name: str = "test", scopes: Sequence[TokenScope] | None = None
) -> str:
    """A bearer token secret for ``user``, valid a day (no browser session needed), with
    ``scopes`` (every scope unless given: role tests want the role, not the scope, to decide).
    """
    secret, _credential = tokens.issue_credential(
        session=session,
        user=user,
        kind=CredentialKind.token,
        name=name,
        lifetime=timedelta(days=1),
        scopes=tuple(TokenScope) if scopes is None else scopes,
    )
    return secret


def signup(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign a volunteer up on ``client`` (cookies kept) and accept the consent, as the studio
    does before the first task; returns the CSRF token."""
    response = client.post("/api/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    token: str = response.json()["csrf_token"]
    client.headers["X-CSRF-Token"] = token
    agreed = client.post("/api/auth/consent", json={"version": consent.VERSION})
    assert agreed.status_code == 200, agreed.text
    return token


def rle(counts: list[int] | None = None) -> RleMask:
    """An RLE mask at the factory slice size; empty ("no lesion") by default."""
    return RleMask(encoding="rle", width=WIDTH, height=HEIGHT, counts=counts or [WIDTH * HEIGHT])


def submit(
    session: Session,
    storage: Storage,
    user: User,
    lease: Lease | int,
    *,
    mask: RleMask | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> annotations.Submission:
    """Submit a mask for a lease (or lease id) through the service, as the API does."""
    return annotations.submit(
        session=session,
        storage=storage,
        user=user,
        lease_id=lease if isinstance(lease, int) else lease.id,
        mask_in=mask or rle(),
        max_mask_bytes=10_000,
        idempotency_key=key,
        duration_ms=6000,  # a plausible painting time (fast answers count as spam)
        client_info={"ui": "test"},
        now=now,
    )


def set_role(engine: Engine, role: UserRole) -> None:
    """Give the only user in the database ``role`` (tests sign one user up, then promote it)."""
    with Session(engine) as session:
        user = session.exec(select(User)).one()
        user.role = role
        session.add(user)
        session.commit()


def png_bomb(side: int = 16384) -> bytes:
    """A valid 65-byte PNG header declaring ``side`` x ``side`` greyscale pixels (a
    decompression bomb: Pillow refuses to open it beyond its pixel limit)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return (
        signature
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
