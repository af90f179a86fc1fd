"""Raw clinical scans: contrasts brought into the FLAIR's space by the dataset's transforms or
by a checked rigid registration (a known motion recovered; an implausible one refused), and
brain only: a scan with its skull is refused without a brain mask, and with one no stored
slice shows a pixel outside it (dilated 2 mm), on open_ms_data's clinical_raw when present."""

import io
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage

from backend.imaging import clinical
from backend.imaging.models import Contrast
from backend.imaging.preprocess import (
    BRAIN_MARGIN_MM,
    InvalidCase,
    canonical,
    prepare_case,
    to_display,
)
from backend.imaging.register import RegistrationFailed, image_of, register_rigid, to_sitk
from backend.imaging.service import folder_loaders
from tests.conftest import OPEN_MS_DATA

RAW = OPEN_MS_DATA / "clinical_raw" / "patient01"


def _phantom() -> nib.Nifti1Image:
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in (96, 96, 30)), indexing="ij")
    head = (x**2 + y**2 + (z * 0.9) ** 2) <= 0.7
    texture = 300 + 100 * np.sin(5 * x) * np.cos(4 * y) + 80 * (x**2 + y**2 < 0.1)
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    affine[:3, 3] = [-48, -48, -45]
    return nib.Nifti1Image(np.where(head, texture, 0).astype(np.float32), affine)


def _moved(flair: nib.Nifti1Image, motion: sitk.Transform) -> nib.Nifti1Image:
    """A T1-like contrast of ``flair`` on another grid, the head moved by ``motion`` (which
    takes FLAIR points to the new image's points, as a registration finds it)."""
    data = np.asarray(flair.dataobj)
    inverted = nib.Nifti1Image((700 - data - 400 * (data == 0)).astype(np.float32), flair.affine)
    affine = np.diag([1.1, 1.1, 2.5, 1.0])
    affine[:3, 3] = [-50, -50, -45]
    grid = to_sitk(np.zeros((92, 92, 36), np.float32), affine)
    out = sitk.Resample(image_of(inverted), grid, motion.GetInverse(), sitk.sitkLinear, 0.0)
    return nib.Nifti1Image(sitk.GetArrayFromImage(out).transpose(2, 1, 0), affine)


def _motion(degrees: float, shift: tuple[float, float, float]) -> sitk.Euler3DTransform:
    motion = sitk.Euler3DTransform()
    motion.SetRotation(0.0, 0.02, np.radians(degrees))
    motion.SetTranslation(shift)
    return motion


def test_registration_recovers_a_known_motion() -> None:
    flair = _phantom()
    motion = _motion(4.0, (3.0, -2.0, 1.5))
    found = register_rigid(flair, _moved(flair, motion), "T1")
    assert found.after < found.before
    points = [
        tuple((flair.affine @ [i, j, k, 1])[:3] * [-1, -1, 1])
        for i in range(20, 80, 10)
        for j in range(20, 80, 10)
        for k in range(5, 25, 5)
    ]
    error = [
        np.linalg.norm(np.subtract(found.transform.TransformPoint(p), motion.TransformPoint(p)))
        for p in points
    ]
    assert float(np.mean(error)) < 1.0  # mm, on 1 x 1 x 3 mm voxels


def test_an_implausible_registration_is_refused() -> None:
    flair = _phantom()
    far = _moved(flair, _motion(0.0, (45.0, 0.0, 0.0)))  # more than a head moves
    with pytest.raises(RegistrationFailed, match="T1: registration"):
        register_rigid(flair, far, "T1")


def _need_raw() -> None:
    if not (RAW / "study1_FLAIR.nii.gz").exists():
        pytest.skip(f"{RAW} is absent: the clinical_raw checks need open_ms_data")


def _reference_brain(study: str) -> nib.Nifti1Image:
    """The providers' brain mask on the study's FLAIR grid (their recipe: the common-space
    mask through the inverse of the FLAIR-to-common transform, nearest neighbour)."""
    flair = sitk.ReadImage(str(RAW / f"{study}_FLAIR.nii.gz"))
    mask = sitk.ReadImage(str(RAW / "brainmask_common_space.nii.gz"))
    to_common = sitk.ReadTransform(str(RAW / f"{study}_FLAIR_to_common_space.tfm"))
    on_flair = sitk.Resample(mask, flair, to_common.GetInverse(), sitk.sitkNearestNeighbor, 0)
    reference = nib.load(RAW / f"{study}_FLAIR.nii.gz")
    data = sitk.GetArrayFromImage(on_flair).transpose(2, 1, 0) > 0
    return nib.Nifti1Image(data.astype(np.uint8), reference.affine)


def test_a_raw_scan_with_its_skull_is_refused_without_a_brain_mask(tmp_path: Path) -> None:
    _need_raw()
    for name in ("study1_FLAIR.nii.gz", "study1_T1W.nii.gz", "study1_T1W_to_FLAIR.tfm"):
        shutil.copy(RAW / name, tmp_path / name)
    (loader,) = folder_loaders(tmp_path)
    assert loader.name == f"{tmp_path.name}/study1"
    with pytest.raises(InvalidCase, match="still shows skull"):
        prepare_case(loader.load())


def test_clinical_raw_shows_brain_only(tmp_path: Path) -> None:
    _need_raw()
    for name in RAW.glob("study1_*"):
        shutil.copy(name, tmp_path / name.name)
    brain = _reference_brain("study1")
    nib.save(brain, tmp_path / "study1_brain_mask.nii.gz")
    (loader,) = folder_loaders(tmp_path)
    source = loader.load()
    assert set(source.transforms) == {Contrast.t1, Contrast.t2}
    prepared = prepare_case(source)
    # Every stored pixel of every contrast lies inside the brain mask dilated 2 mm.
    flair = canonical(source.images[Contrast.flair], "FLAIR")
    mask = np.asarray(canonical(brain, "mask").dataobj) > 0
    zooms = np.asarray(flair.header.get_zooms()[:3])
    radius = np.maximum(np.round(BRAIN_MARGIN_MM / zooms), 0).astype(int) + 1  # rounding slack
    kept = ndimage.binary_dilation(mask, structure=np.ones(tuple(2 * r + 1 for r in radius)))
    x0, y0, x1, y1 = prepared.crop
    assert prepared.slices
    for render in prepared.slices:
        allowed = to_display(kept[x0:x1, y0:y1, render.index])
        for contrast, png in render.pngs.items():
            with Image.open(io.BytesIO(png)) as image:
                pixels = np.asarray(image.convert("L"))
            assert pixels.shape == allowed.shape
            assert not pixels[~allowed].any(), (contrast, render.index)
    for volume in prepared.volumes.values():
        assert not volume[~kept].any()
    # The slices that hold little brain (the skull's top, the neck) are not served.
    assert min(r.brain_fraction for r in prepared.slices) >= 0.05


def test_registration_agrees_with_the_datasets_transform(tmp_path: Path) -> None:
    """Without its .tfm, T1W is registered: within 2 mm of the providers' transform."""
    _need_raw()
    flair = clinical._image(RAW / "study1_FLAIR.nii.gz", "FLAIR")
    t1 = clinical._image(RAW / "study1_T1W.nii.gz", "T1W")
    given = sitk.ReadTransform(str(RAW / "study1_T1W_to_FLAIR.tfm"))
    found = register_rigid(canonical(flair, "FLAIR"), canonical(t1, "T1"), "T1W")
    shape = np.asarray(flair.shape)
    points = [
        tuple((flair.affine @ [*(shape * f), 1])[:3] * [-1, -1, 1])
        for f in np.stack(np.meshgrid(*[np.linspace(0.3, 0.7, 4)] * 3), -1).reshape(-1, 3)
    ]
    error = [
        np.linalg.norm(np.subtract(found.transform.TransformPoint(p), given.TransformPoint(p)))
        for p in points
    ]
    assert float(np.mean(error)) < 2.0


def test_a_contrast_is_not_offered_where_its_stack_does_not_reach(tmp_path: Path) -> None:
    """The T1W's stack is thinner than the FLAIR's: the slices it does not reach carry no T1
    image (the studio offers only what a slice has), never a black one."""
    _need_raw()
    for name in RAW.glob("study1_*"):
        shutil.copy(name, tmp_path / name.name)
    nib.save(_reference_brain("study1"), tmp_path / "study1_brain_mask.nii.gz")
    t1 = nib.load(tmp_path / "study1_T1W.nii.gz")
    nib.save(t1.slicer[:, :, 14:], tmp_path / "study1_T1W.nii.gz")  # a stack 42 mm shorter
    (loader,) = folder_loaders(tmp_path)
    prepared = prepare_case(loader.load())
    without = [r.index for r in prepared.slices if Contrast.t1 not in r.pngs]
    assert without  # the lowest slices
    assert all(Contrast.flair in r.pngs for r in prepared.slices)
    for render in prepared.slices:
        for contrast, png in render.pngs.items():
            with Image.open(io.BytesIO(png)) as image:
                assert np.asarray(image).any(), (contrast, render.index)
