"""The ``mscrowd`` command line."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session, select

import backend.models  # noqa: F401  (every table: foreign keys resolve in any command)
from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.config import Settings, get_settings
from backend.core.db import create_db_engine, transaction
from backend.core.errors import Conflict, DomainError, NotFound, SchemaNotCurrent
from backend.core.migrations import current_revision, ensure_current, upgrade
from backend.core.storage import Storage
from backend.imaging.models import ConsentScope
from backend.imaging.service import CaseMeta, ImportOutcome, folder_loaders, import_cases
from backend.rounds import service as rounds
from backend.rounds.models import JOB_STAGES, Round, RoundStatus

app = typer.Typer(help="mscrowd: crowd labelling of MS lesions on MRI.", no_args_is_help=True)
users_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
storage_app = typer.Typer(help="Check blob storage against the database.", no_args_is_help=True)
app.add_typer(storage_app, name="storage")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code=1)


def _migrated_engine(settings: Settings) -> Engine:
    """An engine on the configured database, or a clean exit when it is not migrated."""
    engine = create_db_engine(settings.database_url)
    try:
        ensure_current(engine)
    except SchemaNotCurrent as exc:
        engine.dispose()
        raise _fail(exc.message) from exc
    return engine


@contextmanager
def _unit_of_work() -> Iterator[tuple[Settings, Session]]:
    """A transaction on the configured, migrated database; domain errors exit with a message."""
    settings = get_settings()
    engine = _migrated_engine(settings)
    try:
        with transaction(engine) as session:
            yield settings, session
    except DomainError as exc:
        raise _fail(exc.message) from exc
    finally:
        engine.dispose()


def _check_account(email: str, password: str, display_name: str | None = None) -> None:
    """The same rules as a sign-up form, as a clean CLI error."""
    from pydantic import ValidationError

    from backend.auth.schemas import SignupIn

    try:
        SignupIn(email=email, password=password, display_name=display_name)
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise _fail(problems) from exc


def _die_with_parent() -> None:
    # uvicorn re-raises SIGTERM after its graceful shutdown, so a `finally` may never run: ask
    # Linux to send the embedded worker SIGTERM when the server process ends, however it ends.
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _report(outcomes: list[ImportOutcome]) -> int:
    failed = 0
    for outcome in outcomes:
        mark = {"imported": "+", "skipped": "=", "failed": "!"}[outcome.status]
        where = f" as case {outcome.case_public_id}" if outcome.case_public_id else ""
        typer.echo(f"{mark} {outcome.name}: {outcome.status}{where} ({outcome.message})")
        failed += outcome.status == "failed"
    return failed


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Alembic revision to upgrade to.")] = "head",
) -> None:
    """Create or upgrade the database schema."""
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    try:
        upgrade(engine, revision)
        where = engine.url.render_as_string(hide_password=True)
        typer.echo(f"Database {where} is at revision {current_revision(engine)}.")
    finally:
        engine.dispose()


# Connections left for migrations, Celery workers and psql beside the server processes.
RESERVED_CONNECTIONS = 10


def _check_connections(engine: Engine, settings: Settings, workers: int) -> None:
    """Refuse to start more processes than PostgreSQL has connections for."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection:
        limit = int(connection.exec_driver_sql("SHOW max_connections").scalar_one())
        reserved = int(
            connection.exec_driver_sql("SHOW superuser_reserved_connections").scalar_one()
        )
    per_process = settings.db_pool_size + settings.db_max_overflow
    available = limit - reserved - RESERVED_CONNECTIONS
    if workers * per_process > available:
        raise _fail(
            f"{workers} worker(s) x {per_process} connections (MSCROWD_DB_POOL_SIZE + "
            f"MSCROWD_DB_MAX_OVERFLOW) exceed the {available} that PostgreSQL's "
            f"max_connections={limit} leaves; use fewer workers or smaller pools"
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    worker: Annotated[
        bool | None,
        typer.Option(help="Also run a Celery worker (default: when the broker is embedded)."),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (each with its own connection pool).")
    ] = 1,
) -> None:
    """Serve the web app and API; the database must be migrated first."""
    settings = get_settings()
    engine = _migrated_engine(settings)
    try:
        _check_connections(engine, settings, workers)
    finally:
        engine.dispose()
    child = None
    if worker if worker is not None else settings.embedded_worker:
        # The embedded default has no separate worker service; run one beside the server.
        command = [sys.executable, "-m", "backend", "worker", "--concurrency", "1", "--beat"]
        child = subprocess.Popen(command, preexec_fn=_die_with_parent)
    try:
        uvicorn.run(
            "backend.main:create_app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            timeout_keep_alive=settings.keep_alive_seconds,
            # Client addresses (for login throttling) come from X-Forwarded-For only when the
            # connection is from a proxy the admin named; otherwise anyone could pick theirs.
            proxy_headers=bool(settings.forwarded_allow_ips),
            forwarded_allow_ips=settings.forwarded_allow_ips or None,
        )
    finally:
        if child is not None:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume.")] = "default,gpu",
    concurrency: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    beat: Annotated[
        bool,
        typer.Option(help="Also run the periodic jobs (the outbox relay); in one worker only."),
    ] = False,
    device: Annotated[
        str, typer.Option(help="The ML jobs' device (queue gpu): auto, cpu or cuda.")
    ] = "auto",
) -> None:
    """Run a Celery worker (``default`` backend jobs; ``gpu`` for the ML worker)."""
    from backend.worker import BACKEND_JOBS, ML_JOBS, QUEUES, celery_app

    chosen = set(queues.split(","))
    unknown = chosen - set(QUEUES)
    if unknown:
        raise _fail(f"unknown queue(s) {', '.join(sorted(unknown))}; known: {', '.join(QUEUES)}")
    if device not in ("auto", "cpu", "cuda"):
        raise _fail(f"--device must be auto, cpu or cuda, not {device!r}")
    if "gpu" in chosen:
        # The ML worker: its jobs (and torch) load in this process only.
        celery_app.conf.include = [*BACKEND_JOBS, ML_JOBS]
        os.environ["MSCROWD_ML_DEVICE"] = device
        get_settings.cache_clear()
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise _fail("--device cuda: no CUDA device here; use cpu or auto")
    argv = [
        "worker",
        f"--queues={queues}",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
    ]
    if get_settings().broker_is_embedded:
        argv.append("--pool=solo")  # one process polling SQLite is plenty for the demo
    if beat:
        argv.append("--beat")
    celery_app.worker_main(argv)


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="A folder of case folders, or one case folder.")],
    project: Annotated[str, typer.Option(help="Project to import into (created if new).")],
    source: Annotated[str | None, typer.Option(help="Provenance text stored per case.")] = None,
    licence: Annotated[str, typer.Option(help="Licence of the images.")] = "CC-BY-4.0",
    consent: Annotated[ConsentScope, typer.Option(help="Who may see the images.")] = (
        ConsentScope.open
    ),
    min_labels: Annotated[
        int | None, typer.Option(min=1, help="Labels every task gets first, for a new project.")
    ] = None,
    max_labels: Annotated[
        int | None,
        typer.Option(min=1, help="Labels an uncertain task may get at most, for a new project."),
    ] = None,
    gold_rate: Annotated[
        float | None, typer.Option(min=0, max=1, help="Share of gold tasks, for a new project.")
    ] = None,
) -> None:
    """Import NIfTI cases (FLAIR, T1, T2, optional lesion mask) and open their slice tasks."""
    settings = get_settings()
    engine = _migrated_engine(settings)
    try:
        loaders = folder_loaders(path.expanduser())
        outcomes = import_cases(
            engine=engine,
            storage=Storage(settings.storage_url),
            project_name=project,
            loaders=loaders,
            meta=CaseMeta(
                source or f"import of {path.expanduser().resolve().name}", licence, consent
            ),
            min_labels=min_labels,
            max_labels=max_labels,
            gold_rate=gold_rate,
        )
    except DomainError as exc:
        raise _fail(exc.message) from exc
    finally:
        engine.dispose()
    failed = _report(outcomes)
    if failed:
        raise _fail(f"{failed} of {len(outcomes)} case(s) failed; nothing of them was kept")


@app.command()
def demo(
    cases: Annotated[int, typer.Option(min=1, max=64, help="Synthetic cases to build.")] = 8,
    seed: Annotated[int, typer.Option(help="First random seed.")] = 0,
    password: Annotated[
        str | None, typer.Option(help="Password of the demo admin and expert.")
    ] = None,
) -> None:
    """Build synthetic MS cases from the MNI152 template, import them, add demo accounts."""
    from backend.imaging.demo import DEMO_PASSWORD, DEMO_PROJECT, build_demo

    settings = get_settings()
    if settings.environment == "production" and password is None:
        raise _fail("in production, give the demo accounts a password with --password")
    engine = _migrated_engine(settings)
    try:
        report = build_demo(
            engine=engine,
            storage=Storage(settings.storage_url),
            cases=cases,
            seed=seed,
            password=password or DEMO_PASSWORD,
        )
    finally:
        engine.dispose()
    failed = _report(report.outcomes)
    for email, role, created in report.accounts:
        state = "created" if created else "exists"
        shown = f" password {password or DEMO_PASSWORD!r}" if created else ""
        typer.echo(f"  {role.value:<8} {email} ({state}){shown}")
    typer.echo(f"Demo project {DEMO_PROJECT!r} is ready; volunteers sign up at the front page.")
    if failed:
        raise _fail(f"{failed} demo case(s) failed")


@app.command("holdout")
def holdout_command(
    project: Annotated[str, typer.Option(help="Name of the project.")],
    cases: Annotated[
        list[str] | None,
        typer.Argument(help="Public ids of the cases to hold out (none: hold none out)."),
    ] = None,
) -> None:
    """Hold cases out for evaluating models: never served to volunteers, never gold, never
    trained on (replaces the project's list)."""
    from backend.projects import service as projects

    with _unit_of_work() as (_settings, session):
        chosen = projects.set_holdout(session=session, project_name=project, case_ids=cases or [])
        held = ", ".join(chosen.holdout_cases) or "none"
    typer.echo(f"Held out of {project!r}: {held}.")


@users_app.command("unlock")
def users_unlock(email: Annotated[str, typer.Argument(help="Login email of the account.")]) -> None:
    """Forget the failed sign-ins counted against an account, so it may sign in at once."""
    with _unit_of_work() as (_settings, session):
        cleared = auth.unlock(session=session, email=email)
    typer.echo(f"Unlocked {auth.normalise_email(email)} ({cleared} throttle record(s) cleared).")


@users_app.command("set-password")
def users_set_password(
    email: Annotated[str, typer.Argument(help="Login email of the account.")],
    password: Annotated[
        str,
        typer.Option(
            prompt="New password", hide_input=True, confirmation_prompt=True, help="Password."
        ),
    ] = "",
) -> None:
    """Set a new password; ends the account's sessions and tokens and unlocks it."""
    _check_account(email, password)
    with _unit_of_work() as (_settings, session):
        ended = auth.set_password(session=session, email=email, password=password)
    typer.echo(
        f"New password set for {auth.normalise_email(email)}; "
        f"{ended} session(s) and token(s) ended."
    )


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="Login email.")],
    role: Annotated[UserRole, typer.Option(help="Role of the account.")] = UserRole.volunteer,
    display_name: Annotated[str | None, typer.Option(help="Public pseudonym.")] = None,
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Password."),
    ] = "",
) -> None:
    """Create an account (e.g. the first admin)."""
    _check_account(email, password, display_name)
    with _unit_of_work() as (_settings, session):
        user = auth.create_user(
            session=session, email=email, password=password, role=role, display_name=display_name
        )
    typer.echo(f"Created {user.role.value} {user.email} ({user.display_name}).")


@app.command()
def fuse(
    project: Annotated[str, typer.Option(help="Name of the project to fuse.")],
    min_answers: Annotated[
        int, typer.Option(min=1, help="Fuse tasks with at least this many volunteer answers.")
    ] = 2,
) -> None:
    """Fuse every crowd task of a project (rates pooled over the project, gold priors): a new
    version of each task's fused label."""
    import time

    from backend.fusion import service as fusion
    from backend.fusion.adaptive import redundancy_summary
    from backend.projects.models import Project

    with _unit_of_work() as (settings, session):
        found = session.exec(select(Project).where(Project.name == project)).first()
        if found is None or found.id is None:
            raise _fail(f"No project called {project!r}")
        started = time.perf_counter()
        with typer.progressbar(length=1, label="Fusing") as bar:

            def progress(done: int, total: int) -> None:
                bar.length = total
                bar.update(1)

            run = fusion.fuse_project(
                session=session,
                storage=Storage(settings.storage_url),
                project_id=found.id,
                min_answers=min_answers,
                progress=progress,
            )
        summary = redundancy_summary(session, found.id)
    state = "converged" if run.converged else "not converged"
    typer.echo(
        f"Fused {run.slices} task(s) of {project} in {time.perf_counter() - started:.1f} s: "
        f"run {run.id}, {run.iterations} iterations ({state}), "
        f"{len(run.rater_rates)} rater(s), {len(run.excluded)} excluded left out."
    )
    per_task = summary.labels_per_retired
    typer.echo(
        f"Adaptive redundancy ({summary.policy.min_labels} to {summary.policy.max_labels} "
        f"labels): {summary.retired} task(s) retired"
        + (f" with {per_task:.2f} labels each on average" if per_task is not None else "")
        + f", {summary.asking_for_more} asking for more labels, {summary.in_review} in the "
        "experts' review queue."
    )


@storage_app.command("check")
def storage_check(
    fix: Annotated[bool, typer.Option(help="Delete the orphan files found.")] = False,
    grace_minutes: Annotated[
        float, typer.Option(min=0, help="Leave files younger than this (in-flight writes).")
    ] = 10.0,
) -> None:
    """Find mask and image files with no database row (left by a crash); --fix deletes them."""
    from datetime import timedelta

    from backend.annotations.sweep import check

    with _unit_of_work() as (settings, session):
        report = check(
            session=session,
            storage=Storage(settings.storage_url),
            fix=fix,
            grace=timedelta(minutes=grace_minutes),
        )
    for key in report.orphans:
        typer.echo(f"{'deleted' if fix else 'orphan'} {key}")
    for key in report.missing:
        typer.echo(f"missing {key} (its annotation row has no file)")
    typer.echo(
        f"{len(report.orphans)} orphan file(s){' deleted' if fix else ''}, "
        f"{len(report.too_young)} younger than {grace_minutes:g} min left alone, "
        f"{len(report.missing)} row(s) without a file."
    )
    if (report.orphans and not fix) or report.missing:
        raise typer.Exit(code=1)


@app.command("train")
def train_command(
    project: Annotated[str, typer.Option(help="Name of the project to train on.")],
    labels: Annotated[
        str, typer.Option(help="fused (the crowd's fused labels and gold) or reference.")
    ] = "fused",
    config: Annotated[
        str | None,
        typer.Option(help="tiny, cpu or gpu (default: gpu on CUDA, else cpu)."),
    ] = None,
    minutes: Annotated[
        float | None, typer.Option(min=0.01, help="Training time budget (default: the config's).")
    ] = None,
    holdout: Annotated[
        list[str] | None,
        typer.Option(help="Public id of a held-out case to evaluate on (repeatable)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    plant_from: Annotated[
        Path | None,
        typer.Option(
            help="A folder of expert lesion masks on the cases' grid (e.g. lesion_masks_mni): "
            "planted into copies of the training cases when their lesion load is below the "
            "masks' median."
        ),
    ] = None,
    plant: Annotated[
        int, typer.Option(min=0, help="How many planted copies (with --plant-from).")
    ] = 4,
) -> None:
    """Train the lesion segmenter and register a model version (ML worker; needs torch)."""
    import time

    # The CLI is the ML worker's command line too: ``ml`` (and torch) load here, lazily, and
    # nowhere else in the backend.
    from backend.rounds.models import LabelSource
    from ml import jobs
    from ml.config import get_config, pick, timed
    from ml.train import Progress, pick_device

    if labels not in {s.value for s in LabelSource}:
        raise _fail(f"--labels must be fused or reference, not {labels!r}")
    try:
        chosen_device = pick_device(device)
        base = pick(chosen_device.type == "cuda") if config is None else get_config(config)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    chosen = timed(base.name, minutes, seed=seed)
    try:
        library = None if plant_from is None else jobs.read_library(plant_from)
    except DomainError as exc:
        raise _fail(exc.message) from exc
    settings = get_settings()
    engine = _migrated_engine(settings)
    started = time.perf_counter()
    try:
        with typer.progressbar(length=100, label=f"Training ({chosen.name})") as bar:
            state = {"percent": 0}

            def progress(now: Progress) -> None:
                percent = int(now.percent)
                bar.update(percent - state["percent"])
                state["percent"] = percent

            with Session(engine) as session:
                project_id = jobs.project_id_of(session, project)
            version = jobs.train_version(
                engine=engine,
                storage=Storage(settings.storage_url),
                project_id=project_id,
                labels=LabelSource(labels),
                config=chosen,
                device=chosen_device,
                holdout=holdout or [],
                progress=progress,
                library=library,
                plant=plant,
            )
    except DomainError as exc:
        raise _fail(exc.message) from exc
    finally:
        engine.dispose()
    metrics = version.metrics
    held = (
        f"held-out Dice {metrics['dice']:.3f}, lesion F1 {metrics['lesion_f1']:.3f}"
        if "dice" in metrics
        else "no held-out case"
    )
    planted = version.snapshot.get("planted")
    if planted is not None:
        typer.echo(
            f"Planted {', '.join(planted['masks'])} into copies of the training cases."
            if planted["masks"]
            else "The training cases' lesion load is at or above the library's median: "
            "nothing planted."
        )
    typer.echo(
        f"Model version {version.id} ({version.status.value}): {metrics['steps']} steps in "
        f"{time.perf_counter() - started:.0f} s on {version.device}, {held}."
    )


@app.command("predict")
def predict_command(
    case_dir: Annotated[Path, typer.Argument(help="A case folder in the import layout.")],
    out: Annotated[Path, typer.Option(help="Where to write the mask (.nii.gz).")],
    model: Annotated[str, typer.Option(help="Model version number, or latest.")] = "latest",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Segment a case folder with a trained model: a binary mask on the case's FLAIR grid."""
    from ml import jobs
    from ml.train import pick_device

    if not case_dir.is_dir():
        raise _fail(f"{case_dir} is not a folder")
    if not out.name.endswith((".nii.gz", ".nii")):
        raise _fail("--out must name a .nii.gz (or .nii) file")
    try:
        chosen_device = pick_device(device)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    with _unit_of_work() as (settings, session):
        version = jobs.find_version(session, model)
    try:
        with typer.progressbar(length=1, label=f"Segmenting with model {version.id}") as bar:

            def progress(done: int, total: int) -> None:
                bar.length = total
                bar.update(done - bar.pos)

            voxels = jobs.predict_folder(
                storage=Storage(settings.storage_url),
                version=version,
                folder=case_dir,
                out=out,
                device=chosen_device,
                progress=progress,
            )
    except DomainError as exc:
        raise _fail(exc.message) from exc
    typer.echo(f"Wrote {out}: {voxels} lesion voxels (model version {version.id}).")


rounds_app = typer.Typer(help="Active-learning rounds.", no_args_is_help=True)
app.add_typer(rounds_app, name="round")


@contextmanager
def _round_work(project: str) -> Iterator[tuple[Session, int, Storage]]:
    """A transaction whose deferred jobs are sent right after the commit, with the project's
    id and the storage; domain errors exit with a message."""
    from backend.core.outbox import Relay, celery_sender
    from backend.projects.models import Project

    settings = get_settings()
    engine = _migrated_engine(settings)
    try:
        with transaction(engine, Relay(engine, celery_sender(settings))) as session:
            found = session.exec(select(Project).where(Project.name == project)).first()
            if found is None or found.id is None:
                raise NotFound(f"No project called {project!r}")
            yield session, found.id, Storage(settings.storage_url)
    except DomainError as exc:
        raise _fail(exc.message) from exc
    finally:
        engine.dispose()


def _round_line(session: Session, round_: Round) -> str:
    labelled, chosen = rounds.progress_of_labelling(session, round_)
    model = rounds.model_of(session, round_)
    text = f"Round {round_.number}: {round_.status.value}"
    if round_.status is RoundStatus.labelling:
        text += f", {labelled} of {chosen} chosen slices labelled"
    elif round_.status in JOB_STAGES:
        eta = "" if round_.eta_seconds is None else f", ETA {round_.eta_seconds:.0f} s"
        text += f", {round_.progress:.0f} %{eta}: {round_.detail}"
    text += f" ({round_.strategy}, {len(round_.selected)} slices)"
    if model is not None:
        dice = model.metrics.get("dice")
        figure = "" if dice is None else f", held-out Dice {dice:.3f}"
        text += f"; model {model.id} {model.status.value}{figure}"
    if round_.error:
        text += f"\n  Error: {round_.error} (mscrowd round resume)"
    return text


@rounds_app.command("start")
def round_start(
    project: Annotated[str, typer.Option(help="Project name.")],
    strategy: Annotated[
        str, typer.Option(help="random, random_fg, entropy, bald, bald_diverse or cold_start.")
    ] = "bald_diverse",
    budget: Annotated[int, typer.Option(min=1, help="Slices to label this round.")] = 50,
    config: Annotated[
        str | None, typer.Option(help="Training config (tiny, cpu, gpu; default by device).")
    ] = None,
    minutes: Annotated[float | None, typer.Option(min=0.01, help="Training time budget.")] = None,
) -> None:
    """Start a project's next round: choose its slices and put them first in the queue."""
    from backend.rounds.schemas import RoundCreate

    try:
        checked = RoundCreate(
            project_id=1, strategy=strategy, budget=budget, config=config, minutes=minutes
        )
    except ValidationError as exc:
        raise _fail("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from exc
    with _round_work(project) as (session, project_id, storage):
        started = rounds.start_round(
            session,
            storage,
            project_id=project_id,
            strategy=checked.strategy,
            budget=checked.budget,
            config=checked.config,
            minutes=checked.minutes,
        )
        typer.echo(f"Round {started.number} started: {started.detail}.")


@rounds_app.command("status")
def round_status(project: Annotated[str, typer.Option(help="Project name.")]) -> None:
    """Every round of a project: stage, progress and its model's held-out figures."""
    with _round_work(project) as (session, project_id, _storage):
        found = rounds.rounds_of(session, project_id)
        for round_ in found:
            typer.echo(_round_line(session, round_))
        if not found:
            typer.echo("No round yet (mscrowd round start).")


def _current(session: Session, project_id: int) -> Round:
    found = [r for r in rounds.rounds_of(session, project_id) if r.status is not RoundStatus.closed]
    if not found:
        raise Conflict("The project has no round in progress (mscrowd round start)")
    return found[-1]


@rounds_app.command("close")
def round_close(
    project: Annotated[str, typer.Option(help="Project name.")],
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to follow the workers' progress (0: return).")
    ] = 0,
) -> None:
    """Close the current round's labelling: the workers fuse, train and score, in that order."""
    import time

    with _round_work(project) as (session, project_id, _storage):
        round_id = rounds.close_labelling(session, _current(session, project_id).id or 0).id
        typer.echo("Labelling closed; the workers fuse, train and score next.")
    if not wait:
        return
    deadline = time.monotonic() + wait
    settings = get_settings()
    engine = _migrated_engine(settings)
    try:
        with typer.progressbar(length=300, label="Fusing, training, scoring") as bar:
            while True:
                with Session(engine) as session:
                    now = rounds.get_round(session, round_id or 0)
                    stage = list(JOB_STAGES).index(now.status) if now.status in JOB_STAGES else 3
                    bar.update(int(100 * stage + (now.progress if stage < 3 else 0)) - bar.pos)
                    done = now.status is RoundStatus.closed or now.error is not None
                    late = time.monotonic() > deadline
                    if done or late:
                        line = _round_line(session, now)
                        break
                time.sleep(1.0)
    finally:
        engine.dispose()
    if not done:
        line += "\n  (still running; mscrowd round status)"
    typer.echo(line)
    if now.error:
        raise typer.Exit(code=1)


@rounds_app.command("resume")
def round_resume(project: Annotated[str, typer.Option(help="Project name.")]) -> None:
    """Send the current round's stage job again (after an error, or a worker that died)."""
    with _round_work(project) as (session, project_id, _storage):
        resumed = rounds.resume(session, _current(session, project_id).id or 0)
        typer.echo(f"Round {resumed.number}: the {resumed.status.value} job was sent again.")
