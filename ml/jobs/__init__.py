"""The ML worker's I/O, and the only part of ``ml`` that touches the database or storage: it
loads a project's cases and labels (``labels``), trains and registers model versions
(``versions``, with ``planting``), segments case folders (``predict``) and runs the rounds'
stage jobs (``stages``). The algorithms it calls (``ml.data``, ``ml.train``) are pure.

This package is what a worker on the ``gpu`` queue imports (``backend.worker.ML_JOBS``): its
Celery jobs are registered here, under the names the backend sends them by.
"""

from backend.fusion.volumes import FusedLabel
from backend.imaging import BRAIN_MASK
from backend.rounds import SCORE_POOL, TRAIN_ROUND
from backend.worker import celery_app
from ml.jobs.brain import import_staged
from ml.jobs.labels import (
    arrays_from_volumes,
    decode_nifti,
    load_cases,
    load_holdout,
    training_labels,
)
from ml.jobs.planting import PLANT_COPIES, Library, planted_copies, read_library
from ml.jobs.predict import (
    arrays_for_prediction,
    arrays_with_reference,
    predict_folder,
    to_own_grid,
)
from ml.jobs.stages import round_config, score_pool, train_round
from ml.jobs.versions import (
    find_version,
    load_weights,
    project_id_of,
    save_weights,
    train_version,
)

__all__ = [
    "PLANT_COPIES",
    "FusedLabel",
    "Library",
    "arrays_for_prediction",
    "arrays_from_volumes",
    "arrays_with_reference",
    "decode_nifti",
    "find_version",
    "import_staged",
    "load_cases",
    "load_holdout",
    "load_weights",
    "planted_copies",
    "predict_folder",
    "project_id_of",
    "read_library",
    "round_config",
    "save_weights",
    "score_pool",
    "to_own_grid",
    "train_round",
    "train_version",
    "training_labels",
]

train_round_job = celery_app.task(name=TRAIN_ROUND)(train_round)
score_pool_job = celery_app.task(name=SCORE_POOL)(score_pool)
brain_mask_job = celery_app.task(name=BRAIN_MASK)(import_staged)
