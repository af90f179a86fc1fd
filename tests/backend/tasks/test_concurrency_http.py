"""Many volunteers at once against a real server on PostgreSQL, through the HTTP API."""

import subprocess
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from backend.annotations.models import Annotation
from backend.auth import consent
from backend.core.db import create_db_engine
from backend.core.storage import Storage
from backend.tasks.models import Task, TaskState
from tests.factories import HEIGHT, PASSWORD, WIDTH, create_tasks
from tests.live import CLI, cli_env, live_server

# Timed or loading both cores: run alone (make test's second pytest run), not beside
# another xdist worker.
pytestmark = pytest.mark.solo

TASKS, REQUIRED, CLIENTS = 10, 3, 6


def _volunteer(base: str, n: int, errors: list[BaseException]) -> None:
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            signed = client.post(
                "/api/auth/signup", json={"email": f"h{n}@example.org", "password": PASSWORD}
            )
            signed.raise_for_status()
            client.headers["X-CSRF-Token"] = signed.json()["csrf_token"]
            client.post("/api/auth/consent", json={"version": consent.VERSION}).raise_for_status()
            while True:
                leased = client.post("/api/tasks/next")
                if leased.status_code == 204:
                    return
                leased.raise_for_status()
                task = leased.json()
                body = {
                    "mask": {
                        "encoding": "rle",
                        "width": WIDTH,
                        "height": HEIGHT,
                        "counts": [n, 1, WIDTH * HEIGHT - n - 1],
                    }
                }
                key = {"Idempotency-Key": f"{n}-{task['id']}"}
                url = f"/api/tasks/{task['id']}/annotations"
                first = client.post(url, json=body, headers=key)
                assert first.status_code == 201, first.text
                retry = client.post(url, json=body, headers=key)  # a flaky network retries
                assert retry.status_code == 200, retry.text
    except BaseException as exc:
        errors.append(exc)


@pytest.mark.postgres
def test_many_volunteers_over_http_fill_every_task_exactly(pg_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    env = cli_env(data_dir, MSCROWD_DATABASE_URL=pg_url)
    subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    engine = create_db_engine(pg_url)
    with Session(engine) as session:
        create_tasks(
            session, Storage((data_dir / "storage").as_uri()), count=TASKS, required_labels=REQUIRED
        )
        session.commit()
    errors: list[BaseException] = []
    with live_server(env, "--no-worker") as (base, _server):
        threads = [
            threading.Thread(target=_volunteer, args=(base, n, errors)) for n in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive()
    assert errors == []
    with Session(engine) as session:
        per_task = Counter(session.exec(select(Annotation.task_id)).all())
        assert sorted(per_task.values()) == [REQUIRED] * TASKS
        assert set(session.exec(select(Task.state)).all()) == {TaskState.complete}
    engine.dispose()
