"""A scan that shows skull and came without a brain mask is staged for the ML worker instead
of refused: its images (no name, no path) under ``staging/<token>/``, the ``ml.brain_mask``
job in the outbox, nothing in the case tables; a failed commit or a day's wait sweeps it."""

import json
from datetime import timedelta
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from backend.annotations.sweep import check
from backend.core.outbox import OutboxJob
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.imaging import BRAIN_MASK, staging
from backend.imaging.models import CONSENT_PRESETS, Case, Contrast
from backend.imaging.preprocess import CaseSource, InvalidCase, prepare_case
from backend.imaging.service import CaseLoader, CaseMeta, import_cases
from backend.tasks.models import Task

SECRET_NAME = "DOE_JANE_1961-04-02"


def head(seed: int = 0) -> CaseSource:
    """A FLAIR of a whole head: tissue everywhere, far more of it than a brain holds."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(50, 400, size=(96, 96, 48)).astype(np.float32)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    flair = nib.Nifti1Image(data, affine)
    t1 = nib.Nifti1Image(data[::-1].copy(), affine)
    return CaseSource(
        name=f"{SECRET_NAME}/study1",
        images={Contrast.flair: flair, Contrast.t1: t1},
        reference=None,
        fingerprint=f"{seed:064x}",
    )


def test_a_head_without_a_brain_mask_is_staged_not_imported(
    migrated_engine: Engine, storage: Storage, settings_env: pytest.MonkeyPatch
) -> None:
    source = head()
    assert staging.needs_brain_mask(source)
    with pytest.raises(InvalidCase, match="still shows skull"):
        prepare_case(source)  # on its own, the pipeline refuses it
    (outcome,) = import_cases(
        engine=migrated_engine,
        storage=storage,
        project_name="clinic",
        loaders=[CaseLoader(source.name, lambda: source)],
        meta=CaseMeta("hospital A", "CC-BY-4.0", CONSENT_PRESETS["crowd"]),
    )
    assert outcome.status == "queued", outcome.message
    assert outcome.staged is not None
    token = outcome.staged
    keys = storage.list(f"{staging.STAGING}/{token}")
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == ["case.json", "flair.nii.gz", "t1.nii.gz"]
    manifest = json.loads(storage.get(f"{staging.STAGING}/{token}/case.json"))
    assert manifest["project"] == "clinic"
    assert manifest["consent"] == ["crowd_viewing", "public_labels", "research_sharing"]
    for key in keys:  # the source's name (a patient's, in clinical exports) is nowhere
        assert SECRET_NAME.encode() not in storage.get(key)
    with Session(migrated_engine) as session:
        assert session.exec(select(func.count()).select_from(Case)).one() == 0
        assert session.exec(select(func.count()).select_from(Task)).one() == 0
        jobs = session.exec(select(OutboxJob)).all()
        # Sent at once to the broker (the embedded one here), or left for the relay.
        assert all(job.name == BRAIN_MASK and job.args == [token] for job in jobs)
    # The staged copy reads back as the same case, with the mask the worker brings.
    mask = nib.Nifti1Image(np.ones((96, 96, 48), np.uint8), np.diag([2.0, 2.0, 3.0, 1.0]))
    again, where = staging.load(storage, token, mask)
    assert where.project == "clinic"
    assert again.fingerprint == source.fingerprint
    assert SECRET_NAME not in again.name
    flair = np.asarray(again.images[Contrast.flair].dataobj)
    np.testing.assert_array_equal(flair, np.asarray(source.images[Contrast.flair].dataobj))
    np.testing.assert_allclose(again.images[Contrast.t1].affine, np.diag([2.0, 2.0, 3.0, 1.0]))
    # The sweep leaves a staged case a day, then removes it.
    with Session(migrated_engine) as session:
        assert check(session=session, storage=storage).orphans == []
        later = check(session=session, storage=storage, fix=True, now=utcnow() + timedelta(days=2))
    assert sorted(later.orphans) == sorted(keys)
    assert storage.list(f"{staging.STAGING}/{token}") == []
    with pytest.raises(InvalidCase, match="gone"):
        staging.load(storage, token, mask)


def test_a_skull_stripped_case_is_not_staged(tmp_path: Path) -> None:
    data = np.zeros((64, 64, 32), np.float32)
    data[16:48, 16:48, 8:24] = 200.0
    source = CaseSource(
        name="stripped",
        images={Contrast.flair: nib.Nifti1Image(data, np.eye(4))},
        reference=None,
        fingerprint="f" * 64,
    )
    assert not staging.needs_brain_mask(source)
