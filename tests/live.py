"""A real ``mscrowd serve`` process on a free port, for end-to-end and browser tests."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlmodel import Session

from backend.core.db import create_db_engine
from backend.core.storage import Storage

CLI = [sys.executable, "-m", "backend"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli_env(data_dir: Path, **values: str) -> dict[str, str]:
    """This process's environment without MSCROWD_* settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSCROWD_")}
    env["MSCROWD_DATA_DIR"] = str(data_dir)
    env.update(values)
    return env


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ask a child process to stop; kill it if it has not within 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@contextmanager
def live_server(
    env: dict[str, str], *extra: str, timeout: float = 30
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``mscrowd serve`` until the block ends; yields its URL and process once it answers."""
    port = free_port()
    # Output goes to a file, not a pipe: nobody drains a pipe while the test runs, and a full
    # pipe blocks the server's access log, and with it the whole server.
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), *extra], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"{base}/api/health", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None:
                    log.seek(0)
                    raise AssertionError(f"server exited:\n{log.read().decode()}") from None
                assert time.monotonic() < deadline, f"server did not answer within {timeout} s"
                time.sleep(0.2)
        yield base, server
    finally:
        stop(server)
        log.close()


_MIGRATED: dict[str, Path] = {}


def _migrated_database(data_dir: Path) -> None:
    """``data_dir/mscrowd.sqlite`` migrated to head: ``mscrowd migrate`` (a subprocess, as a
    site's admin runs it) once per test session into a template, then a copy of the template
    per site (the migration took 2-3 s of each browser test's setup)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    template = _MIGRATED.get("template")
    if template is None:
        folder = Path(tempfile.mkdtemp(prefix="mscrowd-migrated-"))
        subprocess.run(
            [*CLI, "migrate"], env=cli_env(folder), check=True, capture_output=True, timeout=60
        )
        template = _MIGRATED["template"] = folder / "mscrowd.sqlite"
    shutil.copyfile(template, data_dir / "mscrowd.sqlite")


@contextmanager
def seeded_site(
    data_dir: Path, seed: Callable[[Session, Storage], None]
) -> Iterator[tuple[str, Path]]:
    """A migrated embedded-default database under ``data_dir``, filled by ``seed`` (committed),
    served by ``mscrowd serve --no-worker`` for the block; yields its URL and ``data_dir``."""
    env = cli_env(data_dir)
    _migrated_database(data_dir)
    engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
    with Session(engine) as session:
        seed(session, Storage((data_dir / "storage").as_uri()))
        session.commit()
    engine.dispose()
    with live_server(env, "--no-worker") as (base, _server):
        yield base, data_dir
