"""Brain extraction for raw clinical scans (deepbet, offline): ``mscrowd-ml brain-mask`` writes
each study's mask beside it, close to the providers' mask of clinical_raw/patient01, and
``mscrowd import`` then stores and shows brain only."""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.uid import generate_uid
from scipy import ndimage
from typer.testing import CliRunner

from backend.cli import app as mscrowd
from backend.core.config import get_settings
from backend.core.storage import Storage
from backend.imaging.staging import STAGING
from backend.worker import job_resources
from ml.cli import app as mscrowd_ml
from ml.jobs import decode_nifti, import_staged
from tests.backend.imaging.dicomgen import FLAIR, T1, T2, planted_values, write_series
from tests.backend.imaging.test_clinical import RAW, _reference_brain

runner = CliRunner()


def test_a_raw_study_gets_its_brain_mask_and_imports(
    settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if not (RAW / "study1_FLAIR.nii.gz").exists():
        pytest.skip(f"{RAW} is absent: the brain extraction check needs open_ms_data")
    study = tmp_path / "patient01"
    study.mkdir()
    for path in RAW.glob("study1_*"):
        shutil.copy(path, study / path.name)
    refused = runner.invoke(mscrowd_ml, ["brain-mask", str(tmp_path / "nowhere")])
    assert refused.exit_code == 1
    assert "is not a folder" in refused.output
    made = runner.invoke(mscrowd_ml, ["brain-mask", str(tmp_path)])
    assert made.exit_code == 0, made.output
    assert "+ patient01/study1: study1_brain_mask.nii.gz" in made.output
    mask = np.asarray(nib.load(study / "study1_brain_mask.nii.gz").dataobj) > 0
    truth = np.asarray(_reference_brain("study1").dataobj) > 0
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice >= 0.95
    again = runner.invoke(mscrowd_ml, ["brain-mask", str(tmp_path)])
    assert "No study without a brain mask" in again.output
    assert runner.invoke(mscrowd, ["migrate"]).exit_code == 0
    imported = runner.invoke(mscrowd, ["import", str(tmp_path), "--project", "clinic"])
    assert imported.exit_code == 0, imported.output
    assert "+ patient01/study1: imported as case" in imported.output


def _served_brain_only(engine_url: str, storage: Storage, public_id: str) -> dict[str, float]:
    """Every stored voxel of every contrast lies near the providers' brain (the computed mask
    differs from theirs at the edge: Dice about 0.96), none far out (skull, eyes, neck); the
    FLAIR volume's geometry; the slices served."""
    from sqlalchemy import create_engine
    from sqlmodel import Session, select

    from backend.imaging.models import Case, Slice, Volume
    from backend.imaging.preprocess import canonical

    engine = create_engine(engine_url)
    with Session(engine) as session:
        case = session.exec(select(Case).where(Case.public_id == public_id)).one()
        volumes = session.exec(select(Volume).where(Volume.case_id == case.id)).all()
        brain_fractions = [
            s.brain_fraction for s in session.exec(select(Slice).where(Slice.case_id == case.id))
        ]
    engine.dispose()
    truth = np.asarray(canonical(_reference_brain("study1"), "mask").dataobj) > 0
    # 7 and 21 voxels (5 and 15 mm in plane; the slices are 4 mm thick).
    near = ndimage.binary_dilation(truth, iterations=7)
    far = ndimage.binary_dilation(truth, iterations=21)
    figures: dict[str, float] = {}
    for volume in volumes:
        data = np.asarray(decode_nifti(storage.get(volume.storage_key)))
        assert data.shape == truth.shape
        stored = data != 0
        assert not (stored & ~far).any(), volume.contrast
        figures[str(volume.contrast)] = float((stored & ~near).sum() / stored.sum())
        assert figures[str(volume.contrast)] < 0.01, volume.contrast
    assert brain_fractions
    assert min(brain_fractions) >= 0.05
    return figures


def _need_raw() -> None:
    if not (RAW / "study1_FLAIR.nii.gz").exists():
        pytest.skip(f"{RAW} is absent: the brain extraction check needs open_ms_data")


def _run_staged(output: str, storage: Storage) -> dict[str, object]:
    assert "queued" in output, output
    (token,) = {key.split("/")[1] for key in storage.list(STAGING)}
    job_resources.cache_clear()  # a worker process's resources, for this test's settings
    try:
        done = import_staged(token)
    finally:
        job_resources.cache_clear()
    assert done["status"] == "imported", done
    assert 1000 < float(done["brain_ml"]) < 2000  # type: ignore[arg-type]
    assert storage.list(STAGING) == []  # the staged copy is gone
    return done


def test_a_dicom_study_made_from_clinical_raw_is_masked_and_imported(
    settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The DICOM way in: series written from clinical_raw's NIfTI (identifiers planted), the
    import stages the de-identified volumes, the worker masks and imports them."""
    _need_raw()
    uid = generate_uid()
    for name, spec in (("FLAIR", FLAIR), ("T1W", T1), ("T2W", T2)):
        image = nib.load(RAW / f"study1_{name}.nii.gz")
        write_series(image, tmp_path / "dicom" / "x" / name, spec, study_uid=uid)
    assert runner.invoke(mscrowd, ["migrate"]).exit_code == 0
    queued = runner.invoke(mscrowd, ["import", str(tmp_path / "dicom"), "--project", "clinic"])
    assert queued.exit_code == 0, queued.output
    settings = get_settings()
    storage = Storage(settings.storage_url)
    staged = "".join(storage.get(k).decode("latin-1") for k in storage.list(STAGING))
    for value in planted_values(uid):
        assert value not in staged
    done = _run_staged(queued.output, storage)
    figures = _served_brain_only(settings.database_url, storage, str(done["case"]))
    assert set(figures) == {"flair", "t1", "t2"}
