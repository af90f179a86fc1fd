"""``python -m backend`` is the ``mscrowd`` command."""

from backend.cli import app

app(prog_name="mscrowd")
