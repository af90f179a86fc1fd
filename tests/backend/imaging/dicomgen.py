"""DICOM series made from NIfTI volumes for the import tests, one classic MR file per slice,
filled with the identifying attributes a hospital's export carries (names, dates, IDs,
addresses, institution, physicians, operators, station, UIDs, private tags, and a name inside
a nested sequence), so the tests can look for every one of them afterwards."""

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import DSfloat

# Values that must never reach the database, storage, logs or output.
IDENTIFIERS = {
    "PatientName": "DOE^JANE^Q",
    "PatientID": "MRN-4417-2290",
    "PatientBirthDate": "19610423",
    "PatientAddress": "12 Lindenweg, 8001 Zurich",
    "OtherPatientIDs": "INS-77821034",
    "PatientTelephoneNumbers": "+41 44 555 01 23",
    "InstitutionName": "St Elsewhere University Hospital",
    "InstitutionAddress": "1 Hospital Road, Springfield",
    "InstitutionalDepartmentName": "Neuroradiology West",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "PerformingPhysicianName": "QUINN^MICHAELA",
    "OperatorsName": "TECH^TERESA",
    "StationName": "MRSCANNER-ZH-07",
    "DeviceSerialNumber": "SN-99887766",
    "AccessionNumber": "ACC20260417001",
    "StudyID": "STUDY-8812",
    "StudyDate": "20250317",
    "SeriesDate": "20250317",
    "AcquisitionDate": "20250317",
    "ContentDate": "20250317",
    "StudyTime": "141516.123",
    "SeriesTime": "142233.456",
    "StudyDescription": "MS follow-up Jane Doe",
    "RequestingPhysician": "WILSON^JAMES",
    "PatientComments": "claustrophobic, call daughter Anna",
}
NESTED_NAME = "SMITH^ANNA^NESTED"
PRIVATE_VALUE = "PRIVATE-SECRET-5521"


@dataclass(frozen=True)
class SeriesSpec:
    description: str
    te: float
    tr: float
    ti: float | None = None
    number: int = 1


FLAIR = SeriesSpec("AX FLAIR 3D", te=120.0, tr=9000.0, ti=2500.0, number=3)
T1 = SeriesSpec("T1 MPRAGE SAG", te=2.3, tr=2300.0, ti=900.0, number=4)
T2 = SeriesSpec("AX T2 TSE", te=95.0, tr=6000.0, number=5)


def _ds(value: float) -> DSfloat:
    """A decimal string within DICOM's 16 characters, as precise as fits."""
    return DSfloat(float(value), auto_format=True)


def _lps(vector: np.ndarray) -> np.ndarray:
    return vector * np.array([-1.0, -1.0, 1.0])


def write_series(
    image: nib.Nifti1Image,
    folder: Path,
    spec: SeriesSpec,
    *,
    study_uid: str,
    slope: float = 1.0,
    intercept: float = 0.0,
    suffix: str = ".dcm",
) -> list[Path]:
    """One file per slice along the image's third axis; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    affine = np.asarray(image.affine, dtype=np.float64)
    data = np.asarray(image.get_fdata(dtype=np.float32))
    col0, col1 = affine[:3, 0], affine[:3, 1]
    row_dir = _lps(col0 / np.linalg.norm(col0))
    col_dir = _lps(col1 / np.linalg.norm(col1))
    series_uid = generate_uid()
    frame_uid = generate_uid()
    paths = []
    for k in range(data.shape[2]):
        position = _lps((affine @ np.array([0.0, 0.0, k, 1.0]))[:3])
        stored = np.round((data[:, :, k].T - intercept) / slope)
        pixels = np.clip(stored, -32768, 32767).astype(np.int16)
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "MR"
        for keyword, value in IDENTIFIERS.items():
            setattr(ds, keyword, value)
        ds.SeriesDescription = spec.description
        ds.ProtocolName = spec.description
        ds.SeriesNumber = spec.number
        ds.InstanceNumber = k + 1
        ds.EchoTime = spec.te
        ds.RepetitionTime = spec.tr
        if spec.ti is not None:
            ds.InversionTime = spec.ti
            ds.ScanningSequence = "IR"
        else:
            ds.ScanningSequence = "SE"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.PixelSpacing = [_ds(np.linalg.norm(col1)), _ds(np.linalg.norm(col0))]
        ds.SliceThickness = _ds(np.linalg.norm(affine[:3, 2]))
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = _ds(slope)
        ds.RescaleIntercept = _ds(intercept)
        # A name inside a nested sequence, and a private block.
        request = Dataset()
        request.RequestedProcedureID = "RP-8812-4417"
        person = Dataset()
        person.PatientName = NESTED_NAME
        request.ReferencedPatientSequence = Sequence([person])
        ds.RequestAttributesSequence = Sequence([request])
        block = ds.private_block(0x0019, "ACME MR HEADER", create=True)
        block.add_new(0x10, "LO", PRIVATE_VALUE)
        ds.PixelData = pixels.tobytes()
        path = folder / f"IM{k:04d}{suffix}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def planted_values(study_uid: str) -> list[str]:
    """Every identifying value a generated study carries (UIDs of its series read back)."""
    return [*IDENTIFIERS.values(), NESTED_NAME, PRIVATE_VALUE, "RP-8812-4417", study_uid]
