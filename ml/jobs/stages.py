"""The round's stage jobs on the ML worker (queue ``gpu``): train the round's model, then
score the pool's unlabelled slices with it. Registered with Celery in ``ml.jobs``."""

import time
from typing import Any

import numpy as np
import torch
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.core.config import get_settings
from backend.core.db import transaction
from backend.core.errors import InvalidInput
from backend.core.timeutil import utcnow
from backend.projects.models import Project
from backend.rounds import pool as round_pool
from backend.rounds import service as rounds
from backend.rounds.jobs import Reporter, run_stage
from backend.rounds.models import LabelSource, ModelStatus, ModelVersion, Round, RoundStatus
from backend.worker import job_resources
from ml.config import TrainConfig, pick, timed
from ml.jobs.labels import load_cases
from ml.jobs.versions import load_weights, train_version
from ml.train import Progress, pick_device, score_slices


def round_config(round_: Round, device: torch.device) -> TrainConfig:
    """The round's training config: its named one (else gpu on CUDA, cpu otherwise), with
    its time budget and seed."""
    name = pick(device.type == "cuda").name if round_.config is None else round_.config
    return timed(name, round_.minutes, seed=round_.seed)


def _interrupted(engine: Engine, round_id: int) -> None:
    """Versions of the round left ``training`` by a job that died: failed, for the record."""
    with transaction(engine) as session:
        for version in session.exec(
            select(ModelVersion).where(
                ModelVersion.round_id == round_id, ModelVersion.status == ModelStatus.training
            )
        ):
            version.status = ModelStatus.failed
            version.error = "interrupted: its worker stopped before training finished"
            version.finished_at = utcnow()
            session.add(version)


def train_round(round_id: int) -> str:
    """``ml.train_round``: train and register the round's model on the project's fused labels
    (held-out cases from the project), then hand the round to scoring. Idempotent: a round
    whose model is already registered only moves on; a version a dead worker left
    ``training`` is marked failed and training starts again."""

    def work(round_: Round, report: Reporter) -> tuple[str, Any]:
        engine, storage, _relay = job_resources()

        def training(now: Progress) -> None:
            report(now.percent, now.eta_seconds, f"training: step {now.step}, loss {now.loss:.3f}")

        with Session(engine) as session:
            done = rounds.model_of(session, round_)
            project = session.get_one(Project, round_.project_id)
        if done is None:
            _interrupted(engine, round_id)
            device = pick_device(get_settings().ml_device)
            done = train_version(
                engine=engine,
                storage=storage,
                project_id=round_.project_id,
                labels=LabelSource.fused,
                config=round_config(round_, device),
                device=device,
                holdout=project.holdout_cases,
                round_id=round_id,
                progress=training,
            )
        version = done
        used = int(sum(version.snapshot.get("cases", {}).values()))

        def finish(session: Session, held: Round) -> None:
            held.labels_used = used
            session.add(held)

        dice = version.metrics.get("dice")
        figure = "no held-out case" if dice is None else f"held-out Dice {dice:.3f}"
        return f"model {version.id} ({version.status.value}), {figure}; scoring next", finish

    return run_stage(round_id, RoundStatus.training, work)


def score_pool(round_id: int) -> str:
    """``ml.score_pool``: Monte-Carlo dropout uncertainty of every unlabelled slice with the
    round's model (T = the config's ``mc_samples``), stored for the next round's selection;
    the round is then closed. Idempotent: scores are written under the round's own key."""

    def work(round_: Round, report: Reporter) -> tuple[str, Any]:
        engine, storage, _relay = job_resources()
        with Session(engine) as session:
            version = rounds.model_of(session, round_)
            if version is None or version.weights_key is None:
                raise InvalidInput(f"round {round_.number} has no trained model to score with")
            project = session.get_one(Project, round_.project_id)
            pool = round_pool.pool_rows(session, project)
        device = pick_device(get_settings().ml_device)
        model, config = load_weights(storage.get(version.weights_key), device)
        began, total = time.monotonic(), len(pool)
        ids: list[int] = []
        found: dict[str, list[float]] = {name: [] for name in round_pool.SCORE_NAMES}
        for public_id in sorted({r.case_public_id for r in pool}):
            rows = [r for r in pool if r.case_public_id == public_id]
            with Session(engine) as session:
                (case,) = load_cases(
                    session, storage, project.id or 0, None, only=[public_id]
                ).values()
            before = len(ids)

            def progress(done: int, before: int = before) -> None:
                now = before + done
                elapsed = time.monotonic() - began
                eta = elapsed / now * (total - now) if now else None
                report(100.0 * now / total, eta, f"scoring: {now} of {total} slices")

            scores = score_slices(
                model,
                case,
                [(r.index, r.box) for r in rows],
                config,
                device,
                progress=progress,
            )
            ids += [r.slice_id for r in rows]
            for name in round_pool.SCORE_NAMES:
                found[name] += [getattr(s, name) for s in scores]
        key = f"rounds/{round_id}/scores.npz"
        storage.put(
            key,
            round_pool.encode_scores(
                np.array(ids, dtype=np.int64),
                {name: np.array(v, dtype=np.float64) for name, v in found.items()},
            ),
        )

        def finish(session: Session, held: Round) -> None:
            held.scores_key, held.scored_slices = key, len(ids)
            session.add(held)

        return f"scored {len(ids)} unlabelled slices (T = {config.mc_samples})", finish

    return run_stage(round_id, RoundStatus.scoring, work)
