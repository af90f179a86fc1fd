"""A small tutorial case for the tests: slices with lesions of three loads, empty slices and
mimic slices (a bright blob that is no lesion), with the masks a scripted rater paints."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlmodel import Session

from backend.annotations.masks import encode_rle
from backend.core.storage import Storage
from backend.imaging.models import Case, Slice
from backend.imaging.preprocess import encode_png
from backend.projects.models import Project
from backend.tasks.models import Task
from backend.tutorials import material
from backend.tutorials.models import TutorialSlice
from tests.factories import create_case_row, create_project

SIZE = (40, 48)  # height, width
MIMICS = ("perivascular_space", "choroid_plexus", "periventricular_cap", "flow_artefact")
# Lesions per load: (radius, count); small < 40 px, medium < 120, large >= 120.
LOADS = {"small": (2, 1), "medium": (4, 2), "large": (10, 1)}


@dataclass(frozen=True)
class Shown:
    """What a tutorial slice holds: its reference lesions and where its mimic is."""

    reference: NDArray[np.bool_]
    mimic: NDArray[np.bool_]
    small: NDArray[np.bool_]  # lesions of under 20 pixels (the ones an under-segmenter misses)


def _disc(centre: tuple[int, int], radius: int) -> NDArray[np.bool_]:
    yy, xx = np.mgrid[: SIZE[0], : SIZE[1]]
    return bool_((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2)


def bool_(array: NDArray[np.bool_]) -> NDArray[np.bool_]:
    return np.asarray(array, dtype=bool)


BRAIN = bool_(
    ((np.mgrid[: SIZE[0], : SIZE[1]][0] - 20) / 18) ** 2
    + ((np.mgrid[: SIZE[0], : SIZE[1]][1] - 24) / 22) ** 2
    <= 1
)


def _slice_spec(kind: str, n: int) -> Shown:
    reference = np.zeros(SIZE, dtype=bool)
    mimic = np.zeros(SIZE, dtype=bool)
    small = np.zeros(SIZE, dtype=bool)
    if kind in LOADS:
        radius, count = LOADS[kind]
        centres = [(20, 22 + n % 4)] if kind == "large" else [(12, 14 + n % 4), (26, 30 + n % 4)]
        for centre in centres[:count]:
            disc = _disc(centre, radius)
            reference |= disc
            if disc.sum() < 20:
                small |= disc
    elif kind == "mimic":
        mimic = _disc((20, 30 - n % 5), 3)
    return Shown(reference, mimic, small)


def create_tutorial_case(
    session: Session,
    storage: Storage,
    *,
    project: Project | None = None,
    lesion: int = 4,
    empty: int = 4,
    mimic: int = 4,
) -> tuple[Case, dict[int, Shown]]:
    """A case marked as tutorial material with ``lesion`` slices of each load, ``empty``
    empty slices and ``mimic`` mimic slices (kinds in turn); returns it and what each slice
    (by id) shows."""
    project = project or create_project(session, qualification_required=False)
    case = create_case_row(session, project)
    assert case.id is not None
    assert project.id is not None
    kinds = [load for load in LOADS for _ in range(lesion)]
    kinds += ["empty"] * empty + ["mimic"] * mimic
    shown: dict[int, Shown] = {}
    mimic_at: dict[int, str] = {}
    voxels = 0
    for index, kind in enumerate(kinds):
        spec = _slice_spec(kind, index)
        flair = np.where(BRAIN, 100, 0).astype(np.uint8)
        flair[spec.reference] = 230
        flair[spec.mimic] = 200
        base = f"cases/{case.public_id}/axial/{index:04d}"
        storage.put(f"{base}/flair.png", encode_png(flair))
        storage.put(f"{base}/reference.png", encode_png(spec.reference.astype(np.uint8) * 255))
        row = Slice(
            case_id=case.id,
            index=index,
            crop_x0=0,
            crop_y0=0,
            crop_x1=SIZE[1],
            crop_y1=SIZE[0],
            image_keys={"flair": f"{base}/flair.png"},
            reference_key=f"{base}/reference.png",
            reference_pixels=int(spec.reference.sum()),
            brain_fraction=0.6,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        session.add(Task(project_id=project.id, slice_id=row.id, required_labels=3))
        shown[row.id] = spec
        voxels += int(spec.reference.sum())
        if kind == "mimic":
            mimic_at[index] = MIMICS[index % len(MIMICS)]
    case.reference_voxels = voxels
    session.add(case)
    session.flush()
    material.use_case(
        session=session,
        storage=storage,
        project_name=project.name,
        public_id=case.public_id,
        mimics=mimic_at,
    )
    return case, shown


def catalogue(session: Session, slice_id: int) -> TutorialSlice:
    found = session.get(TutorialSlice, slice_id)
    assert found is not None
    return found


def rle_of(mask: NDArray[np.bool_]) -> dict[str, object]:
    return {
        "encoding": "rle",
        "width": SIZE[1],
        "height": SIZE[0],
        "counts": encode_rle(mask.astype(np.uint8)),
    }
