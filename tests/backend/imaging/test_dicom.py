"""DICOM import: geometry from the headers (axial, sagittal, oblique; slices in any order and
folder structure), contrasts told apart, de-identification checked attribute by attribute
against Table E.1-1 and by searching every byte the import wrote, and bad series refused with
their file named and nothing stored."""

import gzip
import json
import random
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select
from typer.testing import CliRunner

from backend.cli import app
from backend.core.storage import Storage
from backend.imaging import deid, dicom
from backend.imaging.models import Case, Contrast
from backend.imaging.preprocess import InvalidCase
from backend.imaging.service import CaseMeta, import_cases
from tests.backend.imaging.dicomgen import FLAIR, T1, T2, SeriesSpec, planted_values, write_series
from tests.conftest import OPEN_MS_DATA

TABLE = OPEN_MS_DATA.parent / "dicom" / "confidentiality_profile_attributes.json"


def _phantom(shape: tuple[int, int, int] = (40, 48, 12)) -> np.ndarray:
    """An ellipsoid head with brighter blobs (lesions), in scanner units."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    head = (x**2 + y**2 + (z * 0.8) ** 2) <= 0.8
    data = np.where(head, 400.0 + 30 * x, 0.0)  # skull-stripped: zero around the brain
    data[18:22, 20:25, 4:7] += 500
    return data.astype(np.float32)


def _rotation(ax: float, ay: float) -> np.ndarray:
    cx, sx, cy, sy = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return rx @ ry


def _affine(rotation: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = [-90.5, 102.25, -40.0]
    return affine


def _same_grid(got: nib.Nifti1Image, want: nib.Nifti1Image, tolerance: float) -> None:
    """Same voxels at the same places (within 0.01 mm), whatever the axes' order."""
    a, b = nib.as_closest_canonical(got), nib.as_closest_canonical(want)
    assert a.shape == b.shape
    assert np.abs(a.affine - b.affine).max() < 0.01
    assert np.abs(a.get_fdata() - b.get_fdata()).max() <= tolerance


@pytest.mark.parametrize(
    ("plane", "rotation", "spacing"),
    [
        ("axial", np.eye(3), (0.9, 0.9, 3.0)),
        ("sagittal", np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float), (1.0, 1.0, 1.2)),
        ("oblique", _rotation(0.3, -0.2), (0.7, 0.8, 2.5)),
    ],
)
def test_geometry_and_intensities_come_back(
    tmp_path: Path, plane: str, rotation: np.ndarray, spacing: tuple[float, float, float]
) -> None:
    source = nib.Nifti1Image(_phantom(), _affine(rotation, spacing))
    write_series(source, tmp_path / "s", FLAIR, study_uid="1.2.3.4", slope=0.5, intercept=-10)
    (study,) = dicom.scan(tmp_path)
    case = dicom.load_study(study)
    _same_grid(case.images[Contrast.flair], source, tolerance=0.25 + 1e-4)  # half the slope


def test_a_study_split_shuffled_and_renamed_is_one_case(tmp_path: Path) -> None:
    source = nib.Nifti1Image(_phantom(), _affine(np.eye(3), (1.0, 1.0, 2.0)))
    flat = write_series(source, tmp_path / "flat" / "a", FLAIR, study_uid="1.2.3.5")
    flat += write_series(source, tmp_path / "flat" / "b", T2, study_uid="1.2.3.5")
    rng = random.Random(4)
    shuffled = tmp_path / "shuffled"
    for n, path in enumerate(rng.sample(flat, len(flat))):
        target = shuffled / f"d{n % 3}" / f"x{n % 2}" / f"{rng.randrange(10**9):x}"  # no suffix
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    assert len(flat) == 24
    one = dicom.load_study(dicom.scan(tmp_path / "flat")[0])
    (study,) = dicom.scan(shuffled)
    other = dicom.load_study(study)
    assert set(other.images) == {Contrast.flair, Contrast.t2}
    assert other.fingerprint == one.fingerprint


def test_contrasts_are_told_apart() -> None:
    def header(words: str, te: float | None, tr: float | None, ti: float | None = None) -> Any:
        return dicom.Header(
            path=Path("x"), rel="x", study="s", series="s", sop_class="", series_number=1,
            instance=1, words=words, description=words, scanning="IR" if ti else "SE", te=te,
            tr=tr, ti=ti, orientation=None, position=None, spacing=None, rows=1, columns=1,
            frames=1, burned_in=False, image_type="",
        )  # fmt: skip

    named = {
        "ax flair 3d": Contrast.flair,
        "t2_tirm_tra_dark-fluid": Contrast.flair,
        "sag 3d t1 mprage": Contrast.t1,
        "t1w_3d_tfe": Contrast.t1,
        "ax t2 tse": Contrast.t2,
        "t2w_tse": Contrast.t2,
        "localizer": None,
        "ax dwi b1000": None,
        "t2* gre": None,
    }
    for words, want in named.items():
        assert dicom.classify(header(words, 10, 500)) is want, words
    # Unnamed series by their timing (ms).
    assert dicom.classify(header("series 7", 125, 9000, 2500)) is Contrast.flair
    assert dicom.classify(header("series 8", 2.3, 2300, 900)) is Contrast.t1
    assert dicom.classify(header("series 9", 12, 600)) is Contrast.t1
    assert dicom.classify(header("series 10", 100, 5000)) is Contrast.t2
    assert dicom.classify(header("series 11", 40, 1500)) is None


def test_a_mapping_file_names_series_and_refuses_unknown_contrasts(tmp_path: Path) -> None:
    source = nib.Nifti1Image(_phantom(), _affine(np.eye(3), (1.0, 1.0, 2.0)))
    odd = SeriesSpec("SERIES A", te=40.0, tr=1500.0)  # no name nor timing says FLAIR
    write_series(source, tmp_path / "s", odd, study_uid="1.2.3.6")
    with pytest.raises(InvalidCase, match="no FLAIR series"):
        dicom.load_study(dicom.scan(tmp_path / "s")[0])
    mapping = tmp_path / "contrasts.yaml"
    mapping.write_text("series:\n  Series A: flair\n")
    (study,) = dicom.scan(tmp_path / "s", dicom.load_mapping(mapping))
    assert Contrast.flair in dicom.load_study(study).images
    mapping.write_text("series:\n  Series A: pd\n")
    with pytest.raises(dicom.InvalidMapping, match=r"contrasts.yaml: unknown contrast 'pd'"):
        dicom.load_mapping(mapping)


def _study(tmp_path: Path, uid: str = "1.2.826.0.1.3680043.2.1125.77") -> Path:
    source = nib.Nifti1Image(_phantom(), _affine(np.eye(3), (1.0, 1.0, 2.0)))
    for spec in (FLAIR, T1, T2):
        write_series(source, tmp_path / "in" / spec.description, spec, study_uid=uid)
    return tmp_path / "in"


def _edit(path: Path, **values: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def _import(root: Path, engine: Engine, storage: Storage) -> None:
    """Import the studies under ``root``; a failed case raises its message."""
    outcomes = import_cases(
        engine=engine,
        storage=storage,
        project_name="dicom",
        loaders=dicom.loaders(dicom.scan(root)),
        meta=CaseMeta("test", "CC0"),
    )
    for outcome in outcomes:
        if outcome.status == "failed":
            raise InvalidCase(outcome.message)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("corrupt", r"IM0005.dcm(: not an MR image| is not a readable DICOM file)"),
        ("truncated", r"IM0005.dcm: its pixels cannot be decoded"),
        ("tail", r"IM0005.dcm: its pixels cannot be decoded"),
        ("missing", r"unevenly spaced slices .* a slice is missing"),
        ("duplicate", r"two slices at one position"),
        ("orientation", r"mixed orientations"),
        ("burned", r"IM0002.dcm: BurnedInAnnotation is YES"),
        ("capture", r"IM0002.dcm: not an MR image .* secondary captures and screenshots"),
        ("capture-meta", r"IM0002.dcm: not an MR image"),
        ("deflated", r"IM0002.dcm: deflate-compressed files are not accepted"),
        ("multiframe", r"enhanced multi-frame image"),
        ("compressed", r"IM0003.dcm: its pixels cannot be decoded"),
    ],
)
def test_bad_series_are_refused_naming_the_file_and_store_nothing(
    tmp_path: Path, migrated_engine: Engine, storage: Storage, damage: str, message: str
) -> None:
    root = _study(tmp_path)
    flair = root / FLAIR.description
    early = damage in ("corrupt", "truncated", "tail")
    target = flair / ("IM0005.dcm" if early else "IM0002.dcm")
    if damage == "corrupt":
        target.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage" * 50)
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:-500])
    elif damage == "tail":  # readable up to its pixels, a broken sequence after them
        target.write_bytes(target.read_bytes() + b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff")
    elif damage == "missing":
        target.unlink()
    elif damage == "duplicate":
        shutil.copy(target, flair / "IM0002-copy.dcm")
    elif damage == "orientation":
        _edit(target, ImageOrientationPatient=[0, 1, 0, 0, 0, -1])
    elif damage == "burned":
        _edit(target, BurnedInAnnotation="YES")
    elif damage == "capture":
        _edit(target, SOPClassUID="1.2.840.10008.5.1.4.1.1.7")
    elif damage == "capture-meta":  # no SOP class in the data set, a capture in the file meta
        ds = pydicom.dcmread(target)
        del ds.SOPClassUID
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        ds.save_as(target)
    elif damage == "deflated":
        ds = pydicom.dcmread(target)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
        ds.save_as(target, enforce_file_format=True)
    elif damage == "multiframe":
        _edit(target, NumberOfFrames=2)
    elif damage == "compressed":
        ds = pydicom.dcmread(flair / "IM0003.dcm")
        ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
        ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 64])
        ds["PixelData"].VR = "OB"
        ds.save_as(flair / "IM0003.dcm", enforce_file_format=True)
    with pytest.raises(InvalidCase, match=message):
        _import(root, migrated_engine, storage)
    with Session(migrated_engine) as session:
        assert session.exec(select(func.count()).select_from(Case)).one() == 0
    assert not [p for p in storage.fs.find(storage.root) if "/cases/" in p]


def test_the_shipped_profile_is_table_e1_1() -> None:
    if not TABLE.exists():
        pytest.skip(f"{TABLE} is absent: the shipped copy cannot be compared")
    rows = json.loads(TABLE.read_text())
    shipped = json.loads(deid.PROFILE_FILE.read_text())["actions"]
    assert {r["id"].upper(): r["basicProfile"] for r in rows} == shipped
    assert len(shipped) == 621


def _database_bytes(engine: Engine) -> bytes:
    """The database as bytes: the SQLite file (and its log), or a dump of the test's schema."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    schema = str(url.query["options"]).split("search_path=")[1]
    dump = subprocess.run(
        ["pg_dump", "-h", str(url.host), "-p", str(url.port or 5432), "-U", str(url.username),
         "-d", str(url.database), "-n", schema],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    assert b"CREATE TABLE" in dump.stdout
    return dump.stdout


def _written_bytes(data_dir: Path, output: str) -> bytes:
    """Every byte the import wrote to storage (gzip opened), and its output."""
    chunks = [output.encode()]
    for path in sorted(data_dir.rglob("*")):
        if path.is_file():
            raw = path.read_bytes()
            chunks.append(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    return b"\n".join(chunks)


def test_nothing_identifying_is_stored_and_every_attribute_is_handled(
    tmp_path: Path, migrated_engine: Engine, storage: Storage
) -> None:
    uid = "1.2.826.0.1.3680043.2.1125.4242"
    root = _study(tmp_path, uid)
    files = dicom.find_files(root)
    # Attribute by attribute: what the import keeps, the profile lets it keep (the table does
    # not list it); everything else the files hold is counted in the report, and removed.
    for keyword in deid.KEPT:
        tag = pydicom.datadict.tag_for_keyword(keyword)
        assert tag is not None
        assert deid.action_of(tag) is None, keyword
    met: set[int] = set()
    for path in files:
        for element in pydicom.dcmread(path).iterall():
            met.add(int(element.tag))
    (study,) = dicom.scan(root)
    report = study.report.summary(kept=deid.KEPT, studies=1, series=3)
    assert report["files"] == len(files)
    counted = set().union(*(study.report.tags[k] for k in study.report.tags if k != "in sequences"))
    assert counted == met - {int(pydicom.tag.Tag("PixelData"))}  # headers read without pixels
    for keyword, action in (
        ("PatientName", "Z"),
        ("StudyInstanceUID", "U"),
        ("StationName", "X/Z/D"),
    ):
        tag = int(pydicom.tag.Tag(keyword))
        assert deid.action_of(tag) == action
        assert tag in study.report.tags[action]
    assert report["by_action"]["private"]["attributes"] >= 1
    assert report["by_action"]["in sequences"]["attributes"] >= 2
    outcomes = import_cases(
        engine=migrated_engine,
        storage=storage,
        project_name="dicom",
        loaders=dicom.loaders([study]),
        meta=CaseMeta("DICOM import", "CC0"),
    )
    (outcome,) = outcomes
    assert outcome.status == "imported", outcome.message
    assert outcome.report == report
    stored = json.loads(storage.get(f"cases/{outcome.case_public_id}/deid_report.json"))
    assert stored == report
    written = _written_bytes(Path(storage.root), outcome.name + outcome.message)
    written += _database_bytes(migrated_engine)
    assert b"by_action" in written  # the stored report was read
    assert outcome.case_public_id is not None
    assert outcome.case_public_id.encode() in written
    series_uids = {str(pydicom.dcmread(p).SeriesInstanceUID) for p in files}
    sop_uids = {str(pydicom.dcmread(p).SOPInstanceUID) for p in files[:5]}
    for value in [*planted_values(uid), *series_uids, *sop_uids]:
        assert value.encode() not in written, value
        assert value.encode().lower() not in written.lower(), value


def test_the_cli_imports_dicom_and_writes_no_identifier_anywhere(
    settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    uid = "1.2.826.0.1.3680043.2.1125.9090"
    root = _study(tmp_path, uid)
    result = runner.invoke(app, ["import", str(root), "--project", "clinic"])
    assert result.exit_code == 0, result.output
    assert "+ DICOM study 1 (3 series, 36 files): imported as case" in result.output
    assert "de-identified 36 files: attributes by profile action" in result.output
    # Every byte under the data folder (database, storage, logs) and the output.
    written = _written_bytes(tmp_path / "var", result.output)
    assert b"by_action" in written
    for value in planted_values(uid):
        assert value.encode().lower() not in written.lower(), value
    again = runner.invoke(app, ["import", str(root), "--project", "clinic"])
    assert "= DICOM study 1 (3 series, 36 files): skipped" in again.output
    # A mapping file naming a contrast the studio does not show: refused, naming the file.
    mapping = tmp_path / "map.yaml"
    mapping.write_text("series:\n  AX FLAIR 3D: dwi\n")
    refused = runner.invoke(
        app, ["import", str(root), "--project", "clinic", "--contrasts", str(mapping)]
    )
    assert refused.exit_code == 1
    assert "map.yaml: unknown contrast 'dwi'" in refused.output


def test_pydicom_never_prints_the_values_it_finds_invalid(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A UID with a leading zero and a birth date inside it, a name in a number field: pydicom
    warns about them quoting the value; the import reads them without a word."""
    root = _study(tmp_path)
    odd_uid = "1.2.840.113619.2.055.3.4417229019610423.20250317.1"
    for path in (root / FLAIR.description).iterdir():
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = odd_uid
        ds.save_as(path)
    first = sorted((root / T1.description).iterdir())[0]
    raw = first.read_bytes().replace(b"ORIGINAL", b"DOEJANE!", 1)
    first.write_bytes(raw)
    capfd.readouterr()  # what writing the odd values printed: not the import's
    caplog.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        (study,) = dicom.scan(root)
        dicom.load_study(study)
    printed = capfd.readouterr()
    logged = caplog.text
    for value in (odd_uid, "DOEJANE"):
        assert value not in printed.out + printed.err + logged


def test_messages_name_files_never_their_folders(tmp_path: Path) -> None:
    """Exports name folders after patients: messages give the file's own name."""
    root = _study(tmp_path)
    patient = tmp_path / "in" / "DOE_JANE_MRN-4417-2290"
    shutil.move(str(root / FLAIR.description), str(patient))
    (patient / "IM0002.dcm").unlink()
    with pytest.raises(InvalidCase) as refused:
        dicom.load_study(dicom.scan(root)[0])
    assert "IM0001.dcm" in refused.value.message
    assert "DOE_JANE" not in refused.value.message
