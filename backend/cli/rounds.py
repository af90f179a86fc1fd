"""``mscrowd round ...``: start, follow, close and resume active-learning rounds."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlmodel import Session, select

from backend.cli.common import fail, migrated_engine
from backend.core.config import get_settings
from backend.core.db import transaction
from backend.core.errors import Conflict, DomainError, NotFound
from backend.core.storage import Storage
from backend.rounds import service as rounds
from backend.rounds.models import JOB_STAGES, Round, RoundStatus

rounds_app = typer.Typer(help="Active-learning rounds.", no_args_is_help=True)


@contextmanager
def _round_work(project: str) -> Iterator[tuple[Session, int, Storage]]:
    """A transaction whose deferred jobs are sent right after the commit, with the project's
    id and the storage; domain errors exit with a message."""
    from backend.core.outbox import Relay, celery_sender
    from backend.projects.models import Project

    settings = get_settings()
    engine = migrated_engine(settings)
    try:
        with transaction(engine, Relay(engine, celery_sender(settings))) as session:
            found = session.exec(select(Project).where(Project.name == project)).first()
            if found is None or found.id is None:
                raise NotFound(f"No project called {project!r}")
            yield session, found.id, Storage(settings.storage_url)
    except DomainError as exc:
        raise fail(exc.message) from exc
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
        str, typer.Option(help="random_fg, random, entropy, bald, bald_diverse or cold_start.")
    ] = "random_fg",
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
        raise fail("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from exc
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
    force: Annotated[
        bool, typer.Option(help="Close even with fewer than half the chosen slices labelled.")
    ] = False,
) -> None:
    """Close the current round's labelling: the workers fuse, train and score, in that order."""
    import time

    with _round_work(project) as (session, project_id, _storage):
        current = _current(session, project_id).id or 0
        round_id = rounds.close_labelling(session, current, force=force).id
        typer.echo("Labelling closed; the workers fuse, train and score next.")
    if not wait:
        return
    deadline = time.monotonic() + wait
    settings = get_settings()
    engine = migrated_engine(settings)
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
