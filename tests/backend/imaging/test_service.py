"""Importing real and broken cases: geometry, slices, idempotency, atomic failure."""

import gzip
import io
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from backend.core.storage import Storage
from backend.imaging.models import Case, Contrast, Slice, Volume
from backend.imaging.service import CaseMeta, ImportOutcome, folder_loaders, import_cases
from backend.projects.models import Project
from backend.tasks.models import Task

MARGIN = 8  # the importer's crop margin
MIN_BRAIN_FRACTION = 0.05


def _import(
    engine: Engine, storage: Storage, path: Path, project: str = "real"
) -> list[ImportOutcome]:
    return import_cases(
        engine=engine,
        storage=storage,
        project_name=project,
        loaders=folder_loaders(path),
        meta=CaseMeta("open_ms_data (Lesjak et al. 2018), CC-BY", "CC-BY-4.0"),
        min_labels=2,
    )


def _counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (Case, Volume, Slice, Task)
        }


def test_import_patient07_slices_crop_and_reference(
    migrated_engine: Engine, storage: Storage, open_ms_data: Path
) -> None:
    folder = open_ms_data / "cross_sectional_mni" / "patient07"
    outcomes = _import(migrated_engine, storage, folder)
    assert [(o.name, o.status) for o in outcomes] == [("patient07", "imported")]

    # What the slices must be, computed straight from the files.
    flair = nib.as_closest_canonical(nib.load(folder / "FLAIR.nii.gz"))
    union = np.zeros(flair.shape, dtype=bool)
    for name in ("FLAIR", "T1", "T2"):
        union |= (
            np.asarray(nib.as_closest_canonical(nib.load(folder / f"{name}.nii.gz")).dataobj) != 0
        )
    brain = ndimage.binary_fill_holes(union)
    xs, ys = np.nonzero(brain.any(axis=2))
    crop = (
        max(int(xs.min()) - MARGIN, 0),
        max(int(ys.min()) - MARGIN, 0),
        min(int(xs.max()) + 1 + MARGIN, flair.shape[0]),
        min(int(ys.max()) + 1 + MARGIN, flair.shape[1]),
    )
    area = (crop[2] - crop[0]) * (crop[3] - crop[1])
    fraction = brain[crop[0] : crop[2], crop[1] : crop[3]].sum(axis=(0, 1)) / area
    expected = np.flatnonzero(fraction >= MIN_BRAIN_FRACTION).tolist()
    lesion = np.asarray(nib.as_closest_canonical(nib.load(folder / "lesion_mask.nii.gz")).dataobj)

    with Session(migrated_engine) as session:
        case = session.exec(select(Case)).one()
        assert case.public_id != "patient07"
        assert "patient" not in case.source
        assert case.reference_voxels == int((lesion > 0).sum())
        slices = session.exec(select(Slice).order_by(Slice.index)).all()  # type: ignore[arg-type]
        assert [s.index for s in slices] == expected
        assert 100 <= len(slices) <= flair.shape[2]
        for s in slices:
            assert (s.crop_x0, s.crop_y0, s.crop_x1, s.crop_y1) == crop
            assert set(s.image_keys) == {"flair", "t1", "t2"}
        # The reference is stored per slice but kept out of the shown images.
        assert sum(s.reference_pixels or 0 for s in slices) == int(
            (lesion[..., expected] > 0).sum()
        )
        middle = slices[len(slices) // 2]
        image = Image.open(io.BytesIO(storage.get(middle.image_keys["flair"])))
        assert image.mode == "L"
        assert image.size == (crop[2] - crop[0], crop[3] - crop[1])
        volumes = session.exec(select(Volume)).all()
        assert {v.contrast for v in volumes} == {
            Contrast.flair,
            Contrast.t1,
            Contrast.t2,
            Contrast.reference,
        }
        assert all(v.shape == list(flair.shape) for v in volumes)
        tasks = session.exec(select(Task)).all()
        assert len(tasks) == len(slices)
        assert {t.required_labels for t in tasks} == {2}
        project = session.exec(select(Project)).one()
        assert project.name == "real"
    stored_flair = nib.Nifti1Image.from_bytes(
        gzip.decompress(storage.get(next(v.storage_key for v in volumes if v.contrast == "flair")))
    )
    assert np.allclose(stored_flair.affine, flair.affine)

    # Importing again changes nothing.
    before = _counts(migrated_engine)
    again = _import(migrated_engine, storage, folder)
    assert [o.status for o in again] == ["skipped"]
    assert _counts(migrated_engine) == before


def _copy_case(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("FLAIR.nii.gz", "T1.nii.gz", "T2.nii.gz", "lesion_mask.nii.gz"):
        shutil.copy(src / name, dst / name)
    return dst


def test_a_corrupt_case_fails_alone_and_leaves_nothing(
    migrated_engine: Engine, storage: Storage, open_ms_data: Path, tmp_path: Path
) -> None:
    src = open_ms_data / "cross_sectional_mni" / "patient07"
    root = tmp_path / "batch"
    good = _copy_case(src, root / "a_good")
    broken = _copy_case(src, root / "b_truncated")
    data = (broken / "T2.nii.gz").read_bytes()
    (broken / "T2.nii.gz").write_bytes(data[: len(data) // 2])
    odd = _copy_case(src, root / "c_non_binary_mask")
    mask = nib.load(odd / "lesion_mask.nii.gz")
    values = np.asarray(mask.dataobj).astype(np.float32) * 0.5
    nib.save(nib.Nifti1Image(values, mask.affine), odd / "lesion_mask.nii.gz")
    assert good.exists()

    outcomes = {o.name: o for o in _import(migrated_engine, storage, root)}
    assert outcomes["a_good"].status == "imported"
    assert outcomes["b_truncated"].status == "failed"
    assert "T2.nii.gz" in outcomes["b_truncated"].message
    assert outcomes["c_non_binary_mask"].status == "failed"
    assert "binary" in outcomes["c_non_binary_mask"].message
    # Only the good case is in the database and in storage.
    assert _counts(migrated_engine)["Case"] == 1
    public_id = outcomes["a_good"].case_public_id
    assert {k.split("/")[1] for k in storage.list("cases")} == {public_id}


def test_a_failure_while_storing_removes_what_was_written(
    migrated_engine: Engine, storage: Storage, open_ms_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = open_ms_data / "cross_sectional_mni" / "patient07"
    real_put = storage.put
    written: list[str] = []

    def failing_put(key: str, data: bytes) -> None:
        if len(written) == 50:
            raise OSError("disk full")
        written.append(key)
        real_put(key, data)

    monkeypatch.setattr(storage, "put", failing_put)
    with pytest.raises(OSError, match="disk full"):
        _import(migrated_engine, storage, folder)
    assert written
    assert storage.list("cases") == []
    counts = _counts(migrated_engine)
    assert counts == {"Case": 0, "Volume": 0, "Slice": 0, "Task": 0}
