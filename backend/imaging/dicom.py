"""DICOM studies in, de-identified before anything is stored (issue 38).

``mscrowd import PATH`` finds DICOM files anywhere under PATH (any folder structure, with or
without the .dcm suffix; a DICOMDIR is not needed and is ignored), groups them into cases by
study (StudyInstanceUID) and into volumes by series (SeriesInstanceUID), tells the contrasts
apart (FLAIR, T1, T2) from what the headers say of the acquisition, builds each volume with its
geometry (ImagePositionPatient, ImageOrientationPatient, PixelSpacing, the slices' order and
spacing, RescaleSlope/Intercept) and hands it to the NIfTI pipeline as an in-memory image.

De-identification is by allow-list (``backend.imaging.deid``): headers are read into memory, the
few values the pipeline needs are taken (geometry and the acquisition parameters contrast
detection reads), and nothing else of a header is ever stored; the voxels and their geometry
are all that reaches storage, under a random case id. Identifiers are not even used in messages:
a study is named by its place in the import ("DICOM study 2"), a file by its path under the
folder the admin gave.
"""

import functools
import hashlib
import logging
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pydicom
import yaml

from backend.imaging import deid
from backend.imaging.models import Contrast
from backend.imaging.preprocess import CaseSource, InvalidCase
from backend.imaging.service import CaseLoader

ENHANCED_MR = {
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
}
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"  # classic MR Image Storage: the only kind read
DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian
MAX_FILE_BYTES = 64 * 2**20  # a 2048 x 2048 16-bit slice is 8 MB
SKIP_WORDS = re.compile(
    r"localizer|localiser|scout|survey|\bloc\b|dwi|diffusion|\badc\b|trace|\bswi\b|swan|perf"
    r"|dti|t2\*|t2 ?star"
)
FLAIR_WORDS = re.compile(r"flair|dark[ _-]?fluid|tirm")
T2_WORDS = re.compile(r"(^|[^a-z0-9])t2(w|_|[^a-z0-9*s]|$)|t2w|tse.*t2")
T1_WORDS = re.compile(r"(^|[^a-z0-9])t1(w|_|[^a-z0-9]|$)|mprage|mp2rage|spgr|bravo|tfl3d|\bvibe\b")
STEP_TOLERANCE = 0.01  # share of the slice step two neighbours' distance may differ by
PLANE_TOLERANCE = 1e-4  # orientation cosines that count as the same


class InvalidMapping(InvalidCase):
    """A contrast mapping file that cannot be used."""


@dataclass(frozen=True)
class Header:
    """What is read of one DICOM file, kept in memory only while importing."""

    path: Path
    rel: str  # the path under the import folder, for messages
    study: str
    series: str
    sop_class: str
    series_number: int | None
    instance: int | None
    words: str  # description, protocol and sequence name, lower case: for contrast only
    description: str  # the series description as written, for the mapping file only
    scanning: str
    te: float | None
    tr: float | None
    ti: float | None
    orientation: tuple[float, ...] | None
    position: tuple[float, ...] | None
    spacing: tuple[float, ...] | None
    rows: int
    columns: int
    frames: int
    burned_in: bool
    image_type: str


def is_dicom(path: Path) -> bool:
    """A DICOM Part 10 file: the "DICM" magic after the 128-byte preamble."""
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def find_files(root: Path) -> list[Path]:
    """The DICOM files under ``root`` (sorted; a DICOMDIR and hidden files left out)."""
    if root.is_file():
        return [root] if is_dicom(root) else []
    found = []
    for path in sorted(root.rglob("*")):
        if path.name.upper() == "DICOMDIR" or path.name.startswith("."):
            continue
        if path.is_file() and is_dicom(path):
            found.append(path)
    return found


def _number(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    try:
        found = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return found if len(found) == count else None


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


@contextmanager
def quiet() -> Iterator[None]:
    """pydicom without its warnings and log lines: they quote the values they find invalid (a
    UID with a date in it, a name in a number field), and would print them."""
    logger = logging.getLogger("pydicom")
    level, mode = logger.level, pydicom.config.settings.reading_validation_mode
    logger.setLevel(logging.CRITICAL + 1)
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
        pydicom.config.settings.reading_validation_mode = mode


def read_header(path: Path, rel: str, report: deid.Report) -> Header:
    """Read one file's header (no pixels) and count its attributes into ``report``."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InvalidCase(f"{rel}: {size // 2**20} MB, larger than any single MR slice")
    try:
        with quiet():
            syntax = str(pydicom.filereader.read_file_meta_info(path).get("TransferSyntaxUID", ""))
            if syntax == DEFLATED:  # inflates without bound before anything can be checked
                raise InvalidCase(f"{rel}: deflate-compressed files are not accepted")
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            report.count(ds)
    except InvalidCase:
        raise
    except Exception as exc:  # pydicom raises many kinds; its messages may quote values
        raise InvalidCase(f"{rel} is not a readable DICOM file ({type(exc).__name__})") from exc
    sop_class = _text(ds, "SOPClassUID") or str(
        getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", "") or ""
    )
    stored_as = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or "")
    if sop_class != MR_IMAGE or stored_as not in ("", MR_IMAGE):
        kind = "enhanced multi-frame" if sop_class in ENHANCED_MR else "not an MR image"
        raise InvalidCase(
            f"{rel}: {kind} (SOP class {sop_class or 'missing'}); only classic MR images are "
            "read: secondary captures and screenshots may show text in their pixels"
        )
    if not ds.get("StudyInstanceUID") or not ds.get("SeriesInstanceUID"):
        raise InvalidCase(f"{rel}: no study or series instance UID; cannot tell its study")
    words = " ".join(
        _text(ds, k).lower() for k in ("SeriesDescription", "ProtocolName", "SequenceName")
    )
    series_number = _number(ds.get("SeriesNumber"))
    instance = _number(ds.get("InstanceNumber"))
    return Header(
        path=path,
        rel=rel,
        study=str(ds.StudyInstanceUID),
        series=str(ds.SeriesInstanceUID),
        sop_class=sop_class,
        series_number=None if series_number is None else int(series_number),
        instance=None if instance is None else int(instance),
        words=words,
        description=_text(ds, "SeriesDescription").strip().lower(),
        scanning=(_text(ds, "ScanningSequence") + "\\" + _text(ds, "ScanOptions")).upper(),
        te=_number(ds.get("EchoTime")),
        tr=_number(ds.get("RepetitionTime")),
        ti=_number(ds.get("InversionTime")),
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        position=_floats(ds.get("ImagePositionPatient"), 3),
        spacing=_floats(ds.get("PixelSpacing"), 2),
        rows=int(ds.get("Rows") or 0),
        columns=int(ds.get("Columns") or 0),
        frames=int(_number(ds.get("NumberOfFrames")) or 1),
        burned_in=_text(ds, "BurnedInAnnotation").strip().upper() == "YES",
        image_type=_text(ds, "ImageType").upper(),
    )


def classify(header: Header) -> Contrast | None:
    """FLAIR, T1 or T2 from the series' words, else from its timing (ms): a long inversion
    with a long TR is FLAIR; an inversion near 1 s with a short TR, or a short TR and TE, is
    T1; a long TR and TE without inversion is T2. None: not a contrast the studio shows."""
    words = header.words
    if SKIP_WORDS.search(words):
        return None
    if FLAIR_WORDS.search(words):
        return Contrast.flair
    if T1_WORDS.search(words):
        return Contrast.t1
    if T2_WORDS.search(words):
        return Contrast.t2
    te, tr, ti = header.te, header.tr, header.ti
    inversion = bool(ti) or "IR" in header.scanning.split("\\")
    if inversion and ti is not None and ti >= 1400 and (tr or 0) >= 4000:
        return Contrast.flair
    if inversion and ti is not None and 500 <= ti <= 1300 and (tr or 0) <= 3500:
        return Contrast.t1
    if tr is not None and te is not None:
        if tr <= 1200 and te <= 30:
            return Contrast.t1
        if tr >= 2000 and te >= 60 and not inversion:
            return Contrast.t2
    return None


def load_mapping(path: Path) -> dict[str, Contrast | None]:
    """A mapping file (YAML or JSON): ``series: {DESCRIPTION: flair | t1 | t2 | skip}``, the
    descriptions as the scanner wrote them (matched without regard to case)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidMapping(f"{path}: not a readable YAML or JSON file ({exc})") from exc
    series = data.get("series") if isinstance(data, dict) else None
    if not isinstance(series, dict) or not series:
        raise InvalidMapping(f"{path}: expected a 'series' map of description: contrast")
    choices = {c.value: c for c in (Contrast.flair, Contrast.t1, Contrast.t2)}
    mapping: dict[str, Contrast | None] = {}
    for description, value in series.items():
        name = str(value).strip().lower()
        if name == "skip":
            mapping[str(description).strip().lower()] = None
        elif name in choices:
            mapping[str(description).strip().lower()] = choices[name]
        else:
            raise InvalidMapping(
                f"{path}: unknown contrast {value!r} for {description!r} "
                "(use flair, t1, t2 or skip)"
            )
    return mapping


@dataclass
class Series:
    headers: list[Header]
    contrast: Contrast | None

    @property
    def label(self) -> str:
        number = self.headers[0].series_number
        first = self.headers[0].rel
        return (
            f"series {number if number is not None else '?'} ({len(self.headers)} files, {first})"
        )


def _check_series(series: Series) -> None:
    """Refuse what cannot be shown safely or read right: burned-in text, secondary captures,
    enhanced multi-frame images, missing geometry."""
    for header in series.headers:
        if header.burned_in:
            raise InvalidCase(f"{header.rel}: BurnedInAnnotation is YES (text in the pixels)")
        if "SCREEN" in header.image_type:  # other SOP classes are refused when read
            raise InvalidCase(
                f"{header.rel}: a secondary capture or screenshot, which may show identifying "
                "text in its pixels"
            )
        if header.frames > 1:  # a multi-frame object of the classic class
            raise InvalidCase(
                f"{header.rel}: an enhanced multi-frame image; export the series as classic "
                "single-frame MR images"
            )
        if header.orientation is None or header.position is None or header.spacing is None:
            raise InvalidCase(
                f"{header.rel}: no ImageOrientationPatient, ImagePositionPatient or "
                "PixelSpacing; its place in the body is unknown"
            )


def geometry(series: Series) -> tuple[list[Header], npt.NDArray[np.float64]]:
    """The series' files in slice order and its voxel-to-world matrix (RAS, mm); refuses
    mixed orientations or grids, duplicate, missing or unevenly spaced slices."""
    headers = series.headers
    first = headers[0]
    assert first.orientation is not None
    assert first.spacing is not None
    orientation = np.array(first.orientation)
    for header in headers[1:]:
        assert header.orientation is not None
        if np.abs(np.array(header.orientation) - orientation).max() > PLANE_TOLERANCE:
            raise InvalidCase(f"{series.label}: mixed orientations ({first.rel}, {header.rel})")
        if (header.rows, header.columns, header.spacing) != (
            first.rows,
            first.columns,
            first.spacing,
        ):
            raise InvalidCase(f"{series.label}: mixed image sizes or pixel spacings")
    if len(headers) < 3:
        raise InvalidCase(f"{series.label}: fewer than 3 slices, not a volume")
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    positions = np.array([h.position for h in headers], dtype=np.float64)
    depth = positions @ normal
    order = np.argsort(depth, kind="stable")
    depth, positions = depth[order], positions[order]
    ordered = [headers[i] for i in order]
    gaps = np.diff(depth)
    for k, gap in enumerate(gaps):
        if gap < 1e-3:
            raise InvalidCase(
                f"{series.label}: two slices at one position ({ordered[k].rel}, "
                f"{ordered[k + 1].rel}): duplicate files?"
            )
    step = float(np.median(gaps))
    for k, gap in enumerate(gaps):
        if abs(gap - step) > STEP_TOLERANCE * step + 1e-3:
            raise InvalidCase(
                f"{series.label}: unevenly spaced slices ({gap:.3f} mm between "
                f"{ordered[k].rel} and {ordered[k + 1].rel}, {step:.3f} mm elsewhere): a "
                "slice is missing or the series is not one volume"
            )
    # A sheared stack (gantry tilt) moves each slice within its plane: refuse, not resample.
    drift = (positions - positions[0]) - np.outer(depth - depth[0], normal)
    if np.abs(drift).max() > 0.01 * max(step, 1.0) * len(headers):
        raise InvalidCase(f"{series.label}: slices shifted within their plane (gantry tilt)")
    assert first.spacing is not None
    lps = np.eye(4)
    lps[:3, 0] = row * first.spacing[1]  # along a row: the column index
    lps[:3, 1] = col * first.spacing[0]  # down a column: the row index
    lps[:3, 2] = normal * step
    lps[:3, 3] = positions[0]
    return ordered, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def read_volume(series: Series) -> nib.Nifti1Image:
    """Decode the series one file at a time into a float32 volume (the only copy held)."""
    ordered, affine = geometry(series)
    first = ordered[0]
    data = np.empty((first.columns, first.rows, len(ordered)), dtype=np.float32)
    for k, header in enumerate(ordered):
        ds = None
        try:
            with quiet():
                ds = pydicom.dcmread(header.path)
                pixels = ds.pixel_array
        except Exception as exc:
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            kind = syntax.name if syntax is not None and syntax.is_transfer_syntax else "damaged"
            raise InvalidCase(
                f"{header.rel}: its pixels cannot be decoded ({kind}; compressed without a "
                "decoder installed, or damaged)"
            ) from exc
        if pixels.shape != (first.rows, first.columns):
            raise InvalidCase(f"{header.rel}: pixel data of shape {pixels.shape}, not a slice")
        slope = _number(ds.get("RescaleSlope")) or 1.0
        intercept = _number(ds.get("RescaleIntercept")) or 0.0
        data[:, :, k] = pixels.T.astype(np.float32) * slope + intercept
        del ds, pixels
    return nib.Nifti1Image(data, affine)  # type: ignore[no-untyped-call]


@dataclass
class Study:
    number: int  # its place in the import: the only name it gets
    series: list[Series]
    report: deid.Report
    skipped: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        files = sum(len(s.headers) for s in self.series)
        return f"DICOM study {self.number} ({len(self.series)} series, {files} files)"

    def chosen(self) -> dict[Contrast, Series]:
        """One series per contrast: the one with most slices (ties: the first)."""
        best: dict[Contrast, Series] = {}
        for series in self.series:
            if series.contrast is None:
                continue
            held = best.get(series.contrast)
            if held is None or len(series.headers) > len(held.headers):
                best[series.contrast] = series
        return best


def _fingerprint(images: dict[Contrast, nib.Nifti1Image]) -> str:
    """SHA-256 over the de-identified content (contrast, geometry, voxels): the same study
    imports once, and no identifier goes into it."""
    digest = hashlib.sha256()
    for role in sorted(images):
        image = images[role]
        digest.update(role.value.encode() + b"\0")
        digest.update(np.asarray(image.affine, dtype=np.float64).round(4).tobytes())
        digest.update(np.ascontiguousarray(image.get_fdata(dtype=np.float32)).tobytes())
    return digest.hexdigest()


def load_study(study: Study) -> CaseSource:
    """The study's volumes (FLAIR required) as a case source for the NIfTI pipeline."""
    chosen = study.chosen()
    if Contrast.flair not in chosen:
        found = ", ".join(sorted(c.value for c in chosen)) or "none"
        raise InvalidCase(
            f"{study.name}: no FLAIR series found (contrasts found: {found}); name the series "
            "in a mapping file (--contrasts)"
        )
    for series in chosen.values():
        _check_series(series)
    images = {role: read_volume(series) for role, series in sorted(chosen.items())}
    return CaseSource(
        name=study.name,
        images=dict(images),
        reference=None,
        fingerprint=_fingerprint(images),
        report=study.report.summary(kept=deid.KEPT, studies=1, series=len(study.series)),
    )


def scan(
    root: Path,
    mapping: dict[str, Contrast | None] | None = None,
    files: Iterable[Path] | None = None,
) -> list[Study]:
    """Read the header of every DICOM file under ``root`` (or of ``files``, found there
    already: a progress bar's iterable) and group them into studies."""
    grouped: dict[str, dict[str, list[Header]]] = defaultdict(lambda: defaultdict(list))
    reports: dict[str, deid.Report] = defaultdict(deid.Report)
    for path in find_files(root) if files is None else files:
        # Named by the file's own name, not its folders: exports name folders after patients.
        rel = path.name
        report = deid.Report()
        header = read_header(path, rel, report)
        reports[header.study].merge(report)
        grouped[header.study][header.series].append(header)
    studies = []
    for number, (uid, by_series) in enumerate(grouped.items(), start=1):
        series = []
        skipped = []
        for headers in by_series.values():
            first = headers[0]
            if mapping is not None and first.description in mapping:
                contrast = mapping[first.description]
            else:
                contrast = classify(first)
            found = Series(headers=headers, contrast=contrast)
            series.append(found)
            if contrast is None:
                skipped.append(found.label)
        studies.append(Study(number, series, reports[uid], skipped))
    return studies


def loaders(studies: list[Study]) -> list[CaseLoader]:
    """One case loader per study; each decodes its volumes only when imported."""
    return [CaseLoader(study.name, functools.partial(load_study, study)) for study in studies]
