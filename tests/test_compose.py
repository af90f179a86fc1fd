"""docker-compose.yml cannot run here (no Docker engine), so check its shape by parsing it."""

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_stack_has_database_cache_and_api() -> None:
    services = _compose()["services"]
    assert {"postgres", "redis", "api"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")


def test_api_waits_for_healthy_services_and_migrates_before_serving() -> None:
    compose = _compose()
    api = compose["services"]["api"]
    for dependency in ("postgres", "redis"):
        assert api["depends_on"][dependency]["condition"] == "service_healthy"
        assert "healthcheck" in compose["services"][dependency]
    command = " ".join(api["command"])
    assert command.index("mscrowd migrate") < command.index("mscrowd serve")
    assert (ROOT / api["build"] / "Dockerfile").exists()


def test_api_runs_in_production_mode_on_postgres_with_persistent_storage() -> None:
    compose = _compose()
    env = compose["services"]["api"]["environment"]
    assert env["MSCROWD_ENVIRONMENT"] == "production"
    assert env["MSCROWD_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["MSCROWD_DATABASE_URL"]
    # Secrets come from the operator's .env, never from defaults in the file.
    assert ":?" in env["MSCROWD_SECRET_KEY"]
    volume = compose["services"]["api"]["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]


def test_workers_share_storage_and_the_gpu_worker_reserves_a_gpu() -> None:
    compose = _compose()
    services = compose["services"]
    for name in ("api", "worker", "gpu-worker"):
        service = services[name]
        assert service["environment"]["MSCROWD_BROKER_URL"] == "redis://redis:6379/0"
        assert service["environment"]["MSCROWD_STORAGE_URL"] == "file:///data/storage"
        assert "storage:/data" in service["volumes"]
    assert "--no-worker" in " ".join(services["api"]["command"])
    # Several server processes, and the orphan sweep before them.
    assert "--workers" in " ".join(services["api"]["command"])
    assert "storage check --fix" in " ".join(services["api"]["command"])
    command = services["worker"]["command"]
    assert command[command.index("--queues") + 1] == "default"
    assert "--beat" in command  # one worker relays the job outbox
    gpu = services["gpu-worker"]
    assert gpu["command"][1:6] == ["worker", "--queues", "gpu", "--device", "cuda"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX_URL"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG TORCH_INDEX_URL" in dockerfile
