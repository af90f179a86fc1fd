"""The load test's database (``bench/load.py``, ``bench/hostile.py``): a fresh PostgreSQL
schema, and one project seeded with cases of many slices, their tasks and volunteers with
bearer tokens.

Two seeds. ``plain``: small slices of one stored FLAIR, no gold (the server's bare labelling
loop). ``realistic`` (the default of ``bench/load.py``): slices at a cropped brain's size with
FLAIR, T1 and T2 and an expert reference mask each, drawn from ``PATTERNS`` synthetic brains
(bright lesions on FLAIR and T2, dark on T1; one with none); the project's own gold pool
approved from the references (``quality.gold.seed_gold``, the demo experts' step) and served on
the project's default gold schedule; the default quality settings except the speed rule (a
crowd with no think time answers faster than any human, and would all be suspended by it).
"""

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from backend.annotations.masks import to_png
from backend.auth import consent
from backend.auth.models import User
from backend.core.db import refresh_statistics
from backend.core.security import hash_password
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.imaging.models import Case, Slice
from backend.imaging.preprocess import encode_png
from backend.projects.models import Project
from backend.quality.gold import seed_gold
from backend.quality.models import RaterStats
from backend.quality.reliability import TrustLevel
from backend.tasks.models import Task
from tests.factories import create_token

# Trees before issue 36 have no qualification gate to pass (checked on the model: an
# editable install may still find this tree's backend.tutorials from an older one).
GATE = "tutorial" in Case.model_fields
if GATE:
    from backend.tutorials.material import use_case

WIDTH, HEIGHT = 64, 48  # the plain seed's small slice: the server, not PNG sizes
# The realistic seed's slice: a cropped adult brain at 1 mm (the demo's and open_ms_data's
# crops are 150-200 by 180-220 pixels).
REAL_WIDTH, REAL_HEIGHT = 176, 208
PATTERNS = 8  # distinct synthetic brains (each with its own lesions; the first has none)
LESION_LEVEL = 200  # FLAIR grey above which a pixel is lesion (the brain is about 100)


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


def pattern(n: int) -> dict[str, NDArray[np.uint8]]:
    """Synthetic brain ``n``: FLAIR, T1 and T2 slices (8-bit, with noise so they compress
    like real ones) and the lesion mask (0/1); pattern 0 has no lesion."""
    rng = np.random.default_rng(1000 + n)
    y, x = np.mgrid[0:REAL_HEIGHT, 0:REAL_WIDTH]
    brain = ((x - REAL_WIDTH / 2) / (REAL_WIDTH * 0.44)) ** 2 + (
        (y - REAL_HEIGHT / 2) / (REAL_HEIGHT * 0.46)
    ) ** 2 < 1
    lesion = np.zeros(brain.shape, bool)
    for _ in range(0 if n == 0 else 1 + n % 4):
        cy, cx = rng.integers(50, REAL_HEIGHT - 50), rng.integers(45, REAL_WIDTH - 45)
        ry, rx = rng.integers(3, 4 + 2 * n), rng.integers(3, 4 + n)
        lesion |= ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
    noise = rng.normal(0, 6, brain.shape)

    def image(tissue: float, lesions: float) -> NDArray[np.uint8]:
        grey = np.where(brain, tissue, 0.0) + np.where(brain, noise, 0.0)
        grey = np.where(lesion, lesions + noise, grey)
        return np.clip(grey, 0, 255).astype(np.uint8)

    return {
        "flair": image(100, 235),
        "t1": image(140, 50),
        "t2": image(90, 220),
        "lesion": lesion.astype(np.uint8),
    }


def _store_sprites(
    storage: Storage, rows: Sequence[Any], count: int, case_number: int, looks: list[dict[str, Any]]
) -> None:
    """Each slice's sprite where the import puts it (``imaging.sprite``). Slices of one pattern
    with the same neighbours share one sprite's bytes: stored once, hard-linked for the rest."""
    try:
        from backend.imaging import sprite
    except ImportError:  # the code under test (``PYTHONPATH``) predates sprites
        return
    built: dict[tuple[int, tuple[int, ...]], str] = {}
    reach = sprite.NEIGHBOUR_REACH
    for slice_id, _brain, index in rows:
        look = (index + case_number) % len(looks)
        offsets = tuple(o for o in range(-reach, reach + 1) if o and 0 <= index + o < count)
        keys = looks[look]["image_keys"]
        near = [(o, looks[(look + o) % len(looks)]["image_keys"]) for o in offsets]
        master = built.get((look, offsets))
        if master is None:
            master = f"cases/load/sprites/{look}{''.join(f'_{o}' for o in offsets)}.png"
            data = sprite.build([storage.get(k) for k in sprite.frame_keys(keys, near)])
            storage.put(master, data)
            built[look, offsets] = master
        target = Path(storage.root) / sprite.sprite_key(slice_id, keys)
        target.unlink(missing_ok=True)
        os.link(Path(storage.root) / master, target)


def _tutorial_case(
    session: Session,
    storage: Storage,
    project: Project,
    looks: list[dict[str, Any]],
    width: int,
    height: int,
) -> None:
    """A case of the seed's patterns set aside as tutorial material (its slices are no
    crowd tasks)."""
    case = Case(
        project_id=project.id or 0,
        public_id=uuid.uuid4().hex[:16],
        source_sha256=uuid.uuid4().hex,
        source="bench/load.py tutorial",
        licence="CC0",
        reference_voxels=sum(look.get("reference_pixels", 0) for look in looks) or 1,
    )
    session.add(case)
    session.flush()
    for i, look in enumerate(looks):
        session.add(
            Slice(
                case_id=case.id or 0,
                index=i,
                crop_x0=0,
                crop_y0=0,
                crop_x1=width,
                crop_y1=height,
                brain_fraction=0.6,
                **look,
            )
        )
    session.flush()
    use_case(session=session, storage=storage, project_name=project.name, public_id=case.public_id)


def seed(
    engine: Engine, storage: Storage, *, tasks: int, volunteers: int, realistic: bool = False
) -> list[str]:
    """``tasks`` slices in cases of SLICES_PER_CASE, their tasks at their import priority, and
    volunteers' tokens: the ``plain`` or the ``realistic`` seed (module docstring)."""
    password_hash = hash_password(uuid.uuid4().hex)  # nobody logs in; tokens authenticate
    width, height = (REAL_WIDTH, REAL_HEIGHT) if realistic else (WIDTH, HEIGHT)
    looks = []  # per pattern: the slice columns that depend on it
    if realistic:
        for n in range(PATTERNS):
            drawn = pattern(n)
            keys = {c: f"cases/load/{n}/{c}.png" for c in ("flair", "t1", "t2")}
            for contrast, key in keys.items():
                storage.put(key, encode_png(drawn[contrast]))
            reference = f"cases/load/{n}/reference.png"
            storage.put(reference, to_png(drawn["lesion"]))
            pixels = int(drawn["lesion"].sum())
            looks.append(
                {
                    "image_keys": keys,
                    "reference_key": reference,
                    "reference_pixels": pixels,
                    "candidate_fraction": pixels / drawn["lesion"].size,
                }
            )
    else:
        storage.put("cases/load/flair.png", encode_png(np.full((HEIGHT, WIDTH), 80, np.uint8)))
        looks.append({"image_keys": {"flair": "cases/load/flair.png"}})
    with Session(engine) as session:
        # No speed rule: volunteers with no think time answer in milliseconds as the server
        # times them, and would be suspended; this bench measures throughput, and the
        # realistic crowd's spammers are caught by gold. The plain seed has no gold to serve.
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
                        "crop_x1": width,
                        "crop_y1": height,
                        "brain_fraction": _brain(i, count),
                        **looks[(i + first // SLICES_PER_CASE) % len(looks)],
                    }
                    for i in range(count)
                ],
            )
            rows = session.execute(
                select(Slice.id, Slice.brain_fraction, Slice.index).where(Slice.case_id == case.id)
            ).all()
            # As an import does (else the server would build them all as it starts).
            _store_sprites(storage, rows, count, first // SLICES_PER_CASE, looks)
            slice_ids += rows
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
        if realistic:
            # The project's representative pool, approved from the references.
            seed_gold(session=session, storage=storage, project_id=project.id or 0)
            # Tutorial material, so the qualification gate holds and runs with every lease.
            if GATE:
                _tutorial_case(session, storage, project, looks, width, height)
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
            if realistic and GATE:  # each passed the qualification test
                session.add(
                    RaterStats(
                        user_id=user.id or 0,
                        project_id=project.id or 0,
                        trust=TrustLevel.qualified,
                        qualified_at=utcnow(),
                    )
                )
        session.commit()
    # As an import does: statistics for the bulk-loaded tables before the crowd arrives.
    refresh_statistics(engine, "slices", "tasks", "users", "credentials", "gold_versions")
    return tokens
