"""The ML worker's I/O, and the only module of ``ml`` that touches the database or storage:
it loads a project's cases and labels, trains and registers model versions, and segments case
folders. The algorithms it calls (``ml.data``, ``ml.train``) are pure.

Labels:
- ``reference``: the imported expert masks, every axial slice labelled;
- ``fused``: the newest fused soft label of every complete crowd task (``training_labels``:
  never a task still collecting answers or in the experts' review queue, never a withdrawn
  version), P(lesion) mapped from the slice's display geometry back onto the volume, plus the
  current gold masks; only those slices are labelled. Each version records the fused versions
  it used (``snapshot["fused_results"]``, result ids).

Held-out cases (``holdout``, by public id) are never trained on; the version is evaluated on
their expert masks and promoted only when its overall Dice is not below the current promoted
version's on the same cases (scored again in the same run); without held-out cases a version
stays ``ready``.
"""

import gzip
import io
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from numpy.typing import NDArray
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select
from torch import nn

from backend.core.config import get_settings
from backend.core.db import transaction
from backend.core.errors import InvalidInput, NotFound
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion.labels import read_soft
from backend.fusion.models import FusionResult
from backend.imaging.models import Case, Contrast, Slice, Volume
from backend.imaging.preprocess import (
    FloatArray,
    PreparedCase,
    brain_mask,
    encode_nifti,
    from_display,
    prepare_case,
)
from backend.imaging.service import load_case
from backend.projects.models import Project
from backend.quality.gold import read_mask
from backend.quality.models import GoldVersion
from backend.rounds import SCORE_POOL, TRAIN_ROUND
from backend.rounds import service as rounds
from backend.rounds.jobs import Reporter, run_stage
from backend.rounds.models import LabelSource, ModelStatus, ModelVersion, Round, RoundStatus
from backend.tasks.models import Task, TaskKind, TaskState
from backend.worker import celery_app, job_resources
from ml.config import TrainConfig, pick, timed
from ml.data import CONTRASTS, CaseArrays, lightly_loaded, plant_copies
from ml.models import build_model
from ml.train import (
    Progress,
    clean,
    evaluate,
    pick_device,
    predict_case,
    score_slices,
    train,
)


def arrays_from_volumes(
    name: str,
    volumes: dict[Contrast, FloatArray],
    label: NDArray[np.floating] | None = None,
    labelled: NDArray[np.bool_] | None = None,
) -> CaseArrays:
    """``CaseArrays`` from volumes on one grid; a missing T1 or T2 is all zeros."""
    flair = volumes[Contrast.flair]
    ordered = [volumes.get(Contrast(c), np.zeros_like(flair)) for c in CONTRASTS]
    return CaseArrays.from_volumes(name, ordered, brain_mask(volumes), label, labelled)


def _decode_nifti(data: bytes) -> FloatArray:
    image = nib.Nifti1Image.from_bytes(gzip.decompress(data))
    return np.asarray(image.dataobj, dtype=np.float32)


def _read_nifti(storage: Storage, key: str) -> FloatArray:
    return _decode_nifti(storage.get(key))


@dataclass(frozen=True)
class FusedLabel:
    """A fused version training may use: its id, case and slice, and its soft label's key."""

    result_id: int
    case_id: int
    slice_: Slice
    soft_key: str


def training_labels(session: Session, project_id: int) -> list[FusedLabel]:
    """The fused labels of a project that training may use, in result id order: the newest
    version of each complete crowd task (not open, not in review, not retired), unless that
    version is withdrawn (an older version may carry an excluded rater: never used)."""
    newest = (
        select(FusionResult.task_id, func.max(FusionResult.version).label("version"))
        .group_by(col(FusionResult.task_id))
        .subquery()
    )
    rows = session.exec(
        select(FusionResult, Slice)
        .join(
            newest,
            (col(FusionResult.task_id) == newest.c.task_id)
            & (col(FusionResult.version) == newest.c.version),
        )
        .join(Task, col(Task.id) == col(FusionResult.task_id))
        .join(Slice, col(Slice.id) == col(FusionResult.slice_id))
        .where(Task.project_id == project_id, Task.kind == TaskKind.normal)
        .where(Task.state == TaskState.complete, col(FusionResult.withdrawn).is_(False))
        .order_by(col(FusionResult.id))
    ).all()
    return [
        FusedLabel(result.id or 0, slice_.case_id, slice_, result.soft_key)
        for result, slice_ in rows
        if result.soft_key is not None
    ]


def _fused_labels(
    session: Session,
    storage: Storage,
    case: Case,
    shape: tuple[int, ...],
    fused: Sequence[FusedLabel],
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """The case's ``fused`` soft labels and current gold masks on its volume grid."""
    label = np.zeros(shape, dtype=np.float32)
    labelled = np.zeros(shape[2], dtype=bool)
    gold = session.exec(
        select(GoldVersion, Slice)
        .join(Slice, col(Slice.id) == col(GoldVersion.slice_id))
        .where(Slice.case_id == case.id, col(GoldVersion.retired_at).is_(None))
    ).all()
    planes: list[tuple[Slice, NDArray[np.float64]]] = [
        (f.slice_, read_soft(storage, f.soft_key)) for f in fused if f.case_id == case.id
    ]
    # Gold after the crowd: an expert's mask wins on a slice that has both.
    planes += [(slice_, read_mask(storage, g.mask_key).astype(np.float64)) for g, slice_ in gold]
    for slice_, plane in planes:
        label[slice_.crop_x0 : slice_.crop_x1, slice_.crop_y0 : slice_.crop_y1, slice_.index] = (
            from_display(plane)
        )
        labelled[slice_.index] = True
    return label, labelled


def load_cases(
    session: Session,
    storage: Storage,
    project_id: int,
    labels: LabelSource | None,
    *,
    only: Collection[str] | None = None,
    skip: Collection[str] = (),
    fused: Sequence[FusedLabel] | None = None,
) -> dict[str, CaseArrays]:
    """The project's cases by public id, with ``labels`` (reference: cases that have one;
    fused: ``fused``, by default ``training_labels``; None: images only, no label read);
    ``only`` these public ids when given, never those in ``skip`` (their volumes are not read
    at all)."""
    found: dict[str, CaseArrays] = {}
    if labels is LabelSource.fused and fused is None:
        fused = training_labels(session, project_id)
    query = select(Case).where(Case.project_id == project_id).order_by(col(Case.id))
    if only is not None:
        query = query.where(col(Case.public_id).in_(list(only)))
    if skip:
        query = query.where(col(Case.public_id).not_in(list(skip)))
    for case in session.exec(query):
        rows = {
            v.contrast: v for v in session.exec(select(Volume).where(Volume.case_id == case.id))
        }
        if Contrast.flair not in rows:
            continue
        volumes: dict[Contrast, FloatArray] = {
            c: _read_nifti(storage, v.storage_key)
            for c, v in rows.items()
            if c is not Contrast.reference
        }
        shape = volumes[Contrast.flair].shape
        if labels is LabelSource.reference:
            if Contrast.reference not in rows:
                continue
            label = (_read_nifti(storage, rows[Contrast.reference].storage_key) > 0).astype(
                np.float32
            )
            found[case.public_id] = arrays_from_volumes(case.public_id, volumes, label)
        elif labels is None:
            found[case.public_id] = arrays_from_volumes(case.public_id, volumes)
        else:
            label, labelled = _fused_labels(session, storage, case, shape, fused or [])
            found[case.public_id] = arrays_from_volumes(case.public_id, volumes, label, labelled)
    return found


def load_holdout(
    session: Session, storage: Storage, project_id: int, public_ids: Sequence[str]
) -> list[CaseArrays]:
    """Held-out cases with their expert masks (required: they are what is evaluated)."""
    cases = load_cases(session, storage, project_id, LabelSource.reference, only=public_ids)
    missing = [p for p in public_ids if p not in cases]
    if missing:
        raise InvalidInput(
            f"Held-out case(s) {', '.join(missing)} are not cases of this project with an "
            "expert mask"
        )
    return [cases[p] for p in public_ids]


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


# Semi-synthetic copies planted from a library when the training cases are lightly loaded.
PLANT_COPIES = 4


@dataclass(frozen=True)
class Library:
    """Expert lesion masks to plant into training cases (``mscrowd train --plant-from``)."""

    folder: str
    names: list[str]
    masks: list[NDArray[np.bool_]]


def read_library(folder: Path) -> Library:
    """Every NIfTI mask of ``folder`` (voxels > 0.5), made RAS as the import makes images."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder of lesion masks")
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".nii", ".nii.gz")))
    if not files:
        raise InvalidInput(f"{folder} holds no .nii or .nii.gz lesion mask")
    masks = []
    for path in files:
        try:
            data = np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj)
        except Exception as exc:
            raise InvalidInput(f"{path.name} is not a readable NIfTI mask: {exc}") from exc
        if data.ndim != 3:
            raise InvalidInput(f"{path.name} is not a 3-D mask (shape {data.shape})")
        masks.append(data > 0.5)
    names = [p.name.removesuffix(".gz").removesuffix(".nii") for p in files]
    return Library(str(folder), names, masks)


def planted_copies(
    training: Sequence[CaseArrays], library: Library, count: int, seed: int
) -> tuple[list[CaseArrays], dict[str, Any]]:
    """``count`` copies of the training cases with library lesions planted
    (``ml.data.plant_copies``, seeded by ``seed``) when they are lightly loaded
    (``ml.data.lightly_loaded``), else none; and what the version's snapshot records of it:
    the library, whether the rule planted, which masks."""
    grids = {c.brain.shape for c in training}
    wrong = [n for n, m in zip(library.names, library.masks, strict=True) if {m.shape} != grids]
    if wrong:
        raise InvalidInput(
            f"Library mask(s) {', '.join(wrong[:5])} are not on the training cases' grid "
            f"{', '.join(str(g) for g in sorted(grids))}: planting needs masks in the cases' "
            "space (e.g. MNI for cross_sectional_mni)"
        )
    if count > len(library.masks):
        raise InvalidInput(f"cannot plant {count} of a library of {len(library.masks)} masks")
    light = lightly_loaded(training, library.masks)
    rng = np.random.default_rng(seed)
    copies, chosen = plant_copies(training, library.masks, count, rng) if light else ([], [])
    return copies, {
        "library": library.folder,
        "rule": "planted only when the training cases' median lesion load is below the "
        "library's median",
        "lightly_loaded": light,
        "masks": [library.names[i] for i in chosen],
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
        raise NotFound("No trained model yet; run mscrowd train first")
    if not which.isdigit():
        raise InvalidInput(f"Model {which!r}: give a version number or 'latest'")
    version = session.get(ModelVersion, int(which))
    if version is None or version.weights_key is None:
        raise NotFound(f"No trained model version {which}")
    return version


def arrays_for_prediction(name: str, prepared: PreparedCase) -> CaseArrays:
    """A prepared case as the model saw its training cases: through the same int16 NIfTI
    encoding the import stores volumes in. Float volumes keep interpolation residue outside a
    skull-stripped brain that int16 rounds to 0; that grew the brain mask by a fifth and
    shifted the z-scores (patient19: Dice 0.43 instead of the held-out 0.55)."""
    stored = {
        contrast: _decode_nifti(encode_nifti(data, prepared.affine))
        for contrast, data in prepared.volumes.items()
    }
    return arrays_from_volumes(name, stored)


def arrays_with_reference(name: str, prepared: PreparedCase) -> CaseArrays:
    """``arrays_for_prediction`` labelled on every axial slice with the case's reference mask
    (benchmarks and tests: a case as an expert-labelled training or held-out case)."""
    if prepared.reference is None:
        raise ValueError(f"case {name} has no reference mask")
    arrays = arrays_for_prediction(name, prepared)
    return replace(
        arrays,
        label=prepared.reference.astype(np.float32),
        labelled=np.ones(prepared.shape[2], dtype=bool),
    )


def to_own_grid(data: NDArray[np.generic], image: Any) -> NDArray[np.generic]:
    """``data`` on the RAS grid of ``nib.as_closest_canonical(image)``, moved back onto the
    image's own voxel grid (the inverse of the reorientation the import applies)."""
    own = nib.orientations.io_orientation(image.affine)
    ras = nib.orientations.axcodes2ornt(("R", "A", "S"))
    restored = np.asarray(
        nib.orientations.apply_orientation(data, nib.orientations.ornt_transform(ras, own))
    )
    if restored.shape != tuple(image.shape[:3]):
        raise InvalidInput(f"the mask's grid {restored.shape} is not the FLAIR's {image.shape}")
    return restored


def predict_folder(
    *,
    storage: Storage,
    version: ModelVersion,
    folder: Path,
    out: Path,
    device: torch.device,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Segment a case folder (import layout) and write a binary mask on the case's own FLAIR
    grid (same shape and affine as its FLAIR.nii.gz); the lesion voxel count."""
    assert version.weights_key is not None
    model, config = load_weights(storage.get(version.weights_key), device)
    source = load_case(folder)
    case = arrays_for_prediction(folder.name, prepare_case(source))
    probability = predict_case(model, case, config, device, progress=progress)
    mask = clean(probability, config.min_lesion_pixels).astype(np.uint8)
    original = source.images[Contrast.flair]
    restored = to_own_grid(mask, original)
    image = nib.Nifti1Image(restored.astype(np.uint8), original.affine)
    image.set_data_dtype(np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, out)
    return int(restored.sum())


# -- the round jobs (queue ``gpu``) ----------------------------------------------------


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
            pool = rounds.pool_rows(session, project)
        device = pick_device(get_settings().ml_device)
        model, config = load_weights(storage.get(version.weights_key), device)
        began, total = time.monotonic(), len(pool)
        ids: list[int] = []
        found: dict[str, list[float]] = {name: [] for name in rounds.SCORE_NAMES}
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
            for name in rounds.SCORE_NAMES:
                found[name] += [getattr(s, name) for s in scores]
        key = f"rounds/{round_id}/scores.npz"
        storage.put(
            key,
            rounds.encode_scores(
                np.array(ids, dtype=np.int64),
                {name: np.array(v, dtype=np.float64) for name, v in found.items()},
            ),
        )

        def finish(session: Session, held: Round) -> None:
            held.scores_key, held.scored_slices = key, len(ids)
            session.add(held)

        return f"scored {len(ids)} unlabelled slices (T = {config.mc_samples})", finish

    return run_stage(round_id, RoundStatus.scoring, work)


train_round_job = celery_app.task(name=TRAIN_ROUND)(train_round)
score_pool_job = celery_app.task(name=SCORE_POOL)(score_pool)
