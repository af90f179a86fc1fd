"""Small cases for the release tests (fast to make and import, unlike the demo's): an
ellipsoid brain with blob lesions, three contrasts, on an oblique-free 2 mm grid that is not
RAS (the import reorients it, the release must keep the stored grid), and a crowd that labels
part of each case with the reference mask, fused as the worker would."""

from dataclasses import dataclass

import nibabel as nib
import numpy as np
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.auth import service as auth
from backend.core.db import transaction
from backend.core.storage import Storage
from backend.imaging.models import CONSENT_PRESETS, Case, Slice
from backend.imaging.preprocess import CaseSource
from backend.imaging.service import CaseMeta, import_source
from backend.projects.models import Project
from backend.tasks.models import Task, TaskState
from tests import crowd
from tests.factories import PASSWORD, create_project

SHAPE = (40, 48, 18)
# LPS-ordered voxels (x runs to the left, y to the back): the import must reorient.
AFFINE = np.array([[-2.0, 0, 0, 40.0], [0, -2.0, 0, 48.0], [0, 0, 2.0, -18.0], [0, 0, 0, 1.0]])


def small_case(seed: int) -> CaseSource:
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in SHAPE], indexing="ij")
    brain = sum((g / (n / 2.2)) ** 2 for g, n in zip(grid, SHAPE, strict=True)) <= 1
    lesions = np.zeros(SHAPE, dtype=bool)
    for _ in range(4):
        centre = [int(rng.integers(n // 3, 2 * n // 3)) for n in SHAPE]
        radius = float(rng.uniform(1.5, 3.0))
        lesions |= (
            sum((g - (c - (n - 1) / 2)) ** 2 for g, c, n in zip(grid, centre, SHAPE, strict=True))
            <= radius**2
        )  # noqa: E501
    lesions &= brain
    images = {}
    for contrast, (tissue, lesion) in {
        "flair": (300, 900),
        "t1": (600, 250),
        "t2": (400, 800),
    }.items():  # noqa: E501
        data = np.where(brain, tissue + rng.normal(0, 20, SHAPE), 0.0)
        data[lesions] = lesion
        images[contrast] = nib.Nifti1Image(data.astype(np.float32), AFFINE)
    return CaseSource(
        name=f"small-{seed}",
        images=images,  # type: ignore[arg-type]
        reference=nib.Nifti1Image(lesions.astype(np.uint8), AFFINE),
        fingerprint=f"{seed:064x}",
    )


@dataclass
class Crowd:
    project: str
    project_id: int
    cases: dict[str, str]  # role -> public id
    sources: dict[str, CaseSource]
    volunteers: list[int]


def labelled_project(engine: Engine, storage: Storage, per_volunteer: int = 10) -> Crowd:
    """A project of five small cases: two open (images may be published), one whose images
    may not be ("labels"), one held out, one without research consent ("private"); three
    volunteers each label ``per_volunteer`` slices with the reference mask; complete tasks
    fused."""
    roles = {"open1": ("open", 1), "open2": ("open", 2), "labels": ("crowd", 3),
             "held": ("open", 4), "private": ("restricted", 5)}  # fmt: skip
    sources = {role: small_case(seed) for role, (_c, seed) in roles.items()}
    with transaction(engine) as session:
        project = create_project(session, name="rel", min_labels=3, gold_rate=0.0)
        ids = {}
        for role, (consent, _seed) in roles.items():
            scopes = CONSENT_PRESETS[consent]
            if role == "private":
                scopes = frozenset(CONSENT_PRESETS["research"] - {"research_sharing"})  # type: ignore[operator]
            outcome = import_source(
                session=session,
                storage=storage,
                project=project,
                source=sources[role],
                meta=CaseMeta("small synthetic cases", "CC0-1.0", scopes),
            )
            ids[role] = str(outcome.case_public_id)
        project.holdout_cases = [ids["held"]]
        session.add(project)
        held = session.exec(select(Case).where(Case.public_id == ids["held"])).one()
        for task in session.exec(
            select(Task).join(Slice, Slice.id == Task.slice_id).where(Slice.case_id == held.id)
        ):
            task.state = TaskState.retired
            session.add(task)
        volunteers = [
            auth.create_user(session=session, email=f"crowd{n}@example.org", password=PASSWORD)
            for n in range(3)
        ]
        project_id, name = project.id or 0, project.name
    crowd.label(engine, storage, volunteers, per_volunteer=per_volunteer)
    crowd.fuse_complete(engine, storage, project_id)
    with Session(engine) as session:
        assert session.get(Project, project_id) is not None
    return Crowd(name, project_id, ids, sources, [u.id or 0 for u in volunteers])
