"""``mscrowd holdout``, ``users ...`` and ``storage check`` / ``sprites``: an operator's
housekeeping."""

from typing import Annotated

import typer
from pydantic import ValidationError

from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.cli.common import fail, unit_of_work
from backend.core.storage import Storage

users_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
storage_app = typer.Typer(
    help="Check blob storage against the database; build missing sprites.", no_args_is_help=True
)


def holdout(
    project: Annotated[str, typer.Option(help="Name of the project.")],
    cases: Annotated[
        list[str] | None,
        typer.Argument(help="Public ids of the cases to hold out (none: hold none out)."),
    ] = None,
) -> None:
    """Hold cases out for evaluating models: never served to volunteers, never gold, never
    trained on (replaces the project's list)."""
    from backend.projects import service as projects

    with unit_of_work() as (_settings, session):
        chosen = projects.set_holdout(session=session, project_name=project, case_ids=cases or [])
        held = ", ".join(chosen.holdout_cases) or "none"
    typer.echo(f"Held out of {project!r}: {held}.")


def _check_account(email: str, password: str, display_name: str | None = None) -> None:
    """The same rules as a sign-up form, as a clean CLI error."""
    from backend.auth.schemas import SignupIn

    try:
        SignupIn(email=email, password=password, display_name=display_name)
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise fail(problems) from exc


@users_app.command("unlock")
def users_unlock(email: Annotated[str, typer.Argument(help="Login email of the account.")]) -> None:
    """Forget the failed sign-ins counted against an account, so it may sign in at once."""
    with unit_of_work() as (_settings, session):
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
    with unit_of_work() as (_settings, session):
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
    with unit_of_work() as (_settings, session):
        user = auth.create_user(
            session=session, email=email, password=password, role=role, display_name=display_name
        )
    typer.echo(f"Created {user.role.value} {user.email} ({user.display_name}).")


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

    with unit_of_work() as (settings, session):
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


@storage_app.command("sprites")
def storage_sprites() -> None:
    """Build the sprites (one PNG of a slice's contrasts and its neighbours' FLAIR, which the
    studio loads per lease) of slices imported before sprites; imports build their own."""
    from backend.imaging.sprite import missing_sprites

    with unit_of_work() as (settings, session), typer.progressbar(length=1, label="Sprites") as bar:

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(1)

        built = missing_sprites(session, Storage(settings.storage_url), progress)
    typer.echo(f"{built} sprite(s) built.")
