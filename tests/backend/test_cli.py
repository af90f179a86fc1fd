"""The ``mscrowd`` command: migrate, the refusal to serve unmigrated, and a real server."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from backend.cli import app
from backend.core.db import create_db_engine
from backend.core.migrations import current_revision, head_revision

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_runs_a_real_server_on_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSCROWD_")}
    env["MSCROWD_DATA_DIR"] = str(tmp_path / "var")
    cli = [sys.executable, "-m", "backend"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    port = _free_port()
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "server did not answer within 30 s"
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json()["database"]["revision"] == head_revision()
        assert (tmp_path / "var" / "mscrowd.sqlite").exists()
    finally:
        server.terminate()
        server.wait(timeout=10)
