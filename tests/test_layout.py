"""Architecture rules that are easy to break unnoticed: the backend never imports ``ml`` or
torch (it sends ML work to Celery by name; ``ml`` may import the backend, never the reverse),
the ML package's pure modules need no torch either, and no module grows past the house limit
of 500 lines."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKEND = [
    "backend.main",
    "backend.cli",
    "backend.worker",
    "backend.fusion.jobs",
    "backend.rounds.jobs",
]
PURE_ML = ["ml.uncertainty", "ml.config"]
# STYLE.md: split a module past about 500 lines.
MAX_LINES = 500
# Over the limit for now, each with its reason; remove an entry once the module is split.
OVER_THE_LIMIT: set[str] = set()


def _imports_torch(modules: list[str]) -> bool:
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip() == "True"


def test_every_entry_point_sees_every_table() -> None:
    """A fresh ``mscrowd`` process must know every table a foreign key names (it did not:
    ``mscrowd import`` failed on tasks.gold_version_id until the CLI loaded every model)."""
    code = (
        "import sys\nimport importlib\nimportlib.import_module(sys.argv[1])\n"
        "from sqlmodel import SQLModel\n"
        "for table in SQLModel.metadata.sorted_tables:\n"
        "    for key in table.foreign_keys: key.column\n"
    )
    # One fresh process per entry point, all at once (each imports only its own modules).
    running = {
        entry: subprocess.Popen(
            [sys.executable, "-c", code, entry],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for entry in (*BACKEND, "ml.jobs", "ml.cli")
    }
    for entry, process in running.items():
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{entry}: {err[-500:]}"


def test_the_backend_and_the_pure_ml_modules_never_import_torch() -> None:
    assert not _imports_torch(BACKEND)
    assert not _imports_torch(PURE_ML)
    assert _imports_torch(["ml.models"])  # the check itself sees an import of torch


def _is_ml(name: str) -> bool:
    return name == "ml" or name.startswith("ml.")


def ml_imports(source: str, filename: str = "<source>") -> list[str]:
    """Every import of ``ml`` in ``source``, at any depth (inside functions too), as
    ``file:line: module``; ``importlib.import_module("ml...")`` and ``__import__`` count."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args:
            function = node.func
            called = function.attr if isinstance(function, ast.Attribute) else None
            called = function.id if isinstance(function, ast.Name) else called
            first = node.args[0]
            if called in ("import_module", "__import__") and isinstance(first, ast.Constant):
                names = [str(first.value)]
        found += [f"{filename}:{node.lineno}: {name}" for name in names if _is_ml(name)]
    return found


def test_no_backend_file_imports_ml() -> None:
    found = [
        hit
        for path in sorted((ROOT / "backend").rglob("*.py"))
        for hit in ml_imports(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert not found, "the backend imports ml:\n" + "\n".join(found)


def test_the_ml_import_scan_sees_every_form() -> None:
    """The scan itself finds imports at the top, in functions, and by name."""
    source = (
        "import ml.jobs\n"
        "from ml import jobs\n"
        "def later():\n"
        "    from ml.train import train\n"
        "    import importlib\n"
        "    importlib.import_module('ml.data')\n"
        "from mlflow import x\n"  # not ml
        "from .ml import y\n"  # relative: a module of the backend's own
        "from backend.rounds import selection\n"
    )
    assert [hit.split(": ")[1] for hit in ml_imports(source)] == [
        "ml.jobs",
        "ml",
        "ml.train",
        "ml.data",
    ]


def test_importing_every_backend_module_loads_no_ml_and_no_torch() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import backend\n"
        "names = [m.name for m in pkgutil.walk_packages(backend.__path__, 'backend.')]\n"
        "for name in names:\n"
        "    if name != 'backend.__main__':  # that one runs the command line\n"
        "        importlib.import_module(name)\n"
        "print(len(names))\n"
        "print(sorted(m for m in sys.modules if m == 'ml' or m.startswith('ml.')))\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    count, ml_loaded, torch_loaded = done.stdout.strip().splitlines()[-3:]
    assert int(count) > 50  # the walk found the backend's modules
    assert ml_loaded == "[]", f"importing the backend loaded {ml_loaded}"
    assert torch_loaded == "False"


def test_no_module_is_past_the_line_limit() -> None:
    """Python modules of the backend, the ML worker and the benchmarks (tests and the
    frontend's JavaScript are not held to it yet)."""
    long = {
        str(path.relative_to(ROOT)): lines
        for folder in ("backend", "ml", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
        and str(path.relative_to(ROOT)) not in OVER_THE_LIMIT
    }
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"
