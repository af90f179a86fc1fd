"""Cases that wait for a brain mask from the ML worker.

A scan that still shows skull and came without a brain mask (raw clinical NIfTI, a DICOM
study) cannot be imported as it is: volunteers see brain only. Instead of refusing it, the
import stages it (its images as NIfTI, already de-identified, its transforms and a manifest
of counts and settings: never a name or path) under ``staging/<token>/`` and sends the ML
worker ``ml.brain_mask`` by name (``backend.imaging.BRAIN_MASK``); the worker computes the
mask with deepbet and imports the case from the staged files in one transaction
(``finish``), then deletes them. What a crash leaves there is swept after a day
(``annotations.sweep``)."""

import gzip
import json
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from sqlmodel import Session, select

from backend.core.storage import Storage
from backend.imaging.models import ConsentScope, Contrast
from backend.imaging.preprocess import CaseSource, InvalidCase, skull_stripped

STAGING = "staging"
MANIFEST = "case.json"


def needs_brain_mask(source: CaseSource) -> bool:
    """Whether the case shows skull and came without a brain mask."""
    if source.brain is not None or Contrast.flair not in source.images:
        return False
    flair = source.images[Contrast.flair]
    voxel_ml = float(np.prod(flair.header.get_zooms()[:3])) / 1000.0
    return not skull_stripped(np.asarray(flair.dataobj, dtype=np.float32), voxel_ml)


def _nifti_bytes(image: nib.spatialimages.SpatialImage) -> bytes:
    data = np.asarray(image.dataobj)
    out = nib.Nifti1Image(data, image.affine)
    out.header.set_zooms(image.header.get_zooms()[: data.ndim])
    return gzip.compress(out.to_bytes(), compresslevel=1, mtime=0)


def _transform_bytes(transform: Any) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.tfm"
        sitk.WriteTransform(transform, str(path))
        return path.read_bytes()


@dataclass(frozen=True)
class Staged:
    token: str
    project: str
    source: str
    licence: str
    consent: frozenset[ConsentScope]


def stage(
    storage: Storage,
    source: CaseSource,
    *,
    project: str,
    provenance: str,
    licence: str,
    consent: frozenset[ConsentScope],
) -> str:
    """Write the case under ``staging/<token>/``; the token. Nothing of the source's name or
    paths is written."""
    token = secrets.token_hex(8)
    prefix = f"{STAGING}/{token}"
    try:
        for contrast, image in source.images.items():
            storage.put(f"{prefix}/{contrast}.nii.gz", _nifti_bytes(image))
        if source.reference is not None:
            storage.put(f"{prefix}/reference.nii.gz", _nifti_bytes(source.reference))
        for contrast, transform in source.transforms.items():
            storage.put(f"{prefix}/{contrast}.tfm", _transform_bytes(transform))
        manifest = {
            "fingerprint": source.fingerprint,
            "report": source.report,
            "register": source.register,
            "contrasts": sorted(source.images),
            "transforms": sorted(source.transforms),
            "reference": source.reference is not None,
            "project": project,
            "source": provenance,
            "licence": licence,
            "consent": sorted(consent),
        }
        storage.put(f"{prefix}/{MANIFEST}", json.dumps(manifest, sort_keys=True).encode())
    except BaseException:
        storage.delete_prefix(prefix)
        raise
    return token


def _image(storage: Storage, key: str) -> nib.Nifti1Image:
    image = nib.Nifti1Image.from_bytes(gzip.decompress(storage.get(key)))
    # Read the data now: the bytes are not kept.
    return nib.Nifti1Image(np.asarray(image.dataobj), image.affine, image.header)


def staged_flair(storage: Storage, token: str) -> nib.Nifti1Image:
    """The staged case's FLAIR (what the brain mask is computed on)."""
    return _image(storage, f"{STAGING}/{token}/{Contrast.flair}.nii.gz")


def load(storage: Storage, token: str, brain: nib.Nifti1Image) -> tuple[CaseSource, Staged]:
    """The staged case as a ``CaseSource`` with ``brain`` as its mask, and where it goes."""
    prefix = f"{STAGING}/{token}"
    if not storage.exists(f"{prefix}/{MANIFEST}"):
        raise InvalidCase(f"Staged case {token} is gone (swept or already imported)")
    manifest = json.loads(storage.get(f"{prefix}/{MANIFEST}"))
    images: dict[Contrast, nib.spatialimages.SpatialImage] = {
        Contrast(c): _image(storage, f"{prefix}/{c}.nii.gz") for c in manifest["contrasts"]
    }
    transforms = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in manifest["transforms"]:
            path = Path(folder) / f"{name}.tfm"
            path.write_bytes(storage.get(f"{prefix}/{name}.tfm"))
            transforms[Contrast(name)] = sitk.ReadTransform(str(path))
    reference = _image(storage, f"{prefix}/reference.nii.gz") if manifest["reference"] else None
    source = CaseSource(
        name=f"staged case {token}",
        images=images,
        reference=reference,
        fingerprint=manifest["fingerprint"],
        report=manifest["report"],
        transforms=transforms,
        register=manifest["register"],
        brain=brain,
    )
    staged = Staged(
        token=token,
        project=manifest["project"],
        source=manifest["source"],
        licence=manifest["licence"],
        consent=frozenset(ConsentScope(c) for c in manifest["consent"]),
    )
    return source, staged


def project_of(session: Session, name: str) -> Any:
    from backend.projects.models import Project

    project = session.exec(select(Project).where(Project.name == name)).first()
    if project is None:
        raise InvalidCase(f"Project {name!r} of a staged case no longer exists")
    return project
