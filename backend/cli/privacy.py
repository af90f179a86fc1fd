"""``mscrowd cases list | consent | withdraw`` and ``mscrowd users erase``: what the data
owner allowed, and taking data back."""

from typing import Annotated

import typer
from sqlmodel import col, select

from backend.cli.common import fail, unit_of_work
from backend.core.storage import Storage

cases_app = typer.Typer(help="Consent and withdrawal of imported cases.", no_args_is_help=True)


@cases_app.command("list")
def cases_list(
    project: Annotated[str | None, typer.Option(help="Only this project's cases.")] = None,
) -> None:
    """The cases with their licence and consent scopes."""
    from backend.imaging.models import Case
    from backend.projects.models import Project

    with unit_of_work() as (_settings, session):
        query = select(Case, Project.name).join(Project, col(Project.id) == col(Case.project_id))
        if project is not None:
            query = query.where(Project.name == project)
        rows = session.exec(query.order_by(col(Case.id))).all()
        for case, name in rows:
            scopes = ",".join(sorted(case.scopes)) or "experts only"
            typer.echo(f"{case.public_id}  {name}  {case.licence}  {scopes}")
    if not rows:
        typer.echo("No cases.")


@cases_app.command("consent")
def cases_consent(
    case: Annotated[str, typer.Argument(help="Public id of the case.")],
    scopes: Annotated[
        str,
        typer.Option(
            help="The whole consent: open, crowd, research, restricted, or scopes "
            "(crowd_viewing,research_sharing,public_images,public_labels)."
        ),
    ],
    licence: Annotated[str | None, typer.Option(help="A new licence.")] = None,
) -> None:
    """Set what a case's data owner allows (replaces its scopes)."""
    from backend.imaging.models import parse_consent
    from backend.privacy import service

    try:
        allowed = parse_consent(scopes)
    except ValueError as exc:
        raise fail(f"--scopes: {exc}") from exc
    with unit_of_work() as (_settings, session):
        change = service.set_consent(
            session, public_id=case, scopes=allowed, actor=None, licence=licence
        )
    after = ", ".join(change["after"]) or "experts only"
    typer.echo(
        f"Case {case}: {after} (licence {change['licence']}); "
        f"{change['tasks_opened']} task(s) opened, {change['tasks_withheld']} open task(s) "
        "withheld from volunteers."
    )


@cases_app.command("withdraw")
def cases_withdraw(
    case: Annotated[str, typer.Argument(help="Public id of the case.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log; no patient data).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Withdraw a case for good: images, masks, tasks and answers deleted; later fusions,
    trainings and releases lack it; model versions trained on it flagged."""
    from backend.privacy import service

    if not reason.strip():
        raise fail("--reason must not be empty")
    if not yes:
        typer.confirm(f"Withdraw case {case} and delete its images and labels?", abort=True)
    with unit_of_work() as (settings, session):
        storage = Storage(settings.storage_url)
        withdrawn, removal = service.withdraw_case(
            session, storage, public_id=case, actor=None, reason=reason.strip()
        )
        report = dict(withdrawn.report)
    removal.delete_files(storage)  # after the commit
    counts = ", ".join(
        f"{v} {k.replace('_', ' ')}" for k, v in report.items() if k != "model_versions"
    )
    typer.echo(f"Withdrew case {case}: {counts}.")


def users_erase(
    email: Annotated[str, typer.Argument(help="Login name of the account.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase an account at its owner's request (GDPR): answers, progress and login go; the
    tasks it answered are fused again without it."""
    from backend.auth.models import User
    from backend.privacy import service

    if not yes:
        typer.confirm(f"Erase the account {email} and everything it contributed?", abort=True)
    with unit_of_work() as (settings, session):
        user = session.exec(select(User).where(User.email == email)).first()
        if user is None or user.id is None:
            raise fail(f"No account {email!r}")
        storage = Storage(settings.storage_url)
        counts, removal = service.erase_user(session, storage, user_id=user.id, actor=None)
    removal.delete_files(storage)
    typer.echo(f"Erased the account: {', '.join(f'{v} {k}' for k, v in counts.items())}.")
