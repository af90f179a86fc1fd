"""Model versions: trained on a project's cases, evaluated on its held-out cases, their
weights stored and the version registered (and promoted or not); a registered version found
again for prediction.

Each version records the fused versions it used (``snapshot["fused_results"]``, result ids).
Held-out cases (``holdout``, by public id) are never trained on; the version is evaluated on
their expert masks and promoted only when its overall Dice is not below the current promoted
version's on the same cases (scored again in the same run); without held-out cases a version
stays ``ready``.
"""

import io
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from torch import nn

from backend.core.db import transaction
from backend.core.errors import InvalidInput, NotFound
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.imaging.models import Case
from backend.projects.models import Project
from backend.rounds.models import LabelSource, ModelStatus, ModelVersion
from ml.config import TrainConfig
from ml.jobs.labels import load_cases, load_holdout, training_labels
from ml.jobs.planting import PLANT_COPIES, Library, planted_copies
from ml.models import build_model
from ml.train import Progress, evaluate, train


def save_weights(model: nn.Module, config: TrainConfig) -> bytes:
    buffer = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "config": asdict(config)}, buffer)
    return buffer.getvalue()


def load_weights(data: bytes, device: torch.device) -> tuple[nn.Module, TrainConfig]:
    stored = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    values = dict(stored["config"])
    values["features"] = tuple(values["features"])
    # Versions trained before ``norm`` was configurable used MONAI's default, instance norm.
    values.setdefault("norm", "instance")
    config = TrainConfig(**values)
    model = build_model(config)
    model.load_state_dict(stored["state_dict"])
    return model.to(device), config


def _summary(scores: list[Any]) -> dict[str, Any]:
    if not scores:
        return {}
    return {
        "dice": float(np.mean([s.dice for s in scores])),
        "lesion_f1": float(np.mean([s.lesion_f1 for s in scores])),
        "cases": [asdict(s) for s in scores],
    }


def project_id_of(session: Session, name: str) -> int:
    project = session.exec(select(Project).where(Project.name == name)).first()
    if project is None or project.id is None:
        raise NotFound(f"No project called {name!r}")
    return project.id


def train_version(
    *,
    engine: Engine,
    storage: Storage,
    project_id: int,
    labels: LabelSource,
    config: TrainConfig,
    device: torch.device,
    holdout: Sequence[str] = (),
    round_id: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    library: "Library | None" = None,
    plant: int = PLANT_COPIES,
) -> ModelVersion:
    """Train on the project's cases (minus ``holdout``) with ``labels``, evaluate on the
    held-out cases, store the weights and register the version; a failure is registered too
    (status ``failed``) and raised. With a ``library`` of expert masks, ``plant`` copies of
    lightly loaded training cases get its lesions planted (``planted_copies``)."""
    with Session(engine) as session:
        project = session.get(Project, project_id)
        if project is None:
            raise NotFound(f"Project {project_id} does not exist")
        held = load_holdout(session, storage, project_id, holdout)
        fused = training_labels(session, project_id) if labels is LabelSource.fused else None
        cases = load_cases(session, storage, project_id, labels, skip=holdout, fused=fused)
        training = [c for c in cases.values() if c.labelled.any()]
        if not training:
            raise InvalidInput(f"Project {project.name!r} has no {labels.value} labels to train on")
        trained_on = set(
            session.exec(
                select(Case.id).where(
                    Case.project_id == project_id,
                    col(Case.public_id).in_([c.name for c in training]),
                )
            ).all()
        )
    snapshot: dict[str, Any] = {
        "cases": {c.name: int(c.labelled.sum()) for c in training},
        "holdout": list(holdout),
    }
    if fused is not None:
        # The fused versions trained on (result ids): what a later exclusion can be checked
        # against.
        snapshot["fused_results"] = [f.result_id for f in fused if f.case_id in trained_on]
    if library is not None:
        copies, snapshot["planted"] = planted_copies(training, library, plant, config.seed)
        training += copies
    with transaction(engine) as session:
        version = ModelVersion(
            project_id=project_id,
            round_id=round_id,
            labels=labels,
            config=asdict(config),
            device=device.type,
            snapshot=snapshot,
        )
        session.add(version)
        current = session.exec(
            select(ModelVersion).where(
                ModelVersion.project_id == project_id,
                ModelVersion.status == ModelStatus.promoted,
            )
        ).first()
    try:
        trained = train(training, config, device, progress=progress)
        scores = evaluate(trained.model, held, config, device)
        key = f"models/{version.id}/model.pt"
        storage.put(key, save_weights(trained.model, config))
        # The promoted version, scored on the same held-out cases in the same run.
        baseline = None
        if held and current is not None and current.weights_key is not None:
            old_model, old_config = load_weights(storage.get(current.weights_key), device)
            baseline = _summary(evaluate(old_model, held, old_config, device))
    except BaseException as exc:
        with transaction(engine) as session:
            failed = session.get_one(ModelVersion, version.id)
            failed.status, failed.error = ModelStatus.failed, str(exc)[:2000] or repr(exc)
            failed.finished_at = utcnow()
            session.add(failed)
        raise
    with transaction(engine) as session:
        done = session.get_one(ModelVersion, version.id)
        done.metrics = {
            **_summary(scores),
            "steps": trained.steps,
            "seconds": trained.seconds,
            "final_loss": float(np.mean(trained.losses[-10:])),
        }
        done.weights_key = key
        done.finished_at = utcnow()
        if baseline is not None and current is not None:
            done.metrics["compared_with"] = {"version": current.id, "dice": baseline["dice"]}
        done.status = _promotion(done, baseline)
        if done.status is ModelStatus.promoted and current is not None:
            demoted = session.get_one(ModelVersion, current.id)
            demoted.status = ModelStatus.ready
            session.add(demoted)
        session.add(done)
    return done


def _promotion(version: ModelVersion, baseline: dict[str, Any] | None) -> ModelStatus:
    """Promoted when evaluated on held-out cases and not worse in Dice than the promoted
    version on the same cases (``baseline``; None: there is none, or no held-out case)."""
    dice = version.metrics.get("dice")
    if dice is None:
        return ModelStatus.ready  # nothing held out: no evidence it does not regress
    if baseline is not None and dice < baseline["dice"]:
        return ModelStatus.ready
    return ModelStatus.promoted


def find_version(session: Session, which: str) -> ModelVersion:
    """A version by id, or ``latest``: the newest promoted one, else the newest ready one."""
    if which == "latest":
        for status in (ModelStatus.promoted, ModelStatus.ready):
            found = session.exec(
                select(ModelVersion)
                .where(ModelVersion.status == status)
                .order_by(col(ModelVersion.id).desc())
            ).first()
            if found is not None:
                return found
        raise NotFound("No trained model yet; run mscrowd-ml train first")
    if not which.isdigit():
        raise InvalidInput(f"Model {which!r}: give a version number or 'latest'")
    version = session.get(ModelVersion, int(which))
    if version is None or version.weights_key is None:
        raise NotFound(f"No trained model version {which}")
    return version
