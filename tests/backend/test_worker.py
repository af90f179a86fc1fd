"""The Celery app: real worker processes on Redis (production) and on the embedded broker."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from backend.core.config import Settings
from backend.worker import QUEUES, create_celery
from tests.live import stop


@contextmanager
def _worker(**env_values: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``mscrowd worker`` process on the ``default`` queue, stopped afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSCROWD_")}
    env.update(env_values)
    process = subprocess.Popen(
        [sys.executable, "-m", "backend", "worker", "--queues", "default", "--loglevel", "WARNING"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        stop(process)


def _ping(settings: Settings, process: subprocess.Popen[bytes]) -> None:
    result = create_celery(settings).send_task("system.ping")
    try:
        assert result.get(timeout=60) == "pong"
    except Exception:
        process.terminate()
        output = process.stdout.read().decode() if process.stdout else ""
        raise AssertionError(f"the worker did not answer; its output:\n{output}") from None


def test_queues_and_routes() -> None:
    app = create_celery(Settings(broker_url="redis://127.0.0.1:6379/15"))
    assert [q.name for q in app.conf.task_queues] == list(QUEUES)
    assert app.conf.task_default_queue == "default"
    # ML jobs are sent by name and land on the GPU queue; the backend never imports torch.
    assert app.amqp.router.route({}, "ml.train_round")["queue"].name == "gpu"
    assert app.amqp.router.route({}, "system.ping")["queue"].name == "default"
    assert app.conf.result_backend == "redis://127.0.0.1:6379/15"


def test_round_trip_through_redis(redis_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with _worker(MSCROWD_BROKER_URL=redis_url, MSCROWD_DATA_DIR=str(data_dir)) as process:
        _ping(Settings(broker_url=redis_url, data_dir=data_dir), process)


@pytest.mark.usefixtures("settings_env")
def test_round_trip_through_the_embedded_broker(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    assert settings.broker_is_embedded
    assert settings.embedded_worker
    with _worker(MSCROWD_DATA_DIR=str(settings.data_dir)) as process:
        _ping(settings, process)
