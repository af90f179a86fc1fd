"""A demo site at work, for screenshots and manual checks: five simulated volunteers label
the demo (each drawing the reference with their own habit: tight, generous, one that misses
small lesions, a faithful one, a careless one whom the quality rules pause), the finished
tasks are fused, and one active-learning round runs to the end on the CPU (random_fg, 6
slices, the tiny config), so the rounds page shows a learning-curve point; a second round
is left labelling.

    .venv/bin/python scripts/demo_round.py DATA_DIR [--answers 30]

DATA_DIR is an embedded-default site (``MSCROWD_DATA_DIR``); it is migrated and given the demo
data first when it has none. Runs the jobs in this process (no worker needed); a few minutes
on 2 cores, most of it training.
"""

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "backend"]
VOLUNTEERS = ("Heron", "Quokka", "Wren", "Lark", "Ibex")
PASSWORD = "a long enough password"


def _habit(name: str, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A volunteer's mask for a slice whose reference is ``truth`` ([H, W] bool)."""
    if name == "Heron":  # tight: drawn just inside each lesion (small ones whole)
        inside = ndimage.binary_erosion(truth)
        return inside | (truth & ~ndimage.binary_dilation(inside, iterations=2))
    if name == "Lark":  # faithful, a pixel generous here and there
        return truth | (ndimage.binary_dilation(truth) & (rng.random(truth.shape) < 0.3))
    if name == "Quokka":  # generous
        return ndimage.binary_dilation(truth, iterations=2)
    if name == "Wren":  # misses lesions under 30 pixels
        labels, count = ndimage.label(truth)
        sizes = ndimage.sum(truth, labels, range(1, count + 1))
        keep = [i + 1 for i, size in enumerate(sizes) if size >= 30]
        return np.isin(labels, keep)
    # careless: a shifted outline and now and then a spurious blob
    moved = np.roll(truth, (2, -2), axis=(0, 1))
    if rng.random() < 0.3:
        y, x = rng.integers(10, truth.shape[0] - 10), rng.integers(10, truth.shape[1] - 10)
        moved[y - 3 : y + 3, x - 3 : x + 3] = True
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--answers", type=int, default=30, help="answers per volunteer")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    os.environ["MSCROWD_DATA_DIR"] = str(args.data)
    os.environ.setdefault("MSCROWD_ML_DEVICE", "cpu")
    if not (args.data / "mscrowd.sqlite").exists():
        for command in (["migrate"], ["demo"]):
            subprocess.run([*CLI, *command], check=True, capture_output=True, timeout=900)
    # Imported after the settings are in the environment.
    from sqlmodel import select

    from backend.annotations import service as annotations
    from backend.annotations.masks import RleMask, encode_rle
    from backend.auth import service as auth
    from backend.auth.models import User
    from backend.core.db import transaction
    from backend.core.timeutil import utcnow
    from backend.fusion import jobs as fusion_jobs
    from backend.imaging.models import Slice
    from backend.projects.models import Project
    from backend.quality import gold
    from backend.rounds import jobs as round_jobs
    from backend.rounds import service as rounds
    from backend.tasks import service as tasks
    from backend.tasks.models import Task, TaskState
    from backend.tutorials import qualification
    from backend.worker import job_resources
    from ml import jobs as ml_jobs

    engine, storage, _ = job_resources()
    rng = np.random.default_rng(0)
    clock = utcnow() - timedelta(hours=6)
    with transaction(engine) as session:
        project = session.exec(select(Project).where(Project.name == "demo")).one()
        assert project.id is not None
        project_id = project.id
        users = []
        for name in VOLUNTEERS:
            found = session.exec(select(User).where(User.display_name == name)).first()
            users.append(
                found
                or auth.create_user(
                    session=session,
                    email=f"{name.lower()}@demo.mscrowd.org",
                    password=PASSWORD,
                    display_name=name,
                )
            )

    def answer(user: User, only: list[int] | None = None) -> bool:
        """One task for ``user`` (among the slices ``only``, when given); False when none."""
        nonlocal clock
        with transaction(engine) as session:
            if only is not None:
                left = session.exec(
                    select(Task.id).where(
                        Task.project_id == project_id,
                        Task.state == TaskState.open,
                        Task.slice_id.in_(only),  # type: ignore[attr-defined]
                    )
                ).first()
                if left is None:
                    return False
            clock += timedelta(seconds=40)
            try:
                lease = tasks.next_task(
                    session=session, user=user, lease_seconds=600, project_id=project_id, now=clock
                )
            except (tasks.RaterSuspended, tasks.QualificationRequired):  # stopped, or failed
                return False
            if lease is None:
                return False
            slice_ = session.get_one(Slice, lease.task.slice_id)
            truth = (
                gold.read_mask(storage, slice_.reference_key)
                if slice_.reference_key
                else np.zeros((slice_.height, slice_.width), bool)
            )
            mask = _habit(user.display_name or "", truth, rng).astype(np.uint8)
            h, w = mask.shape
            annotations.submit(
                session=session,
                storage=storage,
                user=user,
                lease_id=lease.id,
                mask_in=RleMask(encoding="rle", width=w, height=h, counts=encode_rle(mask)),
                max_mask_bytes=1 << 20,
                idempotency_key=None,
                duration_ms=25_000,
                client_info={"ui": "scripts/demo_round.py"},
                now=clock + timedelta(seconds=25),
            )
        return True

    def qualify(user: User) -> bool:
        """The volunteer takes the demo's qualification test with their habit; passed?"""
        nonlocal clock
        with transaction(engine) as session:
            try:
                attempt = qualification.start(session=session, user=user, project_name="demo")
            except qualification.Conflict:  # already qualified, or no tutorial material
                return True
            except qualification.TooManyAttempts:  # failed a moment ago: waits
                return False
            todo = [
                (i.id or 0, i.slice_id) for i in qualification.items_of(session, attempt.id or 0)
            ]
        passed = False
        for item_id, slice_id in todo:
            with transaction(engine) as session:
                slice_ = session.get_one(Slice, slice_id)
                truth = gold.read_mask(storage, slice_.reference_key or "")
                mask = _habit(user.display_name or "", truth, rng).astype(np.uint8)
                h, w = mask.shape
                clock += timedelta(seconds=30)
                _item, _scored, done = qualification.submit_answer(
                    session=session,
                    storage=storage,
                    user_id=user.id or 0,
                    item_id=item_id,
                    mask_in=RleMask(encoding="rle", width=w, height=h, counts=encode_rle(mask)),
                    max_mask_bytes=1 << 20,
                    now=clock,
                )
                passed = bool(done and done.passed)
        return passed

    began = time.time()
    qualified = [user for user in users if qualify(user)]
    print(f"{len(qualified)} of {len(users)} volunteers passed the qualification", flush=True)
    for user in users:
        for _ in range(args.answers):
            if not answer(user):
                break
    with transaction(engine) as session:
        complete = session.exec(
            select(Task.id).where(
                Task.project_id == project_id, Task.state != TaskState.open, Task.kind == "normal"
            )
        ).all()
    for task_id in complete:
        fusion_jobs.fuse_task(task_id)
    print(f"{len(users)} volunteers answered; {len(complete)} tasks fused", flush=True)
    with transaction(engine) as session:
        first = rounds.start_round(
            session, storage, project_id=project_id, strategy="random_fg", budget=6, config="tiny"
        )
        round_id, chosen = first.id, list(first.selected)
    assert round_id is not None
    for _ in range(10):
        answered = [answer(user, only=chosen) for user in users]  # every one, in turn
        if not any(answered):
            break
    with transaction(engine) as session:
        rounds.close_labelling(session, round_id, force=True)
    round_jobs.fuse_round(round_id)
    ml_jobs.train_round(round_id)
    ml_jobs.score_pool(round_id)
    with transaction(engine) as session:
        curve = rounds.learning_curve(session, project_id)
        rounds.start_round(
            session, storage, project_id=project_id, strategy="random_fg", budget=6, config="tiny"
        )
    print(f"round {round_id} done: learning curve {curve}; {time.time() - began:.0f} s")


if __name__ == "__main__":
    main()
