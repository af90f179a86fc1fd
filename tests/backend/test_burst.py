"""Bursts of volunteers against a live server on PostgreSQL: no stall, nothing lost.

The first case reproduces the stall of issue 18: with a small connection pool, many more
concurrent requests than connections used to leave every thread waiting for a connection and
every connection waiting for a thread (0 submissions, 500s and timeouts). It is also the suite's
smoke run of ``bench/load.py``: it fails on a stall or an integrity error, never on a speed.
"""

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from backend.core.db import create_db_engine
from backend.core.storage import Storage
from bench.load import integrity, run_load
from bench.load_crowd import Crowd
from bench.load_seed import seed
from tests.live import CLI, cli_env, live_server

# Timed or loading both cores: run alone (make test's second pytest run), not beside
# another xdist worker.
pytestmark = pytest.mark.solo


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("volunteers", "server_env", "realistic"),
    [
        (120, {"MSCROWD_DB_POOL_SIZE": "2", "MSCROWD_DB_MAX_OVERFLOW": "0"}, False),
        (20, {}, True),
    ],
    ids=["burst-on-a-small-pool", "smoke-of-a-realistic-crowd"],
)
def test_a_burst_of_volunteers_never_stalls_and_loses_nothing(
    pg_url: str, tmp_path: Path, volunteers: int, server_env: dict[str, str], realistic: bool
) -> None:
    """The realistic crowd (``bench/load.py``'s default): gold on the project's schedule,
    every image the studio loads (its sprite) and the gold feedback overlays, honest painters
    and spammers."""
    data_dir = tmp_path / "var"
    storage = Storage((tmp_path / "storage").as_uri())
    env = cli_env(
        data_dir, MSCROWD_DATABASE_URL=pg_url, MSCROWD_STORAGE_URL=storage.url, **server_env
    )
    subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    engine = create_db_engine(pg_url)
    tokens = seed(
        engine, storage, tasks=150 if realistic else 600, volunteers=volunteers, realistic=realistic
    )
    crowd = Crowd.realistic(spammers=0.2) if realistic else Crowd()
    with live_server(env, "--no-worker") as (base, server):
        report = asyncio.run(run_load(base, tokens, seconds=4 if realistic else 6, crowd=crowd))
        assert server.poll() is None
    # Every volunteer got work done: nobody waited out a stall.
    assert report.errors == {}, report.errors
    assert report.server_errors() == 0, report.statuses
    assert len(report.acknowledged) >= volunteers
    assert integrity(engine, storage, report) == []
    if realistic:
        # Each lease loaded its sprite; gold answers were scored, their overlays inline (no
        # feedback request); honest painters score well on gold and spammers do not.
        assert report.statuses["image 200"] == report.statuses["next 200"]
        assert report.gold_dice["honest"]
        assert not report.samples["feedback"]
        assert min(report.gold_dice["honest"]) > 0.5
        assert max(report.gold_dice["spammer"], default=0.0) < 0.2
        assert not report.suspended - report.spammers
    engine.dispose()


@pytest.mark.postgres
def test_a_server_killed_under_load_leaves_storage_that_the_sweep_makes_consistent(
    pg_url: str, tmp_path: Path
) -> None:
    import signal
    import threading
    from datetime import timedelta

    from sqlmodel import Session

    from backend.annotations.sweep import check

    storage = Storage((tmp_path / "storage").as_uri())
    env = cli_env(tmp_path / "var", MSCROWD_DATABASE_URL=pg_url, MSCROWD_STORAGE_URL=storage.url)
    subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    engine = create_db_engine(pg_url)
    tokens = seed(engine, storage, tasks=300, volunteers=30)
    with live_server(env, "--no-worker") as (base, server):
        load = threading.Thread(target=lambda: asyncio.run(run_load(base, tokens, seconds=4)))
        load.start()
        time.sleep(2)
        server.send_signal(signal.SIGKILL)  # no shutdown, no rollback clean-up
        load.join(timeout=120)
    with Session(engine) as session:
        swept = check(session=session, storage=storage, fix=True, grace=timedelta(0))
        after = check(session=session, storage=storage, grace=timedelta(0))
    assert after.consistent, (swept, after)
    engine.dispose()
