"""The ``mscrowd`` command line: one module per group of commands, wired together here.

The ML worker's own commands (``train``, ``predict``) are ``mscrowd-ml`` (``ml.cli``): the
backend never imports ``ml``.
"""

import typer

from backend.audit import service as audit
from backend.cli import admin, data, privacy, releases, rounds, server, tutorials
from backend.cli.common import fail

app = typer.Typer(help="mscrowd: crowd labelling of MS lesions on MRI.", no_args_is_help=True)
app.add_typer(admin.users_app, name="users")
app.add_typer(admin.storage_app, name="storage")
app.add_typer(privacy.cases_app, name="cases")
app.add_typer(releases.release_app, name="release")
app.command()(releases.export)
admin.users_app.command("erase")(privacy.users_erase)
app.add_typer(rounds.rounds_app, name="round")
app.add_typer(tutorials.tutorials_app, name="tutorials")


@app.callback()
def _validate() -> None:
    """Every command starts from lessons that validate (a broken file names its line), and
    records what the audit log must see (rater actions from any session)."""
    tutorials.check_content()
    audit.install()


app.command()(server.migrate)
app.command()(server.serve)
app.command()(server.worker)
app.command("import")(data.import_)
app.command()(data.demo)
app.command("holdout")(admin.holdout)
app.command()(data.fuse)


def _moved_to_ml(ctx: typer.Context) -> None:
    """Say where a command that moved to ``mscrowd-ml`` went."""
    raise fail(f"'mscrowd {ctx.info_name}' is now 'mscrowd-ml {ctx.info_name}' (the ML worker)")


for _name in ("train", "predict"):
    app.command(
        _name,
        hidden=True,
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(_moved_to_ml)
