"""A real ``mscrowd serve`` process on a free port, for end-to-end and browser tests."""

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

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
