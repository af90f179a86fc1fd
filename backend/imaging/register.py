"""Bringing a contrast into the FLAIR's space (issue 38): with the ITK transform a dataset
supplies (``*_T1W_to_FLAIR.tfm``: it maps FLAIR points to the other contrast's, as ITK's
resampling reads it), or else by rigid registration (SimpleITK, Mattes mutual information,
three resolutions) checked before it is used: a registration that moved the image
implausibly far, or left it less similar to the FLAIR than it started, is refused rather
than shown misaligned.
"""

from dataclasses import dataclass

import nibabel as nib
import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

# A rigid registration between two contrasts of one session moves little: more than this is a
# failure (the optimiser wandered), not a head that moved.
MAX_ROTATION_DEG = 20.0
MAX_TRANSLATION_MM = 30.0


class RegistrationFailed(Exception):
    """A registration that did not converge to a plausible alignment."""


@dataclass(frozen=True)
class Registration:
    transform: sitk.Transform
    before: float  # the metric (negative MI: lower is better) at the start
    after: float  # and at the end
    rotation_deg: float
    translation_mm: float


def to_sitk(data: npt.NDArray[np.generic], affine: npt.NDArray[np.float64]) -> sitk.Image:
    """A NIfTI-style array ``[X, Y, Z]`` with its RAS affine as an ITK image (LPS)."""
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :4]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:, :3] / spacing).flatten().tolist())
    image.SetOrigin(lps[:, 3].tolist())
    return image


def image_of(image: nib.Nifti1Image) -> sitk.Image:
    return to_sitk(np.asarray(image.dataobj, dtype=np.float32), image.affine)


def resample(
    image: nib.Nifti1Image,
    reference: nib.Nifti1Image,
    transform: sitk.Transform | None = None,
    *,
    nearest: bool = False,
) -> npt.NDArray[np.float32]:
    """``image`` on ``reference``'s grid ``[X, Y, Z]`` through ``transform`` (identity: the
    two share world space)."""
    moving = image_of(image)
    target = to_sitk(np.zeros(reference.shape, dtype=np.float32), reference.affine)
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(
        moving, target, transform or sitk.Transform(), interpolator, 0.0, sitk.sitkFloat32
    )
    return np.asarray(sitk.GetArrayFromImage(out).transpose(2, 1, 0), dtype=np.float32)


def _method() -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.1, seed=7)  # fixed seed: the same case, the same result
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-3, numberOfIterations=150, relaxationFactor=0.6
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def register_rigid(fixed: nib.Nifti1Image, moving: nib.Nifti1Image, what: str) -> Registration:
    """Rigid transform taking ``fixed`` (FLAIR) points to ``moving`` points; refused
    (``RegistrationFailed``, naming ``what``) when implausible or worse than the start."""
    fixed_image, moving_image = image_of(fixed), image_of(moving)
    start = sitk.CenteredTransformInitializer(
        fixed_image,
        moving_image,
        sitk.Euler3DTransform(),
        sitk.CenteredTransformInitializerFilter.GEOMETRY,
    )
    method = _method()
    method.SetInitialTransform(start, inPlace=False)
    before = method.MetricEvaluate(fixed_image, moving_image)
    try:
        found = method.Execute(fixed_image, moving_image)
    except RuntimeError as exc:  # ITK stops with an exception when samples leave the image
        raise RegistrationFailed(f"{what}: registration to the FLAIR failed ({exc})") from exc
    after = method.GetMetricValue()
    euler = sitk.Euler3DTransform(sitk.CompositeTransform(found).GetNthTransform(0))
    angles = np.degrees(np.abs(np.array(euler.GetParameters()[:3])))
    rotation, translation = float(angles.max()), float(np.linalg.norm(euler.GetTranslation()))
    if rotation > MAX_ROTATION_DEG or translation > MAX_TRANSLATION_MM:
        raise RegistrationFailed(
            f"{what}: registration to the FLAIR moved it {rotation:.0f} degrees and "
            f"{translation:.0f} mm, more than a head moves between sequences; refused"
        )
    if not after < before:
        raise RegistrationFailed(
            f"{what}: registration left it no more similar to the FLAIR (mutual information "
            f"{-before:.3f} before, {-after:.3f} after); refused"
        )
    return Registration(found, float(before), float(after), rotation, translation)
