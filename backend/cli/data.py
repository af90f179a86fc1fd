"""``mscrowd import``, ``demo`` and ``fuse``: cases in, and the crowd's labels fused."""

import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import select

from backend.cli.common import fail, migrated_engine, unit_of_work
from backend.core.config import get_settings
from backend.core.errors import DomainError
from backend.core.storage import Storage
from backend.imaging import deid, dicom
from backend.imaging.models import parse_consent
from backend.imaging.preprocess import InvalidCase
from backend.imaging.service import (
    CaseLoader,
    CaseMeta,
    ImportOutcome,
    folder_loaders,
    import_cases,
)


def _report(outcomes: list[ImportOutcome]) -> int:
    failed = 0
    for outcome in outcomes:
        mark = {"imported": "+", "skipped": "=", "failed": "!", "queued": ">"}[outcome.status]
        where = f" as case {outcome.case_public_id}" if outcome.case_public_id else ""
        typer.echo(f"{mark} {outcome.name}: {outcome.status}{where} ({outcome.message})")
        if outcome.report is not None:
            typer.echo(f"  {deid.describe(outcome.report)}")
        failed += outcome.status == "failed"
    return failed


def _dicom_loaders(root: Path, contrasts: Path | None) -> list[CaseLoader]:
    """The DICOM studies under ``root``, their headers read with a progress bar."""
    mapping = dicom.load_mapping(contrasts) if contrasts is not None else None
    files = dicom.find_files(root)
    if not files:
        return []
    with typer.progressbar(files, label="Reading DICOM headers", file=sys.stderr) as bar:
        studies = dicom.scan(root, mapping, files=bar)
    for study in studies:
        for label in study.skipped:
            typer.echo(f"  {study.name}: {label} skipped (not FLAIR, T1 or T2)")
    return dicom.loaders(studies)


def import_(
    path: Annotated[Path, typer.Argument(help="A folder of case folders, or one case folder.")],
    project: Annotated[str, typer.Option(help="Project to import into (created if new).")],
    source: Annotated[str | None, typer.Option(help="Provenance text stored per case.")] = None,
    licence: Annotated[str, typer.Option(help="Licence of the images.")] = "CC-BY-4.0",
    consent: Annotated[
        str,
        typer.Option(
            help="What the data owner allowed: open, crowd, research, restricted, or scopes "
            "(crowd_viewing,research_sharing,public_images,public_labels)."
        ),
    ] = "research",
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
    contrasts: Annotated[
        Path | None,
        typer.Option(
            help="DICOM: a YAML or JSON file naming series by description: "
            "'series: {DESCRIPTION: flair | t1 | t2 | skip}'."
        ),
    ] = None,
) -> None:
    """Import cases and open their slice tasks: NIfTI case folders (FLAIR, T1, T2, optional
    lesion mask), and DICOM files in any folder structure (grouped by study and series,
    de-identified before anything is stored)."""
    settings = get_settings()
    try:
        scopes = parse_consent(consent)
    except ValueError as exc:
        raise fail(f"--consent: {exc}") from exc
    root = path.expanduser()
    if not root.exists():
        raise fail(f"{root} does not exist")
    try:
        # A corrupt DICOM file or a bad mapping file stops the import before anything is
        # stored, naming the file.
        loaders = _dicom_loaders(root, contrasts)
        try:
            loaders += folder_loaders(root)
        except InvalidCase:
            if not loaders:
                raise
    except DomainError as exc:
        raise fail(exc.message) from exc
    engine = migrated_engine(settings)
    try:
        outcomes = import_cases(
            engine=engine,
            storage=Storage(settings.storage_url),
            project_name=project,
            loaders=loaders,
            # The folder's name may be a patient's: never the default provenance.
            meta=CaseMeta(source or "mscrowd import", licence, scopes),
            min_labels=min_labels,
            max_labels=max_labels,
            gold_rate=gold_rate,
        )
    except DomainError as exc:
        raise fail(exc.message) from exc
    finally:
        engine.dispose()
    failed = _report(outcomes)
    if failed:
        raise fail(f"{failed} of {len(outcomes)} case(s) failed; nothing of them was kept")


def demo(
    cases: Annotated[int, typer.Option(min=1, max=64, help="Synthetic cases to build.")] = 8,
    seed: Annotated[int, typer.Option(help="First random seed.")] = 0,
    password: Annotated[
        str | None, typer.Option(help="Password of the demo admin and expert.")
    ] = None,
    tutorial: Annotated[
        bool,
        typer.Option(
            help="Add the tutorial cases (synthetic mimics): lessons, practice and the "
            "qualification test, whose gate volunteers then pass before labelling."
        ),
    ] = True,
) -> None:
    """Build synthetic MS cases from the MNI152 template, import them, add demo accounts."""
    from backend.imaging.demo import DEMO_PASSWORD, DEMO_PROJECT, build_demo

    settings = get_settings()
    if settings.environment == "production" and password is None:
        raise fail("in production, give the demo accounts a password with --password")
    engine = migrated_engine(settings)
    try:
        report = build_demo(
            engine=engine,
            storage=Storage(settings.storage_url),
            cases=cases,
            seed=seed,
            password=password or DEMO_PASSWORD,
            tutorial=tutorial,
        )
    finally:
        engine.dispose()
    failed = _report(report.outcomes)
    for email, role, created in report.accounts:
        state = "created" if created else "exists"
        shown = f" password {password or DEMO_PASSWORD!r}" if created else ""
        typer.echo(f"  {role.value:<8} {email} ({state}){shown}")
    held = ", ".join(report.holdout) or "none"
    typer.echo(f"  held out for evaluating models (never labelled or trained on): {held}")
    typer.echo(f"Demo project {DEMO_PROJECT!r} is ready; volunteers sign up at the front page.")
    if failed:
        raise fail(f"{failed} demo case(s) failed")


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

    with unit_of_work() as (settings, session):
        found = session.exec(select(Project).where(Project.name == project)).first()
        if found is None or found.id is None:
            raise fail(f"No project called {project!r}")
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
