"""A release asked for through the API is built by a real worker process (the embedded
broker, as ``make run``) into S3-compatible storage (moto's server), its progress readable
while it builds, and served by the API from there: a second process or machine serves what
the worker wrote, and nothing goes to the local disk. A second message for the same release
builds nothing."""

import hashlib
import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from backend.auth import service as auth
from backend.auth.models import TokenScope, UserRole
from backend.core.config import Settings
from backend.core.db import create_db_engine, transaction
from backend.core.migrations import upgrade
from backend.core.outbox import celery_sender
from backend.core.storage import Storage
from backend.main import create_app
from backend.releases import BUILD_RELEASE, service
from backend.releases.models import Release, ReleaseStatus
from tests.backend.releases.cases import labelled_project
from tests.backend.test_worker import _worker
from tests.factories import create_token

BUCKET = "mscrowd-releases"


@pytest.fixture
def s3_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bucket on moto's S3 server on loopback; the AWS_* settings that reach it are in the
    environment, which the worker process inherits."""
    server_module = pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
    pytest.importorskip("s3fs", reason="s3fs is the s3 extra")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    try:
        yield f"s3://{BUCKET}/store"
    finally:
        server.stop()


def test_the_worker_builds_a_requested_release_into_s3(tmp_path: Path, s3_url: str) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'mscrowd.sqlite'}",
        data_dir=tmp_path / "var",
        storage_url=s3_url,
    )
    engine = create_db_engine(settings.database_url)
    upgrade(engine)
    storage = Storage(settings.storage_url)
    crowd = labelled_project(engine, storage, per_volunteer=36)
    with transaction(engine) as session:
        user = auth.create_user(
            session=session, email="eng@example.org", password="x" * 12, role=UserRole.engineer
        )
        session.flush()
        writer = {"Authorization": f"Bearer {create_token(session, user)}"}
        reader = {
            "Authorization": f"Bearer {create_token(session, user, scopes=[TokenScope.releases])}"
        }  # noqa: E501
    env = {
        "MSCROWD_DATABASE_URL": settings.database_url,
        "MSCROWD_DATA_DIR": str(settings.data_dir),
        "MSCROWD_STORAGE_URL": settings.storage_url,
    }
    try:
        with _worker(**env), TestClient(create_app(settings, engine=engine)) as client:
            asked = client.post(
                "/api/releases", json={"project": crowd.project, "name": "w1"}, headers=writer
            )
            assert asked.status_code == 202, asked.text
            assert asked.json()["status"] == "building"
            # A reader token cannot ask for one (POST needs the manage scope).
            refused = client.post("/api/releases", json={"project": crowd.project}, headers=reader)
            assert refused.status_code == 403
            deadline = time.monotonic() + 120
            while True:
                state = client.get("/api/releases/w1", headers=reader).json()
                if state["status"] != "building":
                    break
                assert 0 <= state["progress"] <= 100
                assert time.monotonic() < deadline, state
                time.sleep(0.3)
            assert state["status"] == "ready", state
            assert state["stats"]["cases"] == 3
            # Served from the bucket: the archive's files match the recorded checksums.
            files = {
                f["path"]: f["sha256"]
                for f in client.get("/api/releases/w1/files", headers=reader).json()
            }
            got = client.get("/api/releases/w1/archive.tar", headers=reader)
            assert got.status_code == 200
            with tarfile.open(fileobj=io.BytesIO(got.content)) as archive:
                read = {
                    m.name.removeprefix("w1/"): hashlib.sha256(
                        archive.extractfile(m).read()  # type: ignore[union-attr]
                    ).hexdigest()
                    for m in archive.getmembers()
                }
            assert read == files
            assert storage.list("releases/w1") == sorted(f"releases/w1/{p}" for p in files)
            assert not list(tmp_path.rglob("*.nii.gz"))  # nothing written to the local disk
            # The same job sent again (a redelivered message) builds nothing.
            with Session(engine) as session:
                release = session.exec(select(Release).where(Release.name == "w1")).one()
            celery_sender(settings)(BUILD_RELEASE, [release.id])
            time.sleep(1.0)
            assert service.run(engine, storage, release.id or 0) is None
            with Session(engine) as session:
                again = session.exec(select(Release).where(Release.name == "w1")).one()
                assert again.status is ReleaseStatus.ready
                assert again.finished_at == release.finished_at
    finally:
        engine.dispose()
