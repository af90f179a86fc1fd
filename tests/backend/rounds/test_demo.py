"""The demo holds cases out for evaluating models, so its learning curve fills in: the last
seeds' cases, never labelled (their tasks retired), never gold, never in a round's pool, and
kept when the demo is built again. Small phantoms stand in for the synthetic brains (their
synthesis takes seconds per case); the import, hold-out and gold seeding are the real ones."""

import nibabel as nib
import numpy as np
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from backend.core.storage import Storage
from backend.imaging import demo
from backend.imaging.models import Case, Contrast, Slice
from backend.imaging.preprocess import CaseSource
from backend.imaging.synthetic import synthetic_fingerprint
from backend.projects.models import Project
from backend.quality.models import GoldVersion
from backend.rounds import pool as round_pool
from backend.tasks.models import Task, TaskKind, TaskState

SHAPE = (40, 48, 36)


def _phantom(seed: int) -> CaseSource:
    """An ellipsoid 'brain' with two bright 'lesion' cubes, named and fingerprinted like the
    demo's synthetic case ``seed``."""
    rng = np.random.default_rng(seed)
    x, y, z = np.indices(SHAPE)
    brain = ((x - 20) / 16) ** 2 + ((y - 24) / 20) ** 2 + ((z - 18) / 15) ** 2 < 1
    data = np.where(brain, 100 + rng.normal(0, 3, SHAPE), 0).astype(np.float32)
    lesion = np.zeros(SHAPE, dtype=np.uint8)
    lesion[24:28, 30:33, 14:20] = 1
    lesion[12:15, 18:22, 20:24] = 1
    data[lesion > 0] = 180
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    return CaseSource(
        name=f"synthetic-{seed}",
        images={Contrast.flair: nib.Nifti1Image(data, affine)},
        reference=nib.Nifti1Image(lesion, affine),
        fingerprint=synthetic_fingerprint(seed),
    )


def test_holdout_count_leaves_the_crowd_enough_cases() -> None:
    counts = [demo.holdout_count(n) for n in range(1, 13)]
    assert counts == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    assert all(n - demo.holdout_count(n) >= 3 for n in range(3, 65))


@pytest.mark.parametrize(("cases", "held"), [(4, 1), (8, 2)])
def test_the_demo_holds_out_its_last_cases(
    migrated_engine: Engine,
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
    cases: int,
    held: int,
) -> None:
    monkeypatch.setattr(demo, "_synthesize", _phantom)
    report = demo.build_demo(
        engine=migrated_engine, storage=storage, cases=cases, workers=1, password="x" * 12
    )
    assert len(report.holdout) == held
    with Session(migrated_engine) as session:
        project = session.exec(select(Project).where(Project.name == demo.DEMO_PROJECT)).one()
        assert project.holdout_cases == report.holdout
        wanted = [synthetic_fingerprint(s) for s in range(cases - held, cases)]
        last = session.exec(select(Case.public_id).where(col(Case.source_sha256).in_(wanted))).all()
        assert sorted(last) == sorted(report.holdout)
        # Held-out: every crowd task retired, no gold; the others are open to the crowd.
        states = session.exec(
            select(Case.public_id, Task.state, Task.kind)
            .join(Slice, col(Slice.case_id) == col(Case.id))
            .join(Task, col(Task.slice_id) == col(Slice.id))
        ).all()
        for public_id, state, kind in states:
            if public_id in report.holdout:
                assert (state, kind) == (TaskState.retired, TaskKind.normal)
        labelling = {
            p for p, state, kind in states if kind is TaskKind.normal and state is TaskState.open
        }
        assert len(labelling) == cases - held
        gold_cases = session.exec(
            select(Case.public_id)
            .join(Slice, col(Slice.case_id) == col(Case.id))
            .join(GoldVersion, col(GoldVersion.slice_id) == col(Slice.id))
            .where(col(GoldVersion.retired_at).is_(None))
        ).all()
        assert gold_cases
        assert not set(gold_cases) & set(report.holdout)
        pool = {r.case_public_id for r in round_pool.pool_rows(session, project)}
        assert pool == labelling
        # What a model's evaluation reads: the held-out cases' expert masks.
        assert all(
            c.reference_voxels
            for c in session.exec(select(Case).where(col(Case.public_id).in_(report.holdout)))
        )

    again = demo.build_demo(
        engine=migrated_engine, storage=storage, cases=cases, workers=1, password="x" * 12
    )
    assert again.holdout == report.holdout
