"""Brain extraction for raw clinical scans (deepbet, offline): ``mscrowd-ml brain-mask`` writes
each study's mask beside it, close to the providers' mask of clinical_raw/patient01, and
``mscrowd import`` then stores and shows brain only."""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from backend.cli import app as mscrowd
from ml.cli import app as mscrowd_ml
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
