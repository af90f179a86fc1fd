"""The ``mscrowd-ml`` command line: train and run the lesion segmenter (needs torch).

The ML worker's own commands, apart from ``mscrowd`` (``backend.cli``) because the backend
never imports ``ml``; they share its database, storage and settings.
"""

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from backend.cli.common import fail, migrated_engine, unit_of_work
from backend.core.config import get_settings
from backend.core.errors import DomainError
from backend.core.storage import Storage
from backend.rounds.models import LabelSource

app = typer.Typer(
    help="mscrowd-ml: train and run the ML worker's lesion segmenter.", no_args_is_help=True
)


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

    # torch loads with the command, not with ``mscrowd-ml --help``.
    from ml import jobs
    from ml.config import get_config, pick, timed
    from ml.train import Progress, pick_device

    if labels not in {s.value for s in LabelSource}:
        raise fail(f"--labels must be fused or reference, not {labels!r}")
    try:
        chosen_device = pick_device(device)
        base = pick(chosen_device.type == "cuda") if config is None else get_config(config)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    chosen = timed(base.name, minutes, seed=seed)
    try:
        library = None if plant_from is None else jobs.read_library(plant_from)
    except DomainError as exc:
        raise fail(exc.message) from exc
    settings = get_settings()
    engine = migrated_engine(settings)
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
        raise fail(exc.message) from exc
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
        raise fail(f"{case_dir} is not a folder")
    if not out.name.endswith((".nii.gz", ".nii")):
        raise fail("--out must name a .nii.gz (or .nii) file")
    try:
        chosen_device = pick_device(device)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    with unit_of_work() as (settings, session):
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
        raise fail(exc.message) from exc
    typer.echo(f"Wrote {out}: {voxels} lesion voxels (model version {version.id}).")


@app.command("brain-mask")
def brain_mask_command(
    folder: Annotated[
        Path, typer.Argument(help="A folder of raw clinical studies (PREFIX_FLAIR.nii.gz, ...).")
    ],
    force: Annotated[bool, typer.Option(help="Replace masks already there.")] = False,
    gpu: Annotated[bool, typer.Option(help="Use a GPU when there is one.")] = False,
) -> None:
    """Write PREFIX_brain_mask.nii.gz beside each raw study's FLAIR (deepbet, offline), so
    that `mscrowd import` stores and shows brain only."""
    from ml.jobs import brain

    try:
        studies = brain.pending(folder, force=force)
    except DomainError as exc:
        raise fail(exc.message) from exc
    if not studies:
        typer.echo("No study without a brain mask here (--force to redo them).")
        return
    with typer.progressbar(length=len(studies), label="Extracting brains") as bar:
        written = brain.write_masks(studies, gpu=gpu, progress=lambda n: bar.update(n - bar.pos))
    for found in written:
        typer.echo(f"+ {found.study}: {found.path.name} ({found.millilitres:.0f} ml of brain)")
