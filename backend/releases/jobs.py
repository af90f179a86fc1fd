"""Celery job of releases: build one (``service.run``: claimed first, so a second message for
the same release does nothing; progress and ETA written to its row as it goes)."""

from typing import Any

from backend.core.config import get_settings
from backend.releases import BUILD_RELEASE, service
from backend.worker import celery_app, job_resources


def build_release(release_id: int) -> dict[str, Any]:
    """Build a recorded release; what became of it."""
    engine, storage, _relay = job_resources()
    settings = get_settings()
    built = service.run(
        engine, storage, release_id, url=settings.public_url, secret=settings.secret_key
    )
    if built is None:
        return {"release": release_id, "status": "not built here (taken or no longer building)"}
    return {"release": built.name, "status": built.status.value, "files": built.file_count}


build_release_job = celery_app.task(name=BUILD_RELEASE)(build_release)
