"""A release of the demo project after a simulated crowd labelled it, read back with MONAI
(``load_decathlon_datalist`` + ``LoadImaged``) and drawn: the fused hard label's outline on
FLAIR, T1 and T2 of the most lesioned labelled slice (docs/release-overlay.png), with the Dice
of the release's hard labels against the cases' expert masks on the labelled slices.

The crowd: three volunteers per slice, one drawing the expert mask, one drawing it a pixel
wider, one missing the small lesions (under 12 pixels); every crowd task of the demo's cases
answered by all three, then fused as the worker does.

    .venv/bin/python scripts/release_overlay.py [--cases 3] [--out docs/release-overlay.png]
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlmodel import Session, col, select  # noqa: E402

from backend.auth import service as auth  # noqa: E402
from backend.core.db import create_db_engine, transaction  # noqa: E402
from backend.core.storage import Storage  # noqa: E402
from backend.imaging.models import Case, Contrast, Volume  # noqa: E402
from backend.imaging.preprocess import to_display  # noqa: E402
from backend.projects.models import Project  # noqa: E402
from backend.releases import service  # noqa: E402
from backend.releases.plan import Filters  # noqa: E402
from ml.jobs import decode_nifti  # noqa: E402
from tests import crowd  # noqa: E402
from tests.live import cli_env  # noqa: E402

CLI = [sys.executable, "-m", "backend"]


def drawn(reference: np.ndarray, style: int) -> np.ndarray:
    if style == 1:
        return np.asarray(ndimage.binary_dilation(reference), dtype=bool)
    if style == 2:
        labels, count = ndimage.label(reference)
        sizes = ndimage.sum(reference, labels, range(1, count + 1))
        keep = [n + 1 for n, size in enumerate(sizes) if size >= 12]
        return np.isin(labels, keep)
    return reference


def simulate_crowd(engine: object, storage: Storage) -> int:
    with transaction(engine) as session:  # type: ignore[arg-type]
        # Scripted raters answer in milliseconds: the speed rule and repeats are for people.
        for project in session.exec(select(Project)).all():
            project.fast_ms, project.repeat_rate = 0, 0.0
            project.min_gold = 100_000  # honest simulated raters: no suspension by the rules
            project.gold_rate = 0.0  # and no check slices: the experts' masks are the truth
            session.add(project)
        users = [
            auth.create_user(session=session, email=f"sim{n}@demo.org", password="simulated-1")
            for n in range(3)
        ]
    answered = crowd.label(engine, storage, users, draw=drawn)  # type: ignore[arg-type]
    crowd.fuse_complete(engine, storage)  # type: ignore[arg-type]
    return answered


def outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~np.asarray(ndimage.binary_erosion(mask), dtype=bool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "release-overlay.png")
    options = parser.parse_args()
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "var"
        env = cli_env(data_dir)
        subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True)
        subprocess.run(
            [*CLI, "demo", "--cases", str(options.cases), "--no-tutorial"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
        storage = Storage((data_dir / "storage").as_uri())
        answers = simulate_crowd(engine, storage)
        with Session(engine) as session:  # type: ignore[arg-type]
            project = session.exec(select(Project)).first()
            assert project is not None
            name = project.name
        with transaction(engine) as session:  # type: ignore[arg-type]
            made = service.create(
                session, project_name=name, name="demo-r1", filters=Filters(), actor=None
            )
            release_id = made.id or 0
        built = service.run(engine, storage, release_id)  # type: ignore[arg-type]
        assert built is not None
        root = Path(tmp) / "demo-r1"
        with Session(engine) as session:  # type: ignore[arg-type]
            for entry in service.files_of(session, release_id):
                (root / entry.path).parent.mkdir(parents=True, exist_ok=True)
                (root / entry.path).write_bytes(storage.get(f"releases/demo-r1/{entry.path}"))
        training = load_decathlon_datalist(
            str(root / "datalist.json"), True, "training", base_dir=str(root)
        )
        load = LoadImaged(
            keys=["image", "label", "labelled"], image_only=True, ensure_channel_first=True
        )
        best, overlap, total = None, 0.0, 0.0
        for item in training:
            loaded = load(item)
            image = np.asarray(loaded["image"])  # [channel, X, Y, Z]: FLAIR, T1, T2
            label = np.asarray(loaded["label"])[0]
            labelled = np.asarray(loaded["labelled"])[0, 0, 0, :] > 0
            hard = label == 1
            with Session(engine) as session:  # type: ignore[arg-type]
                reference_key = session.exec(
                    select(Volume.storage_key)
                    .join(Case, col(Case.id) == col(Volume.case_id))
                    .where(Case.public_id == item["case"], Volume.contrast == Contrast.reference)
                ).one()
            reference = decode_nifti(storage.get(reference_key)) > 0
            on = labelled[None, None, :] & np.ones(hard.shape, bool)
            overlap += 2 * float((hard & reference & on).sum())
            total += float((hard & on).sum() + (reference & on).sum())
            counts = hard.sum(axis=(0, 1))
            z = int(np.argmax(counts))
            if best is None or counts[z] > best[0]:
                best = (int(counts[z]), image, hard, z, item["case"])
        assert best is not None
        _n, image, hard, z, case = best
        panels = []
        for channel, title in enumerate(("FLAIR", "T1", "T2")):
            plane = to_display(image[channel, :, :, z])
            low, high = np.percentile(plane[plane != 0], [1, 99])
            grey = (np.clip((plane - low) / (high - low), 0, 1) * 255).astype(np.uint8)
            rgb = np.repeat(grey[:, :, None], 3, axis=2)
            rgb[outline(to_display(hard[:, :, z]))] = (255, 140, 0)
            picture = Image.fromarray(rgb).resize((rgb.shape[1] * 2, rgb.shape[0] * 2), 0)
            ImageDraw.Draw(picture).text((6, 4), title, fill=(255, 255, 0))
            panels.append(picture)
        sheet = Image.new("RGB", (sum(p.width for p in panels) + 8 * 2, panels[0].height), "white")
        x = 0
        for picture in panels:
            sheet.paste(picture, (x, 0))
            x += picture.width + 8
        options.out.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(options.out)
        print(
            f"{answers} answers; release demo-r1: {built.stats['cases']} cases, "
            f"{built.stats['labelled_slices']} labelled slices; MONAI loaded "
            f"{len(training)} training items; Dice of the hard labels against the expert masks "
            f"on labelled slices {overlap / max(total, 1):.3f}; overlay of case {case} slice {z} "
            f"-> {options.out}"
        )


if __name__ == "__main__":
    main()
