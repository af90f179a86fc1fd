"""The ``mscrowd`` command: migrate, serve (with its worker), import, demo, users, worker."""

import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from backend.auth.models import User, UserRole
from backend.cli import app
from backend.core.config import Settings, get_settings
from backend.core.db import create_db_engine
from backend.core.migrations import current_revision, head_revision
from backend.imaging.models import Case, Slice
from backend.tasks.models import Task, TaskKind, TaskState
from backend.worker import celery_app, create_celery
from tests.live import CLI, cli_env, live_server

runner = CliRunner()


def test_serve_refuses_unmigrated_database(settings_env: pytest.MonkeyPatch, db_url: str) -> None:
    settings_env.setenv("MSCROWD_DATABASE_URL", db_url)
    result = runner.invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 1
    assert "has never been migrated" in result.output
    assert "Run `mscrowd migrate` first" in result.output


def test_migrate_brings_database_to_head(settings_env: pytest.MonkeyPatch, db_url: str) -> None:
    settings_env.setenv("MSCROWD_DATABASE_URL", db_url)
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert f"at revision {head_revision()}" in result.output
    engine = create_db_engine(db_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
    # Migrating again is a no-op, not an error.
    assert runner.invoke(app, ["migrate"]).exit_code == 0


def test_serve_runs_a_real_server_on_the_embedded_default(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "var")
    subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    with live_server(env) as (base, server):
        response = httpx.get(f"{base}/api/health", timeout=5)
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        assert (tmp_path / "var" / "mscrowd.sqlite").exists()
        # `serve` on the embedded default also runs a worker: a job sent now gets done.
        settings = Settings(data_dir=tmp_path / "var", database_url="sqlite://", broker_url="")
        assert create_celery(settings).send_task("system.ping").get(timeout=60) == "pong"
        (worker,) = _children(server.pid)
    # Stopping the server (SIGTERM, as docker or a service manager does) stops its worker too.
    deadline = time.monotonic() + 30
    while Path(f"/proc/{worker}").exists() and _state(worker) != "Z":
        assert time.monotonic() < deadline, "the embedded worker outlived the server"
        time.sleep(0.2)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def _children(pid: int) -> list[int]:
    """Child process ids of ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_import_both_open_ms_cases(
    settings_env: pytest.MonkeyPatch, db_url: str, open_ms_data: Path, tmp_path: Path
) -> None:
    settings_env.setenv("MSCROWD_DATABASE_URL", db_url)
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    folder = str(open_ms_data / "cross_sectional_mni")
    result = runner.invoke(app, ["import", folder, "--project", "real"])
    assert result.exit_code == 0, result.output
    assert "+ patient07: imported" in result.output
    assert "+ patient19: imported" in result.output
    again = runner.invoke(app, ["import", folder, "--project", "real"])
    assert again.exit_code == 0
    assert again.output.count("skipped") == 2
    engine = create_db_engine(db_url)
    with Session(engine) as session:
        cases = session.exec(select(Case)).all()
        assert len(cases) == 2
        assert {c.reference_voxels is not None and c.reference_voxels > 0 for c in cases} == {True}
    engine.dispose()
    # Files land in the configured storage, under the data folder by default.
    assert len(list((tmp_path / "var" / "storage" / "cases").iterdir())) == 2


def test_import_reports_bad_input_clearly(settings_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    missing = runner.invoke(app, ["import", str(tmp_path / "nope"), "--project", "x"])
    assert missing.exit_code == 1
    assert "does not exist" in missing.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["import", str(empty), "--project", "x"])
    assert result.exit_code == 1
    assert "No cases found" in result.output
    broken = tmp_path / "batch" / "case1"
    broken.mkdir(parents=True)
    (broken / "FLAIR.nii.gz").write_bytes(b"not a nifti")
    result = runner.invoke(app, ["import", str(tmp_path / "batch"), "--project", "x"])
    assert result.exit_code == 1
    assert "! case1: failed" in result.output
    assert "1 of 1 case(s) failed" in result.output


def test_demo_builds_cases_accounts_and_tasks(settings_env: pytest.MonkeyPatch) -> None:
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    result = runner.invoke(app, ["demo", "--cases", "1", "--seed", "3", "--no-tutorial"])
    assert result.exit_code == 0, result.output
    assert "+ synthetic-3: imported" in result.output
    assert "admin@demo.mscrowd.org (created)" in result.output
    again = runner.invoke(app, ["demo", "--cases", "1", "--seed", "3", "--no-tutorial"])
    assert again.exit_code == 0
    assert "= synthetic-3: skipped" in again.output
    assert "(exists)" in again.output
    engine = create_db_engine(get_settings().database_url)
    with Session(engine) as session:
        roles = {u.email: u.role for u in session.exec(select(User)).all()}
        assert roles == {
            "admin@demo.mscrowd.org": UserRole.admin,
            "expert@demo.mscrowd.org": UserRole.expert,
        }
        tasks = session.exec(select(Task)).all()
        assert len(tasks) > 100
        # A stratified gold pool of a quarter of the case's 141 slices (quality.gold_pool);
        # their crowd tasks are retired.
        gold = [t for t in tasks if t.kind is TaskKind.gold]
        assert len(gold) == 35  # one case
        assert {t.state for t in gold} == {TaskState.open}
        retired = {t.slice_id for t in tasks if t.state is TaskState.retired}
        assert retired == {t.slice_id for t in gold}
        slices = session.exec(select(Slice)).all()
        assert sum(s.reference_pixels or 0 for s in slices) > 0
    engine.dispose()


def test_users_create(settings_env: pytest.MonkeyPatch) -> None:
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    args = [
        "users",
        "create",
        "Boss@Example.org",
        "--role",
        "admin",
        "--password",
        "a long password",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Created admin boss@example.org" in result.output
    duplicate = runner.invoke(app, args)
    assert duplicate.exit_code == 1
    assert "already exists" in duplicate.output
    weak = runner.invoke(app, ["users", "create", "x@example.org", "--password", "short"])
    assert weak.exit_code == 1
    assert "password" in weak.output


def test_users_unlock_and_set_password(settings_env: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from backend.main import create_app

    assert runner.invoke(app, ["migrate"]).exit_code == 0
    create = ["users", "create", "locked@example.org", "--password", "the old password"]
    assert runner.invoke(app, create).exit_code == 0
    wrong = {"email": "locked@example.org", "password": "a wrong guess"}
    right = {"email": "locked@example.org", "password": "the old password"}
    with TestClient(create_app()) as client:
        answers = [client.post("/api/auth/login", json=wrong).status_code for _ in range(8)]
        assert answers[-1] == 429
        assert client.post("/api/auth/login", json=right).status_code == 429
        result = runner.invoke(app, ["users", "unlock", "LOCKED@example.org"])
        assert result.exit_code == 0, result.output
        assert "Unlocked locked@example.org" in result.output
        signed_in = client.post("/api/auth/login", json=right)
        assert signed_in.status_code == 200
        client.headers["X-CSRF-Token"] = signed_in.json()["csrf_token"]
        assert client.get("/api/auth/me").status_code == 200

        new = ["users", "set-password", "locked@example.org", "--password", "a brand new one"]
        result = runner.invoke(app, new)
        assert result.exit_code == 0, result.output
        assert "1 session(s) and token(s) ended" in result.output
        # The old session is over, the old password is gone, the new one works.
        assert client.get("/api/auth/me").status_code == 401
        assert client.post("/api/auth/login", json=right).status_code == 401
        fresh = {"email": "locked@example.org", "password": "a brand new one"}
        assert client.post("/api/auth/login", json=fresh).status_code == 200
    short = runner.invoke(app, ["users", "set-password", "locked@example.org", "--password", "x"])
    assert short.exit_code == 1
    assert "at least 10 characters" in short.output
    unknown = runner.invoke(app, ["users", "unlock", "nobody@example.org"])
    assert unknown.exit_code == 1
    assert "No account" in unknown.output


def test_worker_refuses_unknown_queues(settings_env: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["worker", "--queues", "default,cpu"])
    assert result.exit_code == 1
    assert "unknown queue(s) cpu" in result.output


# The torch.cuda functions that initialise CUDA in the calling process (``is_available`` calls
# cudaGetDeviceCount, which initialises the driver): after any of them a forked child cannot
# use CUDA ("Cannot re-initialize CUDA in forked subprocess").
CUDA_INITIALISERS = ("init", "_lazy_init", "is_available", "current_device", "set_device")


def _fake_torch(monkeypatch: pytest.MonkeyPatch, devices: int) -> list[str]:
    """Put a ``torch`` whose ``cuda`` sees ``devices`` GPUs in sys.modules; the names of the
    ``torch.cuda`` functions called, in order."""
    calls: list[str] = []
    torch, cuda = ModuleType("torch"), ModuleType("torch.cuda")

    def recorder(name: str, answer: object) -> object:
        def record(*args: object, **kwargs: object) -> object:
            calls.append(name)
            return answer

        return record

    for name in CUDA_INITIALISERS:
        setattr(cuda, name, recorder(name, devices > 0 if name == "is_available" else None))
    cuda.device_count = recorder("device_count", devices)  # type: ignore[attr-defined]
    torch.cuda = cuda  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch.cuda", cuda)
    return calls


def _start_worker(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> tuple[Result, list[str]]:
    """``mscrowd worker ARGS`` on Redis, up to the Celery command line it would start with
    (returned; empty when it refused to start). No worker runs."""
    monkeypatch.setenv("MSCROWD_BROKER_URL", "redis://127.0.0.1:6379/15")
    monkeypatch.setenv("MSCROWD_ML_DEVICE", "auto")  # the command sets it; undone afterwards
    monkeypatch.setitem(celery_app.conf, "include", list(celery_app.conf.include))
    started: list[list[str]] = []
    monkeypatch.setattr(celery_app, "worker_main", started.append)
    result = runner.invoke(app, ["worker", *args])
    return result, started[0] if started else []


def test_the_cuda_worker_never_initialises_cuda_before_it_starts(
    settings_env: pytest.MonkeyPatch,
) -> None:
    """The GPU worker of docker-compose.yml counts GPUs through NVML (``device_count``) and
    initialises nothing in CUDA; it runs its jobs in its own process (``--pool solo``)."""
    calls = _fake_torch(settings_env, devices=1)
    compose = ["--queues", "gpu", "--device", "cuda", "--concurrency", "1"]
    result, argv = _start_worker(settings_env, compose)
    assert result.exit_code == 0, result.output
    assert calls == ["device_count"]
    assert "--queues=gpu" in argv
    assert "--pool=solo" in argv
    assert celery_app.conf.include[-1] == "ml.jobs"


def test_the_cuda_worker_refuses_to_start_without_cuda(settings_env: pytest.MonkeyPatch) -> None:
    calls = _fake_torch(settings_env, devices=0)
    result, argv = _start_worker(settings_env, ["--queues", "gpu", "--device", "cuda"])
    assert result.exit_code == 1
    assert "--device cuda: no CUDA device here; use cpu or auto" in result.output
    assert argv == []
    assert calls == ["device_count"]


@pytest.mark.parametrize(
    ("queues", "device", "pool"),
    [
        ("gpu", "cpu", "--pool=solo"),
        ("gpu", "auto", "--pool=solo"),
        ("default,gpu", "auto", "--pool=solo"),
        ("default", "auto", None),  # backend jobs only: Celery's prefork pool
    ],
)
def test_a_worker_on_queue_gpu_never_forks_its_jobs(
    settings_env: pytest.MonkeyPatch, queues: str, device: str, pool: str | None
) -> None:
    calls = _fake_torch(settings_env, devices=1)
    result, argv = _start_worker(settings_env, ["--queues", queues, "--device", device])
    assert result.exit_code == 0, result.output
    assert [a for a in argv if a.startswith("--pool")] == ([pool] if pool else [])
    assert calls == []  # only --device cuda asks about GPUs before the jobs run


def test_a_worker_on_queue_gpu_refuses_more_than_one_process(
    settings_env: pytest.MonkeyPatch,
) -> None:
    result, argv = _start_worker(settings_env, ["--queues", "default,gpu", "--concurrency", "2"])
    assert result.exit_code == 1
    assert "a worker on queue gpu runs one job at a time" in result.output
    assert argv == []


# What Celery's main process does before it forks a pool: import the jobs modules it runs.
# torch.cuda's initialisers are replaced first by recorders, so any call shows.
_IMPORT_JOBS = f"""
import json
import torch

calls = []
for name in {CUDA_INITIALISERS!r} + ("device_count",):
    original = getattr(torch.cuda, name)
    def record(*args, _name=name, _original=original, **kwargs):
        calls.append(_name)
        return _original(*args, **kwargs)
    setattr(torch.cuda, name, record)

from backend.worker import BACKEND_JOBS, ML_JOBS, celery_app

celery_app.conf.include = [*BACKEND_JOBS, ML_JOBS]
celery_app.loader.import_default_modules()
import ml.jobs  # noqa: F401  (imported above; fails here if it was not)
print(json.dumps(calls))
"""


def test_importing_the_ml_jobs_touches_no_cuda(tmp_path: Path) -> None:
    """Nothing in ``ml`` (nor MONAI, as ``ml`` imports it) calls into CUDA at import time."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_JOBS],
        env=cli_env(tmp_path / "var"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_the_ml_commands_point_to_mscrowd_ml() -> None:
    """``train`` and ``predict`` moved to ``mscrowd-ml`` (the backend never imports ``ml``);
    ``mscrowd`` says so instead of "no such command", whatever options follow."""
    for command in (["train", "--project", "x", "--config", "tiny"], ["predict", "case", "--help"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1
        assert f"is now 'mscrowd-ml {command[0]}'" in result.output
    assert "lesion segmenter" not in runner.invoke(app, ["--help"]).output


def test_import_refuses_a_bad_project_name(
    settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    (tmp_path / "c" / "case1").mkdir(parents=True)
    (tmp_path / "c" / "case1" / "FLAIR.nii").write_bytes(b"")
    result = runner.invoke(app, ["import", str(tmp_path / "c"), "--project", "has space"])
    assert result.exit_code == 1
    assert "Invalid project settings (name:" in result.output


@pytest.mark.postgres
def test_serve_refuses_more_workers_than_connections(
    settings_env: pytest.MonkeyPatch, pg_url: str
) -> None:
    settings_env.setenv("MSCROWD_DATABASE_URL", pg_url)
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    result = runner.invoke(app, ["serve", "--workers", "50", "--no-worker"])
    assert result.exit_code == 1
    assert "max_connections" in result.output
