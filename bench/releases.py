"""Release build time, download throughput and the server's memory while it streams.

A project of ``--cases`` synthetic cases (``imaging.synthetic``, the demo's generator: 1 mm,
157 x 193 x 161, three contrasts) is imported on the embedded default (SQLite, local storage,
as ``make run``), three scripted volunteers label ``--share`` of its slices with the reference
mask, and the complete tasks are fused, as the worker does. Then, each beside its anchor
measured in the same run:

- ``mscrowd release create`` in its own process: wall time and peak RSS; anchor: copying the
  case files the release is made from (read from storage, written back), the I/O floor;
- the release downloaded from ``mscrowd serve`` as one tar (``archive.tar``) and file by file:
  MB/s; anchor: reading the same files straight from the storage folder;
- the server's RSS (``/proc/PID/status``, sampled every 50 ms) while it streams a release of
  ``--big-mb`` MB of incompressible files: before, peak, growth.

    .venv/bin/python bench/releases.py [--cases 20] [--share 0.3] [--big-mb 600]
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlmodel import Session, select  # noqa: E402

from backend.auth import service as auth  # noqa: E402
from backend.auth import tokens  # noqa: E402
from backend.auth.models import CredentialKind, TokenScope, UserRole  # noqa: E402
from backend.core.db import create_db_engine, transaction  # noqa: E402
from backend.core.storage import Storage  # noqa: E402
from backend.imaging.models import CONSENT_PRESETS  # noqa: E402
from backend.imaging.preprocess import CaseSource  # noqa: E402
from backend.imaging.service import CaseMeta, import_source  # noqa: E402
from backend.imaging.synthetic import synthesize_case  # noqa: E402
from backend.projects import service as projects  # noqa: E402
from backend.releases.models import Release, ReleaseFile, ReleaseStatus  # noqa: E402
from backend.tasks.models import Task  # noqa: E402
from bench.dicom_import import MEASURED  # noqa: E402
from tests import crowd  # noqa: E402
from tests.live import cli_env, live_server  # noqa: E402

CLI = [sys.executable, "-m", "backend"]


def _source(seed: int) -> CaseSource:
    return synthesize_case(seed, lesion_count=12).source


def seed_project(engine: object, storage: Storage, cases: int, share: float) -> dict[str, float]:
    """Import the cases, have three volunteers label ``share`` of the slices, fuse; timings."""
    times: dict[str, float] = {}
    start = time.perf_counter()
    with transaction(engine) as session:  # type: ignore[arg-type]
        project = projects.get_or_create(
            session=session, name="bench", min_labels=3, max_labels=3, gold_rate=0.0
        )
        project.repeat_rate, project.fast_ms = 0.0, 0
        session.add(project)
    with ProcessPoolExecutor(2) as pool:
        for source in pool.map(_source, range(1, cases + 1)):
            with transaction(engine) as session:  # type: ignore[arg-type]
                project = projects.get_or_create(session=session, name="bench")
                import_source(
                    session=session,
                    storage=storage,
                    project=project,
                    source=source,
                    meta=CaseMeta("synthetic (bench)", "CC0-1.0", CONSENT_PRESETS["open"]),
                )
    times["import"] = time.perf_counter() - start
    start = time.perf_counter()
    with Session(engine) as session:  # type: ignore[arg-type]
        total = len(session.exec(select(Task.id)).all())
    per_volunteer = int(total * share)
    with transaction(engine) as session:  # type: ignore[arg-type]
        users = [
            auth.create_user(session=session, email=f"v{n}@bench.org", password="bench-password-1")
            for n in range(3)
        ]
    crowd.label(engine, storage, users, per_volunteer=per_volunteer)  # type: ignore[arg-type]
    complete = crowd.fuse_complete(engine, storage)  # type: ignore[arg-type]
    times["label_and_fuse"] = time.perf_counter() - start
    times["labelled_tasks"] = complete
    return times


def measured(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, *args], env=env, capture_output=True, text=True,
        timeout=3600, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    peak = next(line for line in done.stdout.splitlines() if line.startswith("PEAK"))
    return seconds, int(peak.split()[1]) / 1024, done.stdout


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(pid: int, stop: threading.Event, found: list[float]) -> None:
    while not stop.is_set():
        found.append(rss_mb(pid))
        time.sleep(0.05)


def download(url: str, headers: dict[str, str]) -> tuple[int, float, str]:
    """Bytes, seconds and SHA-256 of one streamed download."""
    digest = hashlib.sha256()
    size = 0
    start = time.perf_counter()
    with httpx.stream("GET", url, headers=headers, timeout=600) as answer:
        answer.raise_for_status()
        for chunk in answer.iter_bytes(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, time.perf_counter() - start, digest.hexdigest()


def big_release(engine: object, storage: Storage, megabytes: int) -> str:
    """A ready release of incompressible files (100 MB each) for the memory check."""
    rng = np.random.default_rng(0)
    with transaction(engine) as session:  # type: ignore[arg-type]
        project = projects.get_or_create(session=session, name="bench")
        release = Release(
            project_id=project.id or 0, name="big", status=ReleaseStatus.ready, message="ready"
        )
        session.add(release)
        session.flush()
        left, n = megabytes, 0
        while left > 0:
            chunk = min(left, 100)
            data = rng.integers(0, 256, chunk << 20, dtype=np.uint8).tobytes()
            path = f"blobs/part{n:03d}.bin"
            storage.put(f"releases/big/{path}", data)
            session.add(
                ReleaseFile(
                    release_id=release.id or 0,
                    path=path,
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
            left, n = left - chunk, n + 1
        release.size_bytes = megabytes << 20
        release.file_count = n
        session.add(release)
    return "big"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--big-mb", type=int, default=600)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "var"
        env = cli_env(data_dir)
        subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True)
        engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
        storage = Storage((data_dir / "storage").as_uri())
        seeded = seed_project(engine, storage, options.cases, options.share)
        print(
            f"{options.cases} cases imported in {seeded['import']:.0f} s; "
            f"{seeded['labelled_tasks']:.0f} slices labelled by 3 volunteers and fused in "
            f"{seeded['label_and_fuse']:.0f} s"
        )
        # Anchor: copy the case files the release reads (storage to storage).
        keys = [k for k in storage.list("cases") if k.endswith(".nii.gz")]
        start = time.perf_counter()
        copied = 0
        for key in keys:
            data = storage.get(key)
            storage.put(f"copy/{key}", data)
            copied += len(data)
        anchor = time.perf_counter() - start
        storage.delete_prefix("copy")
        seconds, peak, _out = measured(
            ["release", "create", "--project", "bench", "--name", "bench-r1"], env
        )
        with Session(engine) as session:  # type: ignore[arg-type]
            built = session.exec(select(Release).where(Release.name == "bench-r1")).one()
            stats, size = built.stats, built.size_bytes
        print(
            f"release build: {seconds:.1f} s, peak RSS {peak:.0f} MB; {stats['cases']} cases, "
            f"{stats['labelled_slices']} labelled slices, {built.file_count} files, "
            f"{size / 1e6:.0f} MB  |  anchor: copying the {copied / 1e6:.0f} MB of case "
            f"volumes it reads {anchor:.1f} s"
        )
        big_release(engine, storage, options.big_mb)
        with transaction(engine) as session:  # type: ignore[arg-type]
            user = auth.create_user(
                session=session, email="eng@bench.org", password="bench-password-1",
                role=UserRole.engineer,
            )  # fmt: skip
            secret, _c = tokens.issue_credential(
                session=session, user=user, kind=CredentialKind.token, name="bench",
                lifetime=timedelta(days=1), scopes=(TokenScope.releases,),
            )  # fmt: skip
        headers = {"Authorization": f"Bearer {secret}"}
        folder = data_dir / "storage" / "releases" / "bench-r1"
        with live_server(env, "--no-worker", "--workers", "1") as (base, server):
            start = time.perf_counter()
            direct = sum(len(p.read_bytes()) for p in folder.rglob("*") if p.is_file())
            direct_s = time.perf_counter() - start
            got, tar_s, _sha = download(f"{base}/api/releases/bench-r1/archive.tar", headers)
            with Session(engine) as session:  # type: ignore[arg-type]
                files = session.exec(
                    select(ReleaseFile.path).join(Release).where(Release.name == "bench-r1")
                ).all()
            start = time.perf_counter()
            each = 0
            for path in files:
                each += download(f"{base}/api/releases/bench-r1/files/{path}", headers)[0]
            each_s = time.perf_counter() - start
            print(
                f"download: archive.tar {got / 1e6 / tar_s:.0f} MB/s ({got / 1e6:.0f} MB in "
                f"{tar_s:.1f} s), file by file {each / 1e6 / each_s:.0f} MB/s ({len(files)} "
                f"requests)  |  anchor: reading the files from disk "
                f"{direct / 1e6 / direct_s:.0f} MB/s"
            )
            before = rss_mb(server.pid)
            stop, found = threading.Event(), []
            watcher = threading.Thread(target=sample, args=(server.pid, stop, found))
            watcher.start()
            got, big_s, _sha = download(f"{base}/api/releases/big/archive.tar", headers)
            stop.set()
            watcher.join()
            print(
                f"streaming {got / 1e6:.0f} MB ({got / 1e6 / big_s:.0f} MB/s): server RSS "
                f"{before:.0f} MB before, peak {max(found):.0f} MB, growth "
                f"{max(found) - before:+.0f} MB"
            )
        engine.dispose()  # type: ignore[attr-defined]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
