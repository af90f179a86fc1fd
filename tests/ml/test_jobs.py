"""The ML worker end to end on the CPU: two synthetic cases imported, ``mscrowd-ml train`` with
the tiny config (one case held out) registers a version with its snapshot and held-out
figures, and ``mscrowd-ml predict`` writes a mask on the case's own FLAIR grid even when that
grid is not RAS."""

import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from sqlmodel import Session, select
from typer.testing import CliRunner

from backend.cli import app as mscrowd
from backend.core.config import get_settings
from backend.core.db import create_db_engine, transaction
from backend.core.storage import Storage
from backend.imaging.models import Contrast
from backend.imaging.preprocess import prepare_case
from backend.imaging.service import CaseMeta, import_source
from backend.imaging.synthetic import synthesize_case
from backend.rounds.models import LabelSource, ModelStatus, ModelVersion
from ml import jobs
from ml.cli import app
from ml.config import get_config
from ml.data import lesion_load
from ml.jobs import to_own_grid
from ml.models import build_model
from tests.factories import create_project


def _write_flipped_case(folder: Path, seed: int) -> nib.Nifti1Image:
    """A synthetic case saved in LAS orientation (x flipped), as some scanners write it."""
    folder.mkdir(parents=True)
    source = synthesize_case(seed, lesion_count=8).source
    names = {Contrast.flair: "FLAIR", Contrast.t1: "T1", Contrast.t2: "T2"}
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = 0
    for contrast, name in names.items():
        image = source.images[contrast]
        data = np.asarray(image.dataobj)[::-1]
        affine = image.affine.copy()
        affine[:3, 0] *= -1
        affine[:3, 3] += image.affine[:3, 0] * (data.shape[0] - 1)
        nib.save(nib.Nifti1Image(data, affine), folder / f"{name}.nii.gz")
    return nib.load(folder / "FLAIR.nii.gz")


@pytest.mark.usefixtures("settings_env")
def test_train_registers_a_version_and_predict_writes_on_the_flair_grid(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(mscrowd, ["migrate"]).exit_code == 0
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    storage = Storage(settings.storage_url)
    meta = CaseMeta("synthetic", "CC0-1.0")
    with transaction(engine) as session:
        project = create_project(session, name="synth")
        ids = [
            import_source(
                session=session,
                storage=storage,
                project=project,
                source=synthesize_case(seed, lesion_count=10).source,
                meta=meta,
            ).case_public_id
            for seed in (1, 2)
        ]
    # What predict feeds the model is what training read back from storage.
    with Session(engine) as session:
        stored = jobs.load_cases(session, storage, project.id or 0, LabelSource.reference)
    fresh = jobs.arrays_for_prediction(
        "again", prepare_case(synthesize_case(1, lesion_count=10).source)
    )
    assert np.array_equal(fresh.brain, stored[str(ids[0])].brain)
    assert np.array_equal(fresh.images, stored[str(ids[0])].images)
    held = str(ids[1])
    trained = runner.invoke(
        app,
        ["train", "--project", "synth", "--labels", "reference", "--config", "tiny"]
        + ["--holdout", held, "--device", "cpu"],
    )
    assert trained.exit_code == 0, trained.output
    assert "Model version 1 (promoted)" in trained.output
    with Session(engine) as session:
        version = session.exec(select(ModelVersion)).one()
    assert version.labels is LabelSource.reference
    assert version.status is ModelStatus.promoted
    assert version.snapshot["holdout"] == [held]
    assert list(version.snapshot["cases"]) == [ids[0]]  # every axial slice labelled
    assert version.snapshot["cases"][ids[0]] > 100
    assert version.metrics["cases"][0]["case"] == held
    assert 0.0 <= version.metrics["dice"] <= 1.0
    assert version.config["name"] == "tiny"
    assert version.weights_key is not None
    assert storage.exists(version.weights_key)

    # A second version is compared with the promoted one on the same held-out case; one
    # trained without held-out cases has no evidence and is not promoted.
    second = runner.invoke(
        app,
        ["train", "--project", "synth", "--labels", "reference", "--config", "tiny"]
        + ["--holdout", held, "--device", "cpu", "--seed", "1"],
    )
    assert second.exit_code == 0, second.output
    blind = runner.invoke(
        app, ["train", "--project", "synth", "--labels", "reference", "--config", "tiny"]
    )
    assert "Model version 3 (ready)" in blind.output
    with Session(engine) as session:
        first, again, unseen = session.exec(select(ModelVersion).order_by(ModelVersion.id)).all()
    assert again.metrics["compared_with"] == {"version": 1, "dice": first.metrics["dice"]}
    promoted = again.metrics["dice"] >= first.metrics["dice"]
    assert again.status is (ModelStatus.promoted if promoted else ModelStatus.ready)
    assert first.status is (ModelStatus.ready if promoted else ModelStatus.promoted)
    assert unseen.status is ModelStatus.ready
    assert "dice" not in unseen.metrics

    flair = _write_flipped_case(tmp_path / "case", seed=3)
    out = tmp_path / "out" / "mask.nii.gz"
    predicted = runner.invoke(app, ["predict", str(tmp_path / "case"), "--out", str(out)])
    assert predicted.exit_code == 0, predicted.output
    mask = nib.load(out)
    assert mask.shape == flair.shape
    assert np.allclose(mask.affine, flair.affine)
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}

    # Bad input gets a clear error.
    wrong = runner.invoke(app, ["train", "--project", "nope", "--labels", "reference"])
    assert wrong.exit_code == 1
    assert "No project called 'nope'" in wrong.output
    bad_holdout = runner.invoke(
        app, ["train", "--project", "synth", "--labels", "reference", "--holdout", "zzz"]
    )
    assert "Held-out case(s) zzz" in bad_holdout.output
    no_fused = runner.invoke(
        app, ["train", "--project", "synth", "--labels", "fused", "--config", "tiny"]
    )
    assert "has no fused labels" in no_fused.output
    assert (
        "--labels must be"
        in runner.invoke(app, ["train", "--project", "synth", "--labels", "x"]).output
    )
    missing = runner.invoke(app, ["predict", str(tmp_path / "nowhere"), "--out", str(out)])
    assert "is not a folder" in missing.output
    assert (
        "No trained model version 9"
        in runner.invoke(
            app, ["predict", str(tmp_path / "case"), "--out", str(out), "--model", "9"]
        ).output
    )
    engine.dispose()


def test_masks_go_back_onto_the_flair_files_own_grid() -> None:
    rng = np.random.default_rng(0)
    data = rng.random((5, 6, 7))
    for codes in ("LAS", "RPI", "ASL", "RAS"):
        affine = nib.orientations.inv_ornt_aff(
            nib.orientations.axcodes2ornt(tuple(codes)), data.shape
        )
        image = nib.Nifti1Image(data, affine)
        canonical = np.asarray(nib.as_closest_canonical(image).dataobj)
        assert np.array_equal(to_own_grid(canonical, image), data), codes


def test_weights_round_trip_and_older_versions_load_with_instance_norm() -> None:
    """A version stored before ``norm`` was a config field was trained with MONAI's default,
    instance norm, and loads as such; a new one keeps its own."""
    cpu = torch.device("cpu")
    current = get_config("tiny")
    model, config = jobs.load_weights(jobs.save_weights(build_model(current), current), cpu)
    assert config == current
    assert config.norm == "batch"
    old = get_config("tiny", norm="instance")
    stored = jobs.save_weights(build_model(old), old)
    values = torch.load(io.BytesIO(stored), weights_only=True)
    del values["config"]["norm"]
    buffer = io.BytesIO()
    torch.save(values, buffer)
    model, config = jobs.load_weights(buffer.getvalue(), cpu)
    assert config.norm == "instance"
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in model.modules())


@pytest.mark.usefixtures("settings_env")
def test_train_plants_a_librarys_lesions_only_into_lightly_loaded_cases(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(mscrowd, ["migrate"]).exit_code == 0
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    storage = Storage(settings.storage_url)
    with transaction(engine) as session:
        project = create_project(session, name="light")
        import_source(
            session=session,
            storage=storage,
            project=project,
            source=synthesize_case(4, lesion_count=3).source,
            meta=CaseMeta("synthetic", "CC0-1.0"),
        )
    with Session(engine) as session:
        (case,) = jobs.load_cases(session, storage, project.id or 0, LabelSource.reference).values()
    shape, load = case.brain.shape, lesion_load(case)
    inside = np.argwhere(case.brain)

    def library(folder: Path, per_slice: float) -> Path:
        """Three masks on the case's grid, ``per_slice`` lesion voxels per axial slice."""
        folder.mkdir()
        for n in range(3):
            mask = np.zeros(shape, dtype=np.uint8)
            x, y, z = inside[
                np.random.default_rng(n).choice(len(inside), int(per_slice * shape[2]))
            ].T
            mask[x, y, z] = 1
            nib.save(nib.Nifti1Image(mask, np.eye(4)), folder / f"mask{n}.nii.gz")
        return folder

    def train(*extra: str) -> str:
        result = runner.invoke(
            app,
            ["train", "--project", "light", "--labels", "reference", "--config", "tiny"]
            + ["--device", "cpu", *extra],
        )
        return f"{result.exit_code}: {result.output}"

    heavy = library(tmp_path / "heavy", per_slice=10 * load + 10)
    output = train("--plant-from", str(heavy), "--plant", "2")
    assert output.startswith("0: "), output
    assert "into copies of the training cases" in output
    light = library(tmp_path / "light", per_slice=load / 10)
    output = train("--plant-from", str(light), "--plant", "2")
    assert output.startswith("0: "), output
    assert "nothing planted" in output
    with Session(engine) as session:
        planted, unplanted = (
            v.snapshot["planted"]
            for v in session.exec(select(ModelVersion).order_by(ModelVersion.id))
        )
    assert planted["lightly_loaded"]
    assert len(planted["masks"]) == 2
    assert set(planted["masks"]) <= {"mask0", "mask1", "mask2"}
    assert planted["library"] == str(heavy)
    assert not unplanted["lightly_loaded"]
    assert unplanted["masks"] == []

    # Bad libraries get a clear error and register nothing.
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), wrong / "small.nii")
    (tmp_path / "empty").mkdir()
    for extra, message in (
        (["--plant-from", str(wrong)], "are not on the training cases' grid"),
        (["--plant-from", str(tmp_path / "empty")], "holds no .nii or .nii.gz"),
        (["--plant-from", str(tmp_path / "nowhere")], "is not a folder"),
        (["--plant-from", str(heavy)], "cannot plant 4 of a library of 3"),  # 4: the default
    ):
        output = train(*extra)
        assert output.startswith("1: "), output
        assert message in output
    with Session(engine) as session:
        assert len(session.exec(select(ModelVersion)).all()) == 2
    engine.dispose()
