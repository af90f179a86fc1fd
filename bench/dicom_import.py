"""DICOM import time and memory: a study of 3 series x 200 slices (256 x 256, 16-bit; FLAIR,
T1 and T2 of a synthetic head), written as one classic MR file per slice with identifying
attributes, imported by ``mscrowd import`` in a fresh process on the embedded default. The
anchor, in the same run: the same three volumes imported as NIfTI files (the same pipeline
without the DICOM reading). Prints wall time and the import process's peak memory.

    .venv/bin/python bench/dicom_import.py [--slices 200] [--size 256]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.backend.imaging.dicomgen import FLAIR, T1, T2, write_series  # noqa: E402

CLI = [sys.executable, "-m", "backend"]


def head(size: int, slices: int, contrast: float) -> np.ndarray:
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in (size, size, slices)), indexing="ij")
    brain = (x**2 + y**2 + (z * 0.8) ** 2) <= 0.3  # about 1.3 litres
    texture = 400 + contrast * np.sin(6 * x) * np.cos(5 * y) + 30 * z
    return np.where(brain, texture, 0).astype(np.float32)


# Runs the CLI in a process that prints its own peak RSS (kB) last, whatever the exit.
MEASURED = (
    "import resource, runpy, sys\n"
    "sys.argv = ['mscrowd', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('backend', run_name='__main__')\n"
    "except SystemExit as exit:\n    code = exit.code\nelse:\n    code = 0\n"
    "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command in its own process."""
    start = time.perf_counter()
    command = [sys.executable, "-c", MEASURED, *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    peak = next(line for line in done.stdout.splitlines() if line.startswith("PEAK"))
    return seconds, int(peak.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        affine = np.diag([0.9, 0.9, 1.0, 1.0])
        affine[:3, 3] = [-115, -115, -100]
        specs = ((FLAIR, 120.0), (T1, -90.0), (T2, 60.0))
        start = time.perf_counter()
        for n, (spec, contrast) in enumerate(specs):
            image = nib.Nifti1Image(head(options.size, options.slices, contrast), affine)
            write_series(image, root / "dicom" / f"s{n}", spec, study_uid="1.2.826.0.1.99.7")
            case = root / "nifti" / "case"
            case.mkdir(parents=True, exist_ok=True)
            nib.save(image, case / f"{('FLAIR', 'T1', 'T2')[n]}.nii.gz")
        written = time.perf_counter() - start
        files = sum(1 for _ in (root / "dicom").rglob("*.dcm"))
        print(f"wrote {files} DICOM files ({options.size}x{options.size}) in {written:.0f} s")
        results = {}
        for label, folder in (("NIfTI (anchor)", "nifti"), ("DICOM", "dicom")):
            env = {**os.environ, "MSCROWD_DATA_DIR": str(root / f"var-{folder}")}
            subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True)
            seconds, peak = run(["import", str(root / folder), "--project", "bench"], env)
            results[label] = seconds
            print(f"  {label:<16} import {seconds:6.1f} s   peak memory {peak:6.0f} MB")
        print(f"DICOM / NIfTI time: {results['DICOM'] / results['NIfTI (anchor)']:.2f}")


if __name__ == "__main__":
    main()
