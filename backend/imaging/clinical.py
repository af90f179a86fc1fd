"""Raw clinical NIfTI studies (issue 38): several studies in one folder, told apart by the
prefix of their file names, each contrast on its own grid, like open_ms_data's clinical_raw:

    patient01/study1_FLAIR.nii.gz    study1_T1W.nii.gz    study1_T2W.nii.gz
              study1_T1W_to_FLAIR.tfm    study1_T2W_to_FLAIR.tfm    study1_brain_mask.nii.gz

A study is a case (named ``FOLDER/PREFIX`` in messages only). Its ITK transforms bring T1W and
T2W into the FLAIR's space; a contrast without one is registered to the FLAIR
(``imaging.register``, checked). A scan that still shows skull needs a brain mask
(``PREFIX_brain_mask.nii.gz``, on any grid): nothing outside it is stored or shown, and
without one the study is refused rather than shown with its skull and face.
"""

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from backend.imaging.models import Contrast
from backend.imaging.preprocess import CaseSource, InvalidCase

NIFTI = re.compile(r"^(?P<stem>.+?)\.nii(\.gz)?$", re.IGNORECASE)
ROLES = {
    "flair": Contrast.flair,
    "t1": Contrast.t1,
    "t1w": Contrast.t1,
    "t2": Contrast.t2,
    "t2w": Contrast.t2,
    "lesion_mask": Contrast.reference,
    "lesion-mask": Contrast.reference,
}
STUDY_FILE = re.compile(
    r"^(?P<prefix>.+?)[_-](?P<role>flair|t1w?|t2w?|lesion[_-]mask|brain[_-]?mask)$", re.IGNORECASE
)
TRANSFORM_FILE = re.compile(
    r"^(?P<prefix>.+?)[_-](?P<role>t1w?|t2w?)[_-]to[_-]flair\.tfm$", re.IGNORECASE
)


@dataclass
class StudyFiles:
    name: str  # for messages only; never stored
    folder: Path
    prefix: str
    images: dict[Contrast, Path] = field(default_factory=dict)
    transforms: dict[Contrast, Path] = field(default_factory=dict)
    brain: Path | None = None

    def files(self) -> list[tuple[str, Path]]:
        found = [(role.value, path) for role, path in sorted(self.images.items())]
        found += [(f"{role.value}_to_flair", p) for role, p in sorted(self.transforms.items())]
        if self.brain is not None:
            found.append(("brain", self.brain))
        return found


def _study(folder: Path, prefix: str) -> StudyFiles:
    return StudyFiles(f"{folder.name}/{prefix}", folder, prefix)


def studies_in(folder: Path) -> list[StudyFiles]:
    """The prefixed studies in ``folder`` that have a FLAIR (files of other studies' shapes,
    such as a mask in a common space, are left alone)."""
    studies: dict[str, StudyFiles] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        transform = TRANSFORM_FILE.match(path.name)
        nifti = NIFTI.match(path.name)
        if transform is not None:
            prefix, role = transform["prefix"], transform["role"].lower()
            study = studies.setdefault(prefix, _study(folder, prefix))
            study.transforms[ROLES[role]] = path
            continue
        found = STUDY_FILE.match(nifti["stem"]) if nifti is not None else None
        if found is None:
            continue
        prefix, role = found["prefix"], found["role"].lower().replace("-", "_")
        study = studies.setdefault(prefix, _study(folder, prefix))
        if role.replace("_", "") == "brainmask":
            study.brain = path
            continue
        contrast = ROLES[role]
        if contrast in study.images:
            raise InvalidCase(
                f"{study.name}: both {study.images[contrast].name} and {path.name} look like "
                f"the {contrast.value} image"
            )
        study.images[contrast] = path
    return [s for s in studies.values() if Contrast.flair in s.images]


def fingerprint(study: StudyFiles) -> str:
    """SHA-256 over the study's files and their roles."""
    digest = hashlib.sha256()
    for role, path in study.files():
        digest.update(role.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _image(path: Path, what: str) -> nib.spatialimages.SpatialImage:
    try:
        image: nib.spatialimages.SpatialImage = nib.load(path)  # type: ignore[assignment]
        return nib.Nifti1Image(np.asanyarray(image.dataobj), image.affine)
    except Exception as exc:  # nibabel raises many kinds on corrupt input
        raise InvalidCase(f"{what}: {path.name} is not a readable NIfTI file") from exc


def load(study: StudyFiles, digest: str | None = None) -> CaseSource:
    """The study as a case source: images, transforms (contrasts without one registered),
    its brain mask."""
    images = {role: _image(path, study.name) for role, path in study.images.items()}
    transforms = {}
    for role, path in study.transforms.items():
        try:
            transforms[role] = sitk.ReadTransform(str(path))
        except RuntimeError as exc:
            raise InvalidCase(f"{study.name}: {path.name} is not a readable ITK transform") from exc
    reference = images.pop(Contrast.reference, None)
    return CaseSource(
        name=study.name,
        images=images,
        reference=reference,
        fingerprint=digest or fingerprint(study),
        transforms=transforms,
        register=True,
        brain=None if study.brain is None else _image(study.brain, study.name),
    )


def loader(study: StudyFiles) -> tuple[str, functools.partial[CaseSource], str]:
    """A study's name, its loader and its fingerprint (``service.CaseLoader``'s fields)."""
    digest = fingerprint(study)
    return study.name, functools.partial(load, study, digest), digest
