"""A release read by the tools engineers use: nnU-Net v2's own ``verify_dataset_integrity``
(offline, CPU), MONAI's ``load_decathlon_datalist`` with ``LoadImaged``, and the Croissant
metadata validated by ``mlcroissant``. These come with the ``release-check`` extra, which
``make test`` installs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session

from backend.core.db import create_db_engine, transaction
from backend.core.migrations import upgrade
from backend.core.storage import Storage
from backend.releases import service
from backend.releases.plan import Filters
from tests.backend.releases.cases import labelled_project

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def release(module_pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release of a labelled project (per-rater masks on), exported to a folder named as
    nnU-Net names datasets."""
    engine = create_db_engine(module_pg_url)
    upgrade(engine)
    storage = Storage((tmp_path_factory.mktemp("rel") / "storage").as_uri())
    crowd = labelled_project(engine, storage, per_volunteer=36)
    with transaction(engine) as session:
        made = service.create(
            session,
            project_name=crowd.project,
            name="Dataset501_mscrowd",
            filters=Filters(per_rater=True),
            actor=None,
        )
        release_id = made.id or 0
    assert service.run(engine, storage, release_id) is not None
    root = tmp_path_factory.mktemp("nnUNet_raw") / "Dataset501_mscrowd"
    with Session(engine) as session:
        for entry in service.files_of(session, release_id):
            target = root / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(storage.get(f"releases/Dataset501_mscrowd/{entry.path}"))
    engine.dispose()
    return root


def test_nnunet_verifies_the_dataset(release: Path) -> None:
    pytest.importorskip(
        "nnunetv2", reason="nnU-Net v2 is absent: `make test` installs the release-check extra"
    )
    script = (
        "from nnunetv2.experiment_planning.verify_dataset_integrity import "
        "verify_dataset_integrity\n"
        "if __name__ == '__main__':\n"
        f"    verify_dataset_integrity({str(release)!r}, num_processes=1)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "failed" not in done.stdout.lower()


def test_monai_loads_the_datalist(release: Path) -> None:
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    training = load_decathlon_datalist(
        str(release / "datalist.json"), is_segmentation=True, data_list_key="training",
        base_dir=str(release),
    )  # fmt: skip
    validation = load_decathlon_datalist(
        str(release / "datalist.json"), data_list_key="validation", base_dir=str(release)
    )
    assert len(training) == 2
    assert len(validation) == 1
    load = LoadImaged(keys=["image", "label"], image_only=True, ensure_channel_first=True)
    for item in training:
        loaded = load(item)
        image, label = loaded["image"], loaded["label"]
        assert image.shape[0] == 3  # FLAIR, T1, T2
        assert image.shape[1:] == label.shape[1:]
        assert set(np.unique(np.asarray(label))) <= {0.0, 1.0, 2.0}
        assert np.allclose(image.affine, label.affine)


def test_the_readmes_monai_snippet_runs(release: Path) -> None:
    """The release README's MONAI lines, run as they are from the folder holding the
    release: they load a training case with its ignore label."""
    readme = (release / "README.md").read_text()
    snippet = readme.split("## Loading with MONAI")[1].split("```python\n")[1].split("```")[0]
    done = subprocess.run(
        [sys.executable, "-c", snippet + "\nprint(tuple(item['image'].shape), sorted(set("
         "item['label'].unique().tolist())))"],
        cwd=release.parent, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    shape, values = done.stdout.strip().rsplit(" [", 1)
    assert shape.startswith("(3, ")  # FLAIR, T1 and T2 as channels
    # Background and ignore on every case (which slices the crowd labelled, and so whether
    # this first case has a lesion on one, depends on the queue's order).
    assert {"0.0", "2.0"} <= set(values.rstrip("]").split(", ")) <= {"0.0", "1.0", "2.0"}
    # The nnU-Net lines name a dataset folder nnU-Net accepts.
    assert 'mv Dataset501_mscrowd "$nnUNet_raw/Dataset501_' in readme


def test_croissant_metadata_validates(release: Path) -> None:
    mlc = pytest.importorskip(
        "mlcroissant", reason="mlcroissant is absent: `make test` installs the release-check extra"
    )
    metadata = mlc.Metadata.from_file(ctx=mlc.Context(), file=release / "croissant.json")
    errors = metadata.ctx.issues.errors
    assert not errors, metadata.ctx.issues.report()
    data = json.loads((release / "croissant.json").read_text())
    assert data["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    assert {d["@id"] for d in data["distribution"]} >= {"manifest.json", "images", "labels"}


def test_per_rater_masks_have_release_ids(release: Path) -> None:
    manifest = json.loads((release / "manifest.json").read_text())
    assert sorted(manifest["raters"]) == ["R001", "R002", "R003"]
    masks = sorted(p.name for p in release.glob("raters/*/*.nii.gz"))
    assert masks
    assert {m.split(".")[0] for m in masks} <= {"R001", "R002", "R003"}
    text = (release / "manifest.json").read_text()
    assert "crowd0@example.org" not in text  # no login name, no account id
