"""Shared fixtures: real databases (PostgreSQL and SQLite), each test in its own empty schema.

PostgreSQL tests use ``MSCROWD_TEST_DATABASE_URL``. When the server does not answer they skip,
unless ``MSCROWD_REQUIRE_SERVICES=1`` (set by ``make test``), which turns the skip into a failure;
the same holds for Redis and for Chromium in the browser tests.
The outcome of every ``postgres`` test is tallied in ``var/test-backends.json`` for ``.ci/run``.
"""

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from backend.core.config import Settings, get_settings
from backend.core.db import create_db_engine
from backend.core.migrations import upgrade
from backend.core.storage import Storage

PG_URL = os.environ.get(
    "MSCROWD_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("MSCROWD_REQUIRE_SERVICES") == "1"
# Under pytest-xdist (``make test`` runs two workers) each worker has a Redis database of its
# own (15, 14, ...), so one worker's Celery processes never take the other's jobs.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_URL = os.environ.get("MSCROWD_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{15 - _WORKER}")
BACKEND_REPORT = Path(os.environ.get("MSCROWD_BACKEND_REPORT", "var/test-backends.json"))

PG_SKIP_MARK = "PostgreSQL server at"
_postgres_outcomes: Counter[str] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Tally each ``postgres`` test once: by its call, or by its setup when setup skipped or
    failed. Runs where the reports arrive: the one process, or xdist's controller."""
    if "postgres" not in report.keywords:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = report.outcome
        # A skip for another reason (e.g. the open MS data is absent) is not a missing server.
        if report.skipped and PG_SKIP_MARK not in str(report.longrepr):
            outcome = "skipped_other"
        _postgres_outcomes[outcome] += 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the tally to ``var/test-backends.json``, or add it to what is there with
    ``MSCROWD_BACKEND_REPORT_ADD=1`` (``make test``'s second pytest run); xdist's workers
    leave it to the controller."""
    if hasattr(session.config, "workerinput"):
        return
    BACKEND_REPORT.parent.mkdir(parents=True, exist_ok=True)
    found: Counter[str] = Counter()
    if os.environ.get("MSCROWD_BACKEND_REPORT_ADD") == "1" and BACKEND_REPORT.exists():
        found.update(json.loads(BACKEND_REPORT.read_text()).get("postgres", {}))
    found.update(_postgres_outcomes)
    BACKEND_REPORT.write_text(json.dumps({"postgres": dict(found)}) + "\n")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Engine]:
    """An engine on the test PostgreSQL database; skips (or fails) when it does not answer."""
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        message = (
            f"{PG_SKIP_MARK} {make_url(PG_URL).render_as_string(hide_password=True)} does not "
            f"answer ({exc.orig}); run scripts/ensure-services.sh or set MSCROWD_TEST_DATABASE_URL"
        )
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    yield engine
    engine.dispose()


@contextmanager
def fresh_schema(pg_server: Engine) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema (via search_path), dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    with pg_server.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with pg_server.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def pg_url(pg_server: Engine) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema, dropped after the test."""
    with fresh_schema(pg_server) as url:
        yield url


@pytest.fixture(scope="module")
def module_pg_url(pg_server: Engine) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema shared by a module's tests."""
    with fresh_schema(pg_server) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite file (the embedded default's dialect)."""
    return f"sqlite:///{tmp_path / 'mscrowd.sqlite'}"


@pytest.fixture(
    params=[pytest.param("postgresql", marks=pytest.mark.postgres), pytest.param("sqlite")]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each supported dialect."""
    fixture = "pg_url" if request.param == "postgresql" else "sqlite_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database of each dialect."""
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """Isolate ``MSCROWD_*`` settings: data under tmp_path, cache cleared before and after."""
    for name in list(os.environ):
        if name.startswith("MSCROWD_") and not name.startswith("MSCROWD_TEST"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MSCROWD_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def migrated_engine(db_engine: Engine) -> Engine:
    """An engine on a database of each dialect, migrated to head."""
    upgrade(db_engine)
    return db_engine


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    """Blob storage in a temporary folder."""
    return Storage((tmp_path / "storage").as_uri())


@pytest.fixture
def app_settings(settings_env: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Settings:
    """Settings for an app on the test database and the test storage folder. Scripted raters
    answer faster than any person: the submission limits are lifted here (their own tests
    set them)."""
    return Settings(
        database_url=db_url,
        storage_url=(tmp_path / "storage").as_uri(),
        submits_per_minute=1_000_000,
        submits_per_hour=1_000_000,
    )


def _open_ms_data() -> Path:
    # MSCROWD_OPEN_MS_DATA, else ../shared beside the checkout, else the workplace's shared folder.
    if "MSCROWD_OPEN_MS_DATA" in os.environ:
        return Path(os.environ["MSCROWD_OPEN_MS_DATA"])
    repo = Path(__file__).resolve().parents[1]
    for root in (repo.parent / "shared", Path("/work/shared")):
        if (root / "data" / "open_ms_data").is_dir():
            return root / "data" / "open_ms_data"
    return repo.parent / "shared" / "data" / "open_ms_data"


OPEN_MS_DATA = _open_ms_data()


@pytest.fixture(scope="session")
def open_ms_data() -> Path:
    """The open MS data folder (Lesjak et al., CC-BY); skips when it is not on this machine."""
    if not (OPEN_MS_DATA / "cross_sectional_mni").is_dir():
        pytest.skip(
            f"open MS data not found at {OPEN_MS_DATA} (set MSCROWD_OPEN_MS_DATA to its folder); "
            "these tests need the real scans"
        )
    return OPEN_MS_DATA


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a Redis database for broker tests; skips (or fails, like PostgreSQL) when down."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_URL} does not answer ({exc}); run scripts/ensure-services.sh"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()
    return REDIS_URL
