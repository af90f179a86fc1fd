"""``python -m ml`` is the ``mscrowd-ml`` command."""

from ml.cli import app

app(prog_name="mscrowd-ml")
