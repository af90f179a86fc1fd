"""``mscrowd release create | list`` and ``mscrowd export``: label releases for ML engineers."""

import hashlib
from pathlib import Path
from typing import Annotated

import typer

from backend.cli.common import fail, migrated_engine, unit_of_work
from backend.core.config import get_settings
from backend.core.errors import DomainError
from backend.core.storage import Storage

release_app = typer.Typer(help="Versioned label releases.", no_args_is_help=True)


@release_app.command("create")
def release_create(
    project: Annotated[str, typer.Option(help="Project to release.")],
    name: Annotated[str | None, typer.Option(help="Release name (default PROJECT-rN).")] = None,
    min_labels: Annotated[int, typer.Option(min=1, help="Answers a slice needs.")] = 1,
    min_confidence: Annotated[
        float, typer.Option(min=0, max=1, help="Fused confidence a slice needs (1 - bits).")
    ] = 0.0,
    exclude_rater: Annotated[
        list[int] | None, typer.Option(help="Leave out slices this rater (user id) answered.")
    ] = None,
    per_rater: Annotated[bool, typer.Option(help="Each rater's own masks too.")] = False,
    queue: Annotated[
        bool, typer.Option(help="Build on the worker instead of here (watch its progress).")
    ] = False,
) -> None:
    """Build a release of a project's fused labels (nnU-Net v2 and MONAI layouts)."""
    from backend.core.outbox import defer
    from backend.releases import BUILD_RELEASE, service
    from backend.releases.plan import Filters

    filters = Filters(min_labels, min_confidence, tuple(exclude_rater or ()), per_rater)
    with unit_of_work() as (_settings, session):
        release = service.create(
            session, project_name=project, name=name, filters=filters, actor=None
        )
        release_id, chosen = release.id or 0, release.name
        if queue:
            defer(session, BUILD_RELEASE, release_id)
    if queue:
        typer.echo(f"Release {chosen} queued; `mscrowd release list` shows its progress.")
        return
    settings = get_settings()
    engine = migrated_engine(settings)
    try:
        with typer.progressbar(length=100, label=f"Building {chosen}") as bar:
            done = [0]

            def progress(percent: float, _eta: float | None, _message: str) -> None:
                bar.update(int(percent) - done[0])
                done[0] = int(percent)

            built = service.run(
                engine,
                Storage(settings.storage_url),
                release_id,
                url=settings.public_url,
                secret=settings.secret_key,
                progress=progress,
            )
    except DomainError as exc:
        raise fail(exc.message) from exc
    except Exception as exc:
        raise fail(f"the build failed and left nothing: {exc}") from exc
    finally:
        engine.dispose()
    if built is None:
        raise fail(f"release {chosen} was taken on by another process")
    stats = built.stats
    typer.echo(
        f"Release {built.name}: {stats['cases']} cases ({stats['cases_with_images']} with "
        f"images), {stats['labelled_slices']} labelled slices, {built.file_count} files, "
        f"{built.size_bytes / 1e6:.1f} MB."
    )


@release_app.command("list")
def release_list(
    project: Annotated[str | None, typer.Option(help="Only this project's.")] = None,
) -> None:
    """The releases, newest first, with their state."""
    from backend.releases import service

    with unit_of_work() as (_settings, session):
        rows = service.listing(session, project)
        for r in rows:
            state = r.status.value
            if state == "building":
                eta = f", {r.eta_seconds:.0f} s left" if r.eta_seconds is not None else ""
                state += f" {r.progress:.0f} %{eta}"
            cases = r.stats.get("cases", "-")
            typer.echo(f"{r.name}  {state}  cases {cases}  {r.size_bytes / 1e6:.1f} MB")
    if not rows:
        typer.echo("No release yet.")


def export(
    release: Annotated[str, typer.Option(help="Release name.")],
    out: Annotated[Path, typer.Option(help="An empty or new folder to write it to.")],
) -> None:
    """Copy a release's files to a folder, each checked against its SHA-256."""
    from backend.releases import service

    target = out.expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise fail(f"{target} exists and is not an empty folder")
    with unit_of_work() as (settings, session):
        found = service.get(session, release, served=True)
        files = [(f.path, f.sha256) for f in service.files_of(session, found.id or 0)]
        storage = Storage(settings.storage_url)
    from backend.releases.build import prefix_of

    with typer.progressbar(files, label=f"Exporting {release}") as bar:
        for path, digest in bar:
            data = storage.get(f"{prefix_of(release)}/{path}")
            if hashlib.sha256(data).hexdigest() != digest:
                raise fail(f"{path} does not match its checksum: storage was changed")
            destination = target / path
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)
    typer.echo(f"Wrote {len(files)} files to {target}.")
