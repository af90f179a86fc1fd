"""Architecture rules that are easy to break unnoticed: the backend never imports torch (it
sends ML work to Celery by name), and the ML package's pure modules need no torch either."""

import subprocess
import sys

BACKEND = [
    "backend.main",
    "backend.cli",
    "backend.worker",
    "backend.fusion.jobs",
    "backend.rounds.jobs",
]
PURE_ML = ["ml.uncertainty", "ml.selection", "ml.config"]


def _imports_torch(modules: list[str]) -> bool:
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip() == "True"


def test_every_entry_point_sees_every_table() -> None:
    """A fresh ``mscrowd`` process must know every table a foreign key names (it did not:
    ``mscrowd import`` failed on tasks.gold_version_id until the CLI loaded every model)."""
    for entry in (*BACKEND, "ml.jobs"):
        code = (
            f"import {entry}\nfrom sqlmodel import SQLModel\n"
            "for table in SQLModel.metadata.sorted_tables:\n"
            "    for key in table.foreign_keys: key.column\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{entry}: {done.stderr[-500:]}"


def test_the_backend_and_the_pure_ml_modules_never_import_torch() -> None:
    assert not _imports_torch(BACKEND)
    assert not _imports_torch(PURE_ML)
    assert _imports_torch(["ml.models"])  # the check itself sees an import of torch
