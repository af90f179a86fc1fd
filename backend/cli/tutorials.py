"""``mscrowd tutorials ...``: check the lessons, set cases aside as tutorial material."""

from typing import Annotated

import typer

from backend.cli.common import fail, unit_of_work

tutorials_app = typer.Typer(
    help="Lessons and tutorial material (slices that teach, practise and qualify).",
    no_args_is_help=True,
)


def check_content() -> None:
    """Validate every lesson, the field guide and the badges (a broken file stops the
    command)."""
    from backend.gamification.badges import catalog
    from backend.tutorials.content import ContentError, default_catalog

    try:
        default_catalog()
    except ContentError as exc:
        raise fail(f"the tutorials do not validate:\n{exc}") from exc
    try:
        catalog()
    except ContentError as exc:
        raise fail(f"the badges do not validate:\n{exc}") from exc


@tutorials_app.command("check")
def check() -> None:
    """Validate the lessons and field guide, and say which translations are stale."""
    from backend.tutorials.content import default_catalog

    check_content()
    catalog = default_catalog()
    lessons = catalog.lessons("en")
    typer.echo(f"{len(lessons)} lessons, languages: {', '.join(catalog.languages())}")
    for path in catalog.stale():
        typer.echo(f"stale translation (behind English, not served): {path}")


@tutorials_app.command("use-case")
def use_case(
    project: Annotated[str, typer.Option(help="Name of the project.")],
    cases: Annotated[list[str], typer.Argument(help="Public ids of the cases.")],
    release: Annotated[
        bool, typer.Option("--release", help="Give the cases back to the crowd instead.")
    ] = False,
) -> None:
    """Set cases (with expert references) aside as tutorial material: their slices illustrate
    lessons and make up practice and qualification items; their crowd tasks and gold retire."""
    from backend.core.storage import Storage
    from backend.tutorials import material

    with unit_of_work() as (settings, session):
        storage = Storage(settings.storage_url)
        for case in cases:
            if release:
                material.release_case(session=session, project_name=project, public_id=case)
                typer.echo(f"{case}: back to the crowd")
                continue
            rows = material.use_case(
                session=session, storage=storage, project_name=project, public_id=case
            )
            kinds = {k: sum(r.kind.value == k for r in rows) for k in ("lesion", "empty", "mimic")}
            typer.echo(
                f"{case}: tutorial material, {kinds['lesion']} lesion, {kinds['empty']} empty "
                f"and {kinds['mimic']} mimic slices"
            )
